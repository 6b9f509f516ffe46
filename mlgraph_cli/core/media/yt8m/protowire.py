"""tf.train.Example and tf.train.SequenceExample, decoded from the protobuf wire format by hand.

The messages (tensorflow/core/example/{feature,example}.proto) are small and fixed:

    BytesList { repeated bytes value = 1; }   FloatList { repeated float value = 1 [packed]; }
    Int64List { repeated int64 value = 1 [packed]; }
    Feature   { oneof kind { BytesList bytes_list = 1; FloatList float_list = 2; Int64List int64_list = 3; } }
    Features  { map<string, Feature> feature = 1; }
    FeatureList  { repeated Feature feature = 1; }
    FeatureLists { map<string, FeatureList> feature_list = 1; }
    Example         { Features features = 1; }
    SequenceExample { Features context = 1; FeatureLists feature_lists = 2; }

Why by hand rather than the ``protobuf`` package: these eight messages are all YouTube-8M uses,
the decoder is ~100 lines with no generated code or descriptor pool to keep in step with
protobuf's major versions (which have broken generated code before), and float lists go
straight into numpy (``np.frombuffer``) instead of through Python floats. A map field is a
repeated entry message ``{key = 1; value = 2}``; packed and unpacked repeated scalars are both
accepted, as protobuf parsers must.

The encoder half exists so tests (and anyone) can write records with the real schema.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Iterator, Sequence, Union

import numpy as np

Value = Union[list, np.ndarray]  # list[bytes] (bytes_list), float32 or int64 array


class ProtoError(ValueError):
    """The bytes are not a well-formed message of the expected type."""


_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ProtoError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ProtoError("varint longer than 10 bytes")


def _fields(buf: memoryview) -> Iterator[tuple[int, int, object]]:
    """Yield (field number, wire type, value): an int, or a memoryview for length-delimited fields."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ProtoError("field number 0")
        if wire == _VARINT:
            value, pos = _varint(buf, pos)
        elif wire == _LEN:
            n, pos = _varint(buf, pos)
            if pos + n > end:
                raise ProtoError("length-delimited field runs past the end")
            value, pos = buf[pos:pos + n], pos + n
        elif wire == _I32:
            if pos + 4 > end:
                raise ProtoError("truncated fixed32")
            value, pos = buf[pos:pos + 4], pos + 4
        elif wire == _I64:
            if pos + 8 > end:
                raise ProtoError("truncated fixed64")
            value, pos = buf[pos:pos + 8], pos + 8
        else:
            raise ProtoError(f"unsupported wire type {wire}")
        yield number, wire, value


def _signed64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _feature(buf: memoryview) -> Value:
    """Decode one Feature into list[bytes], a float32 array or an int64 array (empty Feature: [])."""
    out: Value = []
    for number, wire, value in _fields(buf):
        if wire != _LEN:
            raise ProtoError("Feature kind is not a message")
        if number == 1:  # BytesList
            out = [bytes(v) for n, w, v in _fields(value) if n == 1 and w == _LEN]
        elif number == 2:  # FloatList, packed (wire 2) or one fixed32 per value (wire 5)
            parts = []
            for n, w, v in _fields(value):
                if n == 1 and w in (_LEN, _I32):
                    if len(v) % 4:
                        raise ProtoError("packed float list length is not a multiple of 4")
                    parts.append(np.frombuffer(v, dtype="<f4"))
            out = np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)
        elif number == 3:  # Int64List, packed varints (wire 2) or one varint per value (wire 0)
            ints: list[int] = []
            for n, w, v in _fields(value):
                if n != 1:
                    continue
                if w == _VARINT:
                    ints.append(_signed64(v))
                elif w == _LEN:
                    pos = 0
                    while pos < len(v):
                        x, pos = _varint(v, pos)
                        ints.append(_signed64(x))
            out = np.asarray(ints, dtype=np.int64)
    return out


