"""YouTube-8M records: decoding and writing them (google/youtube-8m readers.py; docs/method.md, "YouTube-8M").

Two record kinds share the context keys ``id`` (bytes; 2017 data: ``video_id``) and ``labels``
(int64 class indices into the 3,862-class vocabulary):

- video level, ``tf.train.Example``: ``mean_rgb`` float[1024], ``mean_audio`` float[128]
  (already dequantised averages);
- frame level, ``tf.train.SequenceExample``: feature lists ``rgb`` (1024 uint8 bytes per second)
  and ``audio`` (128 bytes per second), up to 300 seconds. Segment-rated validation records add
  context ``segment_labels`` (int64), ``segment_start_times`` (int64, seconds = frame index) and
  ``segment_scores`` (float; > 0 is a positive rating). A segment is 5 frames.

Quantised bytes are dequantised as utils.py ``Dequantize`` does with its defaults (max 2, min -2):
x = q * 4/255 + 4/512 - 2. RGB and audio are concatenated, rgb first: 1152 channels per frame.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Sequence

import numpy as np

from mlgraph_cli.core.media.yt8m.protowire import (DecodedExample, ProtoError, decode_example, encode_example,
                                                   encode_sequence_example)
from mlgraph_cli.core.media.yt8m.tfrecord import BadRecord, read_records
from mlgraph_cli.errors import input_error

# The feature widths are part of YouTube-8M's file format, not a modelling choice.
RGB_DIM = 1024
AUDIO_DIM = 128
FEATURE_DIM = RGB_DIM + AUDIO_DIM
# Segments of YouTube-8M Segments are 5 frames (readers.py ``segment_size=5``).
SEGMENT_FRAMES = 5
# Dequantisation range of utils.py ``Dequantize`` (max_quantized_value=2, min_quantized_value=-2).
QUANT_MIN, QUANT_MAX = -2.0, 2.0
FLOAT16_MAX = 65504.0  # features files store float16

ID_KEYS = ("id", "video_id")


def dequantize(q: np.ndarray) -> np.ndarray:
    """uint8 -> float32 in [-2, 2): q * (max - min) / 255 + (max - min) / 512 + min."""
    span = QUANT_MAX - QUANT_MIN
    return q.astype(np.float32) * np.float32(span / 255.0) + np.float32(span / 512.0 + QUANT_MIN)


def quantize(x: np.ndarray) -> np.ndarray:
    """The inverse of :func:`dequantize`, rounded and clipped to uint8 (for writing test records)."""
    span = QUANT_MAX - QUANT_MIN
    q = np.round((np.asarray(x, np.float64) - QUANT_MIN - span / 512.0) * 255.0 / span)
    return np.clip(q, 0, 255).astype(np.uint8)


class UnusableRecord(ProtoError):
    """A well-formed record that cannot be used: a class index below 0, a clip with no frames."""


@dataclass
class VideoRecord:
    """One YouTube-8M video.

    frames: (T, 1152) float32 dequantised rgb|audio per second (frame level), or (1, 1152) for a
    video-level record (its mean_rgb|mean_audio). kind: "frame" or "video".
    labels: class indices (int64). segments: (start frame, class index, score) ratings.
    """

    id: str
    labels: np.ndarray
    frames: np.ndarray
    kind: str
    segments: list[tuple[int, int, float]] = field(default_factory=list)


def _first_bytes(ex: DecodedExample, keys: Sequence[str]) -> str | None:
    for key in keys:
        value = ex.features.get(key)
        if isinstance(value, list) and value:
            return value[0].decode("utf-8", errors="replace")
    return None


def _ints(ex: DecodedExample, key: str) -> np.ndarray:
    value = ex.features.get(key)
    if value is None or (isinstance(value, list) and not value):
        return np.zeros(0, np.int64)
    if not isinstance(value, np.ndarray) or value.dtype != np.int64:
        raise ProtoError(f"context {key!r} is not an int64 list")
    return value


def _stack_bytes(steps: list, key: str, width: int) -> np.ndarray:
    """A feature list of one bytes value per second -> (T, width) uint8."""
    rows = []
    for t, step in enumerate(steps):
        if not isinstance(step, list) or len(step) != 1 or len(step[0]) != width:
            size = len(step[0]) if isinstance(step, list) and step else 0
            raise ProtoError(f"{key!r} frame {t} has {size} bytes, expected {width}")
        rows.append(step[0])
    return np.frombuffer(b"".join(rows), dtype=np.uint8).reshape(len(rows), width)


def parse_record(data: bytes, *, context_only: bool = False) -> VideoRecord:
    """Decode one serialized YouTube-8M record (either kind). Raises :class:`ProtoError` if malformed.

    ``context_only`` skips the frames (id and labels only; ``frames`` is then empty).
    """
    ex = decode_example(data, context_only=context_only)
    vid = _first_bytes(ex, ID_KEYS)
    if vid is None:
        raise ProtoError("no 'id' (or 'video_id') in the context")
    labels = _ints(ex, "labels")
    if len(labels) and (labels < 0).any():  # class indices index the vocabulary: -1 is no class at all
        raise UnusableRecord(f"video {vid!r} has class index {int(labels[labels < 0][0])}, and class indices are >= 0")
    if ex.is_sequence:
        kind = "frame"
    elif "mean_rgb" in ex.features:
        kind = "video"
    else:
        raise ProtoError("neither frame features (rgb, audio) nor video features (mean_rgb, mean_audio)")
    segments: list[tuple[int, int, float]] = []
    if "segment_labels" in ex.features:
        seg_labels, seg_starts = _ints(ex, "segment_labels"), _ints(ex, "segment_start_times")
        seg_scores = ex.features.get("segment_scores")
        if not isinstance(seg_scores, np.ndarray) or seg_scores.dtype != np.float32:
            raise ProtoError("segment_scores is missing or not a float list")
        if not len(seg_labels) == len(seg_starts) == len(seg_scores):
            raise ProtoError(f"{len(seg_labels)} segment_labels, {len(seg_starts)} segment_start_times and "
                             f"{len(seg_scores)} segment_scores")
        segments = [(int(s), int(c), float(v)) for s, c, v in zip(seg_starts, seg_labels, seg_scores)]
    if context_only:
        return VideoRecord(vid, labels, np.zeros((0, FEATURE_DIM), np.float32), kind, segments)
    if kind == "frame":
        missing = [k for k in ("rgb", "audio") if k not in ex.feature_lists]
        if missing:
            raise ProtoError(f"no {' or '.join(repr(k) for k in missing)} feature list")
        rgb = _stack_bytes(ex.feature_lists["rgb"], "rgb", RGB_DIM)  # (T, 1024) uint8
        audio = _stack_bytes(ex.feature_lists["audio"], "audio", AUDIO_DIM)  # (T, 128) uint8
        if len(rgb) != len(audio):
            raise ProtoError(f"{len(rgb)} rgb frames but {len(audio)} audio frames")
        if not len(rgb):  # nothing to score or learn from: a mask of no frames scores 0.5 for every label
            raise UnusableRecord(f"video {vid!r} has no frames")
        frames = dequantize(np.concatenate([rgb, audio], axis=1))  # (T, 1152)
    else:
        rgb, audio = ex.features.get("mean_rgb"), ex.features.get("mean_audio")
        for key, value, width in (("mean_rgb", rgb, RGB_DIM), ("mean_audio", audio, AUDIO_DIM)):
            if not isinstance(value, np.ndarray) or value.dtype != np.float32 or value.shape != (width,):
                size = value.shape[0] if isinstance(value, np.ndarray) else 0
                raise ProtoError(f"{key!r} has {size} floats, expected {width}")
        frames = np.concatenate([rgb, audio])[None, :].astype(np.float32)  # (1, 1152)
        if not np.isfinite(frames).all() or np.abs(frames).max() > FLOAT16_MAX:  # stored as float16: inf there
            raise UnusableRecord(f"video {vid!r} has mean_rgb or mean_audio values that are not finite or beyond "
                                 f"+-{FLOAT16_MAX:g} (YouTube-8M's lie in -2 to 2)")
    return VideoRecord(vid, labels, frames, kind, segments)


def iter_videos(paths: Iterable[str | os.PathLike], *, context_only: bool = False, unique_ids: bool = True
                ) -> Iterator[tuple[str, int, VideoRecord | BadRecord]]:
    """Yield ``(path, record index, VideoRecord or BadRecord)`` over the files in order.

    Checksum failures and malformed messages come back as :class:`BadRecord`, never raised.
    ``unique_ids``: a video id met a second time (among ``paths``) is a one-line
    :class:`~mlgraph_cli.errors.InputError`, as an image listed twice is: its two records would
    be two rows of one id, with labels that may disagree.
    """
    seen: dict[str, str] = {}
    for path in paths:
        for index, item in read_records(path):
            if isinstance(item, BadRecord):
                yield str(path), index, item
                continue
            try:
                video = parse_record(item, context_only=context_only)
            except ProtoError as exc:
                reason = str(exc) if isinstance(exc, UnusableRecord) else f"not a YouTube-8M record ({exc})"
                yield str(path), index, BadRecord(str(path), index, reason)
                continue
            if unique_ids:
                first = seen.setdefault(video.id, f"{path}#{index}")
                if first != f"{path}#{index}":
                    raise input_error(f"{path}#{index}", f"video id {video.id!r} is also the id of record {first}",
                                      "give each video one record (YouTube-8M ids are unique)")
            yield str(path), index, video


# ---------------------------------------------------------------------------------------------
# writing records (tests, tools, examples)

def encode_frame_record(video_id: str, labels: Sequence[int], rgb: np.ndarray, audio: np.ndarray, *,
                        id_key: str = "id", segments: Sequence[tuple[int, int, float]] | None = None) -> bytes:
    """A frame-level SequenceExample: rgb (T, 1024) and audio (T, 128) uint8, one bytes value per second.

    ``segments``: (start, class index, score) ratings, written as YouTube-8M Segments does.
    """
    context: dict[str, object] = {id_key: video_id.encode("utf-8"), "labels": np.asarray(labels, np.int64)}
    if segments is not None:
        context["segment_labels"] = np.asarray([c for _, c, _ in segments], np.int64)
        context["segment_start_times"] = np.asarray([s for s, _, _ in segments], np.int64)
        context["segment_end_times"] = np.asarray([s + SEGMENT_FRAMES for s, _, _ in segments], np.int64)
        context["segment_scores"] = np.asarray([v for _, _, v in segments], np.float32)
    rgb, audio = np.asarray(rgb, np.uint8), np.asarray(audio, np.uint8)
    return encode_sequence_example(context, {"rgb": [row.tobytes() for row in rgb],
                                             "audio": [row.tobytes() for row in audio]})


def encode_video_record(video_id: str, labels: Sequence[int], mean_rgb: np.ndarray, mean_audio: np.ndarray, *,
                        id_key: str = "id") -> bytes:
    """A video-level Example: mean_rgb float[1024], mean_audio float[128]."""
    return encode_example({id_key: video_id.encode("utf-8"), "labels": np.asarray(labels, np.int64),
                           "mean_rgb": np.asarray(mean_rgb, np.float32),
                           "mean_audio": np.asarray(mean_audio, np.float32)})
