"""Video features in the mlgraph features file (``mlgraph/features@1``, attr ``modality = "video"``).

The layout is the image one (core/features/file.py), with frames in the place of locations:

- ``features``: (N, 1152, T, 1) float16, rgb (1024) then audio (128) per frame, T = the import's
  ``max_frames``; frames past a video's length are zeros. Video-level records: (N, 1152, 1, 1).
- ``lengths``: (N,) int32, the number of real frames of each video (1 for video-level records):
  the mask of frame t is ``t < lengths[i]``.
- ``labels``, ``label_names``, ``ids``, ``files`` (``<tfrecord>#<record index>``), ``skipped``
  (``<tfrecord>#<record index><TAB>reason``) as for images.
- Segment ratings (YouTube-8M Segments validation), one row per rated (segment, class):
  ``segment_video`` (row of the video), ``segment_start`` (first frame), ``segment_label`` (label
  column), ``segment_score`` (float32, > 0 positive). Empty for unrated data.
- attrs: ``modality = "video"``, ``frames`` (T), ``segment_frames`` (5), ``record_kind``
  ("frame" or "video"), ``label_class_ids`` (the YouTube-8M class index of each label column),
  ``feature_layout``, ``dequantization``, plus the image attrs (provenance, labels_digest, ...).

:class:`FeatureWriter` cannot hold per-video lengths or the ragged segment rows, so
:class:`VideoFeatureWriter` extends it: the extra rows are written before the base class
advances its counters, and a resumed file drops extra rows past ``rows_done`` exactly as the base
class drops feature rows.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import h5py
import numpy as np

from mlgraph_cli.core.features.checks import disk_errors
from mlgraph_cli.core.features.file import FeatureFile, FeatureWriter
from mlgraph_cli.core.io.hdf5 import check_finite, h5_dataset
from mlgraph_cli.core.io.inputs import special_file
from mlgraph_cli.errors import InputError

MODALITY = "video"
SEGMENT_DATASETS = {"segment_video": "int32", "segment_start": "int32", "segment_label": "int32",
                    "segment_score": "float32"}


class VideoFeatureWriter(FeatureWriter):
    """A :class:`FeatureWriter` that also keeps ``lengths`` and the segment rating rows."""

    def __init__(self, dest: str | os.PathLike, *, channels: int, frames: int, plan: str,
                 attrs: dict[str, Any], label_names: Sequence[str] | None = None) -> None:
        super().__init__(dest, shapes={"features": (channels, frames, 1)}, plan=plan,
                         attrs={**attrs, "modality": MODALITY, "frames": int(frames)}, label_names=label_names)
        f = self.file
        if "lengths" not in f:
            f.create_dataset("lengths", shape=(0,), maxshape=(None,), dtype="int32", chunks=(4096,))
        for name, dtype in SEGMENT_DATASETS.items():
            if name not in f:
                f.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dtype, chunks=(4096,))
        rows = self.rows_done
        if f["lengths"].shape[0] != rows:
            f["lengths"].resize(rows, axis=0)
        # Segment rows are appended in video order: keep those of videos below rows_done.
        keep = int(np.searchsorted(f["segment_video"][:], rows, side="left"))
        for name in SEGMENT_DATASETS:
            if f[name].shape[0] != keep:
                f[name].resize(keep, axis=0)
        f.flush()

    def append(self, maps: dict[str, np.ndarray], ids: Sequence[str], files: Sequence[str], labels: np.ndarray | None,
               inputs_consumed: int, skipped: Sequence[str] = (), *, lengths: np.ndarray,
               segments: np.ndarray | None = None) -> None:
        """Write a batch: ``maps["features"]`` (B, D, T, 1), ``lengths`` (B,), labels (B, C) int8, and
        segment rows, then advance the counters (the base class does that last).

        ``segments``: (S, 4) float64 rows ``(batch row, start, label column, score)``; batch rows are
        turned into file rows here.
        """
        with disk_errors(self.path):  # a full disk: one OSError naming the partial file
            f = self.file
            start = self.rows_done
            ds = f["lengths"]
            ds.resize(start + len(ids), axis=0)
            ds[start:] = np.asarray(lengths, np.int32)
            if segments is not None and len(segments):
                seg = np.asarray(segments, dtype=np.float64)
                cols = {"segment_video": seg[:, 0] + start, "segment_start": seg[:, 1],
                        "segment_label": seg[:, 2], "segment_score": seg[:, 3]}
                for name, dtype in SEGMENT_DATASETS.items():
                    ds = f[name]
                    k = ds.shape[0]
                    ds.resize(k + len(seg), axis=0)
                    ds[k:] = cols[name].astype(dtype)
        super().append(maps, ids, files, labels, inputs_consumed, skipped)


@dataclass
class Segments:
    """Rated segments: video row, start frame, label column, score (> 0 positive), each (S,)."""

    video: np.ndarray
    start: np.ndarray
    label: np.ndarray
    score: np.ndarray

    def __len__(self) -> int:
        return len(self.video)


class VideoFeatureFile(FeatureFile):
    """A features file made by ``mlgraph import-yt8m``: adds ``lengths``, ``mask()`` and ``segments``.

    Opening checks them as the base class checks the rest: ``lengths`` N whole numbers from 0 to T,
    the segment datasets of one length, each segment on a row of the file and a label column of
    it, with a start >= 0 and a finite score."""

    def __init__(self, path: str | os.PathLike) -> None:
        super().__init__(path)
        if self.attrs.get("modality") != MODALITY:
            raise InputError(f"{self.path}: an image features file, not a video one "
                             f"(make one with `mlgraph import-yt8m`)")
        fix = f"remake it with `{self.maker}`"
        n, t = len(self.ids), self.frames
        with self._reader() as f:
            self.lengths = h5_dataset(f, "lengths", self.path, kinds="iu", ndim=1, rows=n, fix=fix)[:].astype(np.int64)
            columns = [h5_dataset(f, name, self.path, kinds=kinds, ndim=1, fix=fix)[:]
                       for name, kinds in zip(SEGMENT_DATASETS, ("iu", "iu", "iu", "f"))]
        if len(self.lengths) and not ((self.lengths >= 0) & (self.lengths <= t)).all():
            raise InputError(f"{self.path}: `lengths` holds values outside 0 to {t} frames ({fix})")
        if len({len(c) for c in columns}) > 1:
            raise InputError(f"{self.path}: the segment datasets have different lengths ({fix})")
        video, start, label, score = columns
        c = len(self.label_names or [])
        for name, values, top in (("segment_video", video, n), ("segment_start", start, np.inf),
                                  ("segment_label", label, c)):
            if len(values) and not ((values >= 0) & (values < top)).all():
                raise InputError(f"{self.path}: `{name}` holds values outside 0 to {top - 1:g} ({fix})")
        check_finite(score, "segment_score", self.path, fix)
        self.segments = Segments(video.astype(np.int64), start.astype(np.int64), label.astype(np.int64),
                                 score.astype(np.float32))

    def _reader(self):
        return h5py.File(self.path, "r")

    @property
    def frames(self) -> int:
        """T, the padded number of frames per video."""
        return int(self.feature_shape[1])

    def mask(self, rows: np.ndarray | slice | None = None) -> np.ndarray:
        """(N, T) bool: True for real frames."""
        lengths = self.lengths if rows is None else self.lengths[rows]
        return np.arange(self.frames)[None, :] < lengths[:, None]


def is_video_features(path: str | os.PathLike) -> bool:
    """Whether a features file holds video (``modality = "video"``); False for image features."""
    if special_file(path) is not None:  # a FIFO would block the open: the reader names what it is
        return False
    try:
        with h5py.File(Path(path), "r") as f:
            value = f.attrs.get("modality")
    except OSError:
        return False
    return isinstance(value, (str, bytes)) and (value.decode("utf-8", "replace") if isinstance(value, bytes)
                                                else value) == MODALITY


def load_video_features(path: str | os.PathLike, rows: Sequence[int] | None = None) -> dict[str, Any]:
    """Everything a trainer needs, in memory.

    Returns ``features`` (N, D, T) float32, ``mask`` (N, T) bool, ``labels`` (N, C) int8 or None,
    ``label_names``, ``ids``, and ``segments`` (:class:`Segments`, video rows refer to the full
    file). ``rows`` (sorted) picks a subset of videos.
    """
    vf = VideoFeatureFile(path)
    try:
        index = slice(None) if rows is None else np.asarray(rows)
        x = vf.read(slice(None) if rows is None else list(np.asarray(rows)))[..., 0]  # (N, D, T, 1) -> (N, D, T)
        labels = None if vf.labels is None else vf.labels[index]
        return {"features": x, "mask": vf.mask(index), "labels": labels, "label_names": vf.label_names,
                "ids": [vf.ids[i] for i in (range(len(vf)) if rows is None else rows)],
                "segments": vf.segments, "attrs": vf.attrs}
    finally:
        vf.close()