def _map(buf: memoryview, decode_value) -> dict[str, object]:
    """A protobuf map<string, M>: repeated entries {key = 1; value = 2} under field 1."""
    out: dict[str, object] = {}
    for number, wire, entry in _fields(buf):
        if number != 1 or wire != _LEN:
            continue
        key, value = "", memoryview(b"")
        for n, w, v in _fields(entry):
            if n == 1 and w == _LEN:
                key = bytes(v).decode("utf-8", errors="replace")
            elif n == 2 and w == _LEN:
                value = v
        out[key] = decode_value(value)
    return out


def _feature_list(buf: memoryview) -> list[Value]:
    return [_feature(v) for n, w, v in _fields(buf) if n == 1 and w == _LEN]


@dataclass
class DecodedExample:
    """An Example (``features``) or SequenceExample (``features`` = its context, ``feature_lists``).

    ``features``: name -> list[bytes] | float32 array | int64 array.
    ``feature_lists``: name -> one such value per step (per second of video, for YouTube-8M).
    """

    features: dict[str, Value] = field(default_factory=dict)
    feature_lists: dict[str, list[Value]] = field(default_factory=dict)
    is_sequence: bool = False  # field 2 (feature_lists) was present: a SequenceExample


def decode_example(data: bytes, *, context_only: bool = False) -> DecodedExample:
    """Decode a serialized tf.train.Example or tf.train.SequenceExample (their field 1 agree).

    ``context_only`` notes whether feature lists are present but does not decode them.
    Raises :class:`ProtoError` on malformed bytes.
    """
    out = DecodedExample()
    try:
        for number, wire, value in _fields(memoryview(data)):
            if wire != _LEN:
                continue
            if number == 1:
                out.features.update(_map(value, _feature))  # type: ignore[arg-type]
            elif number == 2:
                out.is_sequence = True
                if not context_only:
                    out.feature_lists.update(_map(value, _feature_list))  # type: ignore[arg-type]
    except (IndexError, struct.error, UnicodeDecodeError) as exc:  # belt and braces
        raise ProtoError(str(exc)) from None
    return out


# ---------------------------------------------------------------------------------------------
# encoding (tests and tools)

def _enc_varint(v: int) -> bytes:
    v &= (1 << 64) - 1  # negative int64 as two's complement, 10 bytes
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _enc_len(number: int, payload: bytes) -> bytes:
    return _enc_varint(number << 3 | _LEN) + _enc_varint(len(payload)) + payload


def encode_feature(value: bytes | Sequence[bytes] | Sequence[float] | Sequence[int] | np.ndarray) -> bytes:
    """A Feature from bytes / a list of bytes (bytes_list), floats (float_list) or ints (int64_list)."""
    if isinstance(value, (bytes, bytearray)):
        value = [bytes(value)]
    arr = None if isinstance(value, list) and value and isinstance(value[0], (bytes, bytearray)) else np.asarray(value)
    if arr is None:
        return _enc_len(1, b"".join(_enc_len(1, bytes(v)) for v in value))
    if arr.dtype.kind == "f":
        return _enc_len(2, _enc_len(1, arr.astype("<f4").tobytes()))
    return _enc_len(3, _enc_len(1, b"".join(_enc_varint(int(v)) for v in arr.ravel())))


def _enc_map(entries: dict[str, bytes]) -> bytes:
    return b"".join(_enc_len(1, _enc_len(1, k.encode("utf-8")) + _enc_len(2, v)) for k, v in entries.items())


def encode_example(features: dict[str, object]) -> bytes:
    """A serialized tf.train.Example."""
    return _enc_len(1, _enc_map({k: encode_feature(v) for k, v in features.items()}))  # type: ignore[arg-type]


def encode_sequence_example(context: dict[str, object], feature_lists: dict[str, Sequence[object]]) -> bytes:
    """A serialized tf.train.SequenceExample (``feature_lists``: name -> one value per step)."""
    lists = {k: b"".join(_enc_len(1, encode_feature(step)) for step in steps)  # type: ignore[arg-type]
             for k, steps in feature_lists.items()}
    return (_enc_len(1, _enc_map({k: encode_feature(v) for k, v in context.items()}))  # type: ignore[arg-type]
            + _enc_len(2, _enc_map(lists)))
