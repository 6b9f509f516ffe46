"""YouTube-8M records, vocabulary and label columns (REFERENCE.md section 3; google/youtube-8m readers.py).

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

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from mlgraph_cli.core.video.protowire import DecodedExample, ProtoError, decode_example
from mlgraph_cli.core.video.tfrecord import BadRecord, read_records
from mlgraph_cli.errors import input_error

# The feature widths are part of YouTube-8M's file format, not a modelling choice.
RGB_DIM = 1024
AUDIO_DIM = 128
FEATURE_DIM = RGB_DIM + AUDIO_DIM
# Segments of YouTube-8M Segments are 5 frames (readers.py ``segment_size=5``).
SEGMENT_FRAMES = 5
# Dequantisation range of utils.py ``Dequantize`` (max_quantized_value=2, min_quantized_value=-2).
QUANT_MIN, QUANT_MAX = -2.0, 2.0

ID_KEYS = ("id", "video_id")
VOCAB_FIX = "use YouTube-8M's vocabulary.csv (header Index,TrainVideoCount,KnowledgeGraphId,Name,...)"
SEGMENT_FIX = "use YouTube-8M's segment_label_ids.csv (header Index, one class index per line)"


def dequantize(q: np.ndarray) -> np.ndarray:
    """uint8 -> float32 in [-2, 2): q * (max - min) / 255 + (max - min) / 512 + min."""
    span = QUANT_MAX - QUANT_MIN
    return q.astype(np.float32) * np.float32(span / 255.0) + np.float32(span / 512.0 + QUANT_MIN)


def quantize(x: np.ndarray) -> np.ndarray:
    """The inverse of :func:`dequantize`, rounded and clipped to uint8 (for writing test records)."""
    span = QUANT_MAX - QUANT_MIN
    q = np.round((np.asarray(x, np.float64) - QUANT_MIN - span / 512.0) * 255.0 / span)
    return np.clip(q, 0, 255).astype(np.uint8)


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
        frames = dequantize(np.concatenate([rgb, audio], axis=1))  # (T, 1152)
    else:
        rgb, audio = ex.features.get("mean_rgb"), ex.features.get("mean_audio")
        for key, value, width in (("mean_rgb", rgb, RGB_DIM), ("mean_audio", audio, AUDIO_DIM)):
            if not isinstance(value, np.ndarray) or value.dtype != np.float32 or value.shape != (width,):
                size = value.shape[0] if isinstance(value, np.ndarray) else 0
                raise ProtoError(f"{key!r} has {size} floats, expected {width}")
        frames = np.concatenate([rgb, audio])[None, :].astype(np.float32)  # (1, 1152)
    return VideoRecord(vid, labels, frames, kind, segments)


def iter_videos(paths: Iterable[str | os.PathLike], *, context_only: bool = False
                ) -> Iterator[tuple[str, int, VideoRecord | BadRecord]]:
    """Yield ``(path, record index, VideoRecord or BadRecord)`` over the files in order.

    Checksum failures and malformed messages come back as :class:`BadRecord`, never raised.
    """
    for path in paths:
        for index, item in read_records(path):
            if isinstance(item, BadRecord):
                yield str(path), index, item
                continue
            try:
                yield str(path), index, parse_record(item, context_only=context_only)
            except ProtoError as exc:
                yield str(path), index, BadRecord(str(path), index, f"not a YouTube-8M record ({exc})")


# ---------------------------------------------------------------------------------------------
# vocabulary and label columns

@dataclass
class Vocabulary:
    """YouTube-8M ``vocabulary.csv``: class index -> name."""

    names: dict[int, str]
    source: str = ""


def _open_csv(path: Path, fix: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header (lower-cased) and (line number, row) pairs of a CSV file."""
    if not path.is_file():
        raise input_error(path, "no such file", fix)
    with open(path, newline="", encoding="utf-8", errors="replace") as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader)
        except StopIteration:
            raise input_error(path, "the file is empty", fix) from None
        except csv.Error as exc:
            raise input_error(path, f"malformed CSV ({exc})", fix, line=1) from None
        rows = []
        try:
            for row in reader:
                if any(cell.strip() for cell in row):
                    rows.append((reader.line_num, row))
        except csv.Error as exc:
            raise input_error(path, f"malformed CSV ({exc})", fix, line=reader.line_num) from None
    return [h.strip().lower() for h in header], rows


