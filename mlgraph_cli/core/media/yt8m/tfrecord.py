"""TFRecord files without TensorFlow: the record framing, checked.

A TFRecord file is a sequence of records, each framed as (TensorFlow's python_io guide):

    uint64 length | uint32 masked_crc32c(length) | data[length] | uint32 masked_crc32c(data)

little-endian, where masked(crc) = ((crc >> 15) | (crc << 17)) + 0xa282ead8 (mod 2^32). The
``tfrecord`` package reads the same framing but never checks the CRCs; here both are checked, so a
flipped byte is reported (file, record number, what failed) and that record skipped instead of
parsed as garbage. A bad *length* checksum means the length itself cannot be trusted, so the rest
of that file is skipped; so does a length beyond :data:`MAX_RECORD` (checked before a byte of the
record is read), or one the file is too short to hold. Gzip-compressed files (TFRecordOptions GZIP) are recognised by their
magic bytes and read through :mod:`gzip`.

CRC32C (Castagnoli) comes from ``google-crc32c`` (C, hardware-accelerated where available): a
frame-level YouTube-8M shard is hundreds of MB, far too much for a pure-Python CRC.
"""

from __future__ import annotations

import gzip
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

import google_crc32c

from mlgraph_cli.core.io.inputs import check_input_file

_MASK_DELTA = 0xA282EAD8
# The largest record read: a frame-level YouTube-8M record is under 0.5 MB (300 s x 1,152 bytes);
# a length field beyond this is damage, and reading it would allocate that much.
MAX_RECORD = 64 * 2**20
_GZIP_MAGIC = b"\x1f\x8b"


def crc32c(data: bytes) -> int:
    """The CRC32C (Castagnoli) of ``data``, an unsigned 32-bit int."""
    return google_crc32c.value(bytes(data))


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC: rotate right by 15 bits, add 0xa282ead8, mod 2^32."""
    crc = crc32c(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _MASK_DELTA) & 0xFFFFFFFF


@dataclass(frozen=True)
class BadRecord:
    """A record that could not be used: ``path``, its 0-based ``index`` in the file, and why."""

    path: str
    index: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}#{self.index}: {self.reason}"


def _open(path: Path) -> BinaryIO:
    fh = open(path, "rb")
    magic = fh.read(2)
    fh.seek(0)
    if magic == _GZIP_MAGIC:
        return gzip.GzipFile(fileobj=fh, mode="rb")  # type: ignore[return-value]
    return fh


def read_records(path: str | os.PathLike) -> Iterator[tuple[int, bytes | BadRecord]]:
    """Yield ``(index, data)`` for each record of a TFRecord file, or ``(index, BadRecord)``.

    A data checksum mismatch yields a :class:`BadRecord` and reading goes on with the next record
    (the length was intact). A length checksum mismatch or a truncated record yields a
    :class:`BadRecord` and ends the file: nothing after it can be located.
    """
    p = check_input_file(path, fix="pass YouTube-8M frame- or video-level TFRecords")  # a FIFO would block
    with _open(p) as fh:
        index = 0
        while True:
            try:
                header = fh.read(12)
            except (OSError, EOFError) as exc:  # a damaged gzip stream
                yield index, BadRecord(str(p), index, f"unreadable compressed data ({exc}); rest of file skipped")
                return
            if not header:
                return
            if len(header) < 12:
                yield index, BadRecord(str(p), index, "file ends inside a record header (truncated file)")
                return
            (length,) = struct.unpack("<Q", header[:8])
            (length_crc,) = struct.unpack("<I", header[8:])
            if masked_crc32c(header[:8]) != length_crc:
                yield index, BadRecord(str(p), index, "length checksum mismatch (not a TFRecord file, or corrupt); "
                                                      "rest of file skipped")
                return
            if length > MAX_RECORD:  # checked before reading: a length field must not allocate 2**60 bytes
                yield index, BadRecord(str(p), index, f"the record claims {length:,} bytes, more than any YouTube-8M "
                                                      f"record ({MAX_RECORD:,}); rest of file skipped")
                return
            try:
                data = fh.read(length)
                footer = fh.read(4)
            except (OSError, EOFError) as exc:
                yield index, BadRecord(str(p), index, f"unreadable compressed data ({exc}); rest of file skipped")
                return
            if len(data) < length or len(footer) < 4:
                yield index, BadRecord(str(p), index, "file ends inside a record (truncated file)")
                return
            if masked_crc32c(data) != struct.unpack("<I", footer)[0]:
                yield index, BadRecord(str(p), index, "data checksum mismatch (corrupt record)")
            else:
                yield index, data
            index += 1


def frame_record(data: bytes) -> bytes:
    """One record with its TFRecord framing (length, masked CRCs)."""
    length = struct.pack("<Q", len(data))
    return (length + struct.pack("<I", masked_crc32c(length)) + bytes(data)
            + struct.pack("<I", masked_crc32c(data)))


def write_records(path: str | os.PathLike, records: Iterable[bytes], *, compress: bool = False) -> Path:
    """Write ``records`` as a TFRecord file (gzip-compressed if ``compress``). Used by tests and tools."""
    p = Path(path)
    opener = gzip.open if compress else open
    with opener(p, "wb") as fh:
        for data in records:
            fh.write(frame_record(data))
    return p