def _index(path: Path, line: int, text: str, fix: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise input_error(path, f"class index {text.strip()!r} is not an integer", fix, line=line) from None
    if value < 0:
        raise input_error(path, f"class index {value} is negative", fix, line=line)
    return value


def read_vocabulary(path: str | os.PathLike) -> Vocabulary:
    """Read ``vocabulary.csv`` (columns ``Index`` and ``Name`` required; others ignored)."""
    p = Path(path)
    header, rows = _open_csv(p, VOCAB_FIX)
    if "index" not in header or "name" not in header:
        raise input_error(p, f"the header has no {'Index' if 'index' not in header else 'Name'} column", VOCAB_FIX,
                          line=1)
    ci, cn = header.index("index"), header.index("name")
    names: dict[int, str] = {}
    seen: dict[str, int] = {}
    for line, row in rows:
        if len(row) <= max(ci, cn):
            raise input_error(p, f"{len(row)} columns, the header has {len(header)}", VOCAB_FIX, line=line)
        idx = _index(p, line, row[ci], VOCAB_FIX)
        if idx in names:
            raise input_error(p, f"class index {idx} appears twice", VOCAB_FIX, line=line)
        name = row[cn].strip() or str(idx)
        if name in seen:  # label names must be unique; disambiguate like the data would
            name = f"{name} ({idx})"
        seen[name] = idx
        names[idx] = name
    if not names:
        raise input_error(p, "no classes after the header", VOCAB_FIX)
    return Vocabulary(names=names, source=str(p))


def read_segment_classes(path: str | os.PathLike) -> list[int]:
    """Read ``segment_label_ids.csv``: header ``Index``, one class index per line; sorted, unique."""
    p = Path(path)
    header, rows = _open_csv(p, SEGMENT_FIX)
    if header[:1] != ["index"]:
        raise input_error(p, f"the header is {','.join(header)!r}, expected 'Index'", SEGMENT_FIX, line=1)
    out = sorted({_index(p, line, row[0], SEGMENT_FIX) for line, row in rows})
    if not out:
        raise input_error(p, "no class indices after the header", SEGMENT_FIX)
    return out


@dataclass
class LabelSpace:
    """The label columns of an import: YouTube-8M class indices in ascending order, and their names."""

    class_ids: list[int]
    names: list[str]

    def __post_init__(self) -> None:
        self.column = {c: j for j, c in enumerate(self.class_ids)}

    def __len__(self) -> int:
        return len(self.class_ids)


def label_space(vocabulary: Vocabulary | None, segment_classes: Sequence[int] | None,
                seen: Iterable[int] = ()) -> LabelSpace:
    """Columns: the vocabulary's classes (restricted to ``segment_classes`` when given), else the
    segment classes, else the classes ``seen`` in the data. Order: class index (vocabulary order);
    names: the vocabulary's, else the indices as strings.
    """
    if segment_classes is not None:
        ids = sorted(set(segment_classes))
    elif vocabulary is not None:
        ids = sorted(vocabulary.names)
    else:
        ids = sorted(set(int(c) for c in seen))
    if vocabulary is not None:
        missing = [c for c in ids if c not in vocabulary.names]
        if missing:
            raise input_error(vocabulary.source, f"{len(missing)} segment class(es) are not in the vocabulary "
                              f"(first: {missing[0]})", "pass the vocabulary.csv that goes with segment_label_ids.csv")
        names = [vocabulary.names[c] for c in ids]
    else:
        names = [str(c) for c in ids]
    return LabelSpace(class_ids=ids, names=names)


def load_yt8m_annotations(paths: Sequence[str | os.PathLike], vocabulary: str | os.PathLike | Vocabulary | None = None,
                          *, segment_classes: str | os.PathLike | Sequence[int] | None = None):
    """The video labels of YouTube-8M TFRecords as :class:`~mlgraph_cli.core.annotations.Annotations`.

    Reads only each record's context (id, labels), so ``build-graph`` can count co-occurrences of
    a frame-level shard without decoding its frames. Columns as :func:`label_space`; a label not
    among them is dropped (counted in ``notes``). Corrupt records are skipped and listed in ``notes``.
    ``files`` holds ``<tfrecord path>#<record index>``. Raises a one-line InputError if no record
    could be read.
    """
    import scipy.sparse as sp

    from mlgraph_cli.core.annotations import Annotations

    vocab = read_vocabulary(vocabulary) if isinstance(vocabulary, (str, os.PathLike)) else vocabulary
    seg = read_segment_classes(segment_classes) if isinstance(segment_classes, (str, os.PathLike)) else segment_classes
    ids: list[str] = []
    files: list[str | None] = []
    label_lists: list[np.ndarray] = []
    bad: list[BadRecord] = []
    paths = [str(p) for p in paths]
    for path, index, item in iter_videos(paths, context_only=True):
        if isinstance(item, BadRecord):
            bad.append(item)
            continue
        ids.append(item.id)
        files.append(f"{path}#{index}")
        label_lists.append(item.labels)
    if not ids:
        first = bad[0] if bad else None
        raise input_error(first.path if first else (paths[0] if paths else "(no files)"),
                          f"no readable YouTube-8M record ({first.reason})" if first else "no records",
                          "pass frame- or video-level YouTube-8M TFRecords")
    seen = np.unique(np.concatenate(label_lists)) if label_lists else np.zeros(0, np.int64)
    space = label_space(vocab, seg, seen.tolist())
    rows, cols = [], []
    dropped = 0
    for i, labels in enumerate(label_lists):
        for c in labels.tolist():
            j = space.column.get(int(c))
            if j is None:
                dropped += 1
            else:
                rows.append(i)
                cols.append(j)
    y = sp.csr_matrix((np.ones(len(rows), np.uint8), (rows, cols)), shape=(len(ids), len(space)))
    y.sum_duplicates()
    y.data[:] = 1
    notes = [f"skipped {b}" for b in bad]
    if dropped:
        notes.append(f"{dropped} label(s) outside the {len(space)} label columns were dropped")
    return Annotations(labels=space.names, image_ids=ids, files=files, positives=y.astype(np.uint8).tocsr(),
                       ignore=None, source=paths[0] if len(paths) == 1 else f"{paths[0]} (+{len(paths) - 1} files)",
                       format="yt8m", notes=notes,
                       meta={"label_order": "id", "class_ids": space.class_ids, "bad_records": len(bad)})


# ---------------------------------------------------------------------------------------------
# writing records (tests, tools, examples)

def encode_frame_record(video_id: str, labels: Sequence[int], rgb: np.ndarray, audio: np.ndarray, *,
                        id_key: str = "id", segments: Sequence[tuple[int, int, float]] | None = None) -> bytes:
    """A frame-level SequenceExample: rgb (T, 1024) and audio (T, 128) uint8, one bytes value per second.

    ``segments``: (start, class index, score) ratings, written as YouTube-8M Segments does.
    """
    from mlgraph_cli.core.video.protowire import encode_sequence_example

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
    from mlgraph_cli.core.video.protowire import encode_example

    return encode_example({id_key: video_id.encode("utf-8"), "labels": np.asarray(labels, np.int64),
                           "mean_rgb": np.asarray(mean_rgb, np.float32),
                           "mean_audio": np.asarray(mean_audio, np.float32)})
