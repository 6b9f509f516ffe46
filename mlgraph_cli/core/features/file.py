"""The features file (schema ``mlgraph/features@1``): backbone maps of a set of images.

Layout (HDF5):
- ``features``: (N, D, H, W) float16, chunked one image per chunk: the main (last) stage.
- ``features_aux``: (N, D', H', W') float16, optional: an earlier stage, for MS-CMA.
- ``ids``: (N,) utf-8 image ids; ``files``: (N,) utf-8 image paths (relative to ``attrs['images_root']``).
- ``labels``: (N, C) int8, 1 positive / 0 negative / -1 ignore (difficult, unknown); absent without annotations.
- ``label_names``: (C,) utf-8, present with ``labels``.
- ``skipped``: (K,) utf-8 ``path<TAB>reason`` for inputs that could not be read.
- ``row_crc``: (N,) uint32 CRC-32 of each row (maps, id, labels); ``row_commit``: (N, 2) int64, the
  inputs_done and skipped_done of the batch that wrote the row (absent in files made before them).
- attrs: schema, backbone, weights, image_size, layers, preprocessing, labels_digest, provenance,
  rows_done (rows written), skipped_done (entries of ``skipped``), inputs_done (inputs consumed, skipped
  ones included), plan_digest, complete.

Resume: the file is built under ``.<name>.partial`` beside the destination; rows are appended in
input order and the two counters are updated after each batch is flushed, so a run killed at any
point restarts from ``inputs_done`` (rows past ``rows_done`` are truncated). On resume every row is
read back and checked against ``row_crc``; the file is cut at the start of the first batch with a
row that is not what was written (a full disk can leave counters whose rows never got there).
When every input is consumed the file is marked complete and renamed onto the destination.
Reading checks every dataset, the maps' fletcher32 checksums and finiteness, labels in {-1, 0, 1}.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Sequence

import h5py
import numpy as np

from mlgraph_cli.core.io.outputs import WriteLock, output_target
from mlgraph_cli.core.io.hdf5 import FLOATS, NUMBERS, h5_dataset, h5_open, h5_read_attrs, h5_strings, h5_write_attrs
from mlgraph_cli.core.io.artifacts import labels_digest, schema_tag
from mlgraph_cli.core.features.checks import (check_file_attrs, check_finite, check_free_space, check_labels,
                                              check_virtual_sources, damaged, disk_errors, map_shape, row_crcs,
                                              rows_digest, truncate_to_verified)

MAIN = "features"
AUX = "features_aux"


def partial_path(dest: str | os.PathLike) -> Path:
    """Where an unfinished features file lives until it is complete."""
    d = Path(dest)
    return d.with_name(f".{d.name}.partial")


def plan_digest(files: Sequence[str], attrs: dict[str, Any]) -> str:
    """Fingerprint of what a run will produce: its inputs in order and the extraction settings."""
    h = hashlib.sha256()
    h.update("\n".join(files).encode("utf-8"))
    h.update(json.dumps(attrs, sort_keys=True, default=str).encode("utf-8"))
    return h.hexdigest()[:24]


class FeatureWriter:
    """Append backbone maps batch by batch into a resumable features file.

    ``shapes`` maps dataset name (``features``, optionally ``features_aux``) to the per-image
    shape (D, H, W). ``plan`` is what identifies the run (see :func:`plan_digest`): a partial file
    with another plan is discarded instead of resumed. Only one writer may hold a destination
    (:class:`~mlgraph_cli.core.io.outputs.WriteLock`).
    """

    def __init__(self, dest: str | os.PathLike, *, shapes: dict[str, tuple[int, int, int]], plan: str,
                 attrs: dict[str, Any], label_names: Sequence[str] | None = None) -> None:
        self.dest = output_target(dest, stream_ok=False)[0]  # a file, never a device or a pipe; links followed
        self.path = partial_path(self.dest)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.lock = WriteLock(self.dest)
        self.num_labels = len(label_names) if label_names is not None else 0
        self.names = list(shapes)
        self.dropped = 0  # rows found damaged on resume and written again
        self._held: dict[str, Any] = {}
        self.discarded = False  # a partial file of another plan (or unreadable) was removed
        self.resumed = False
        try:
            if self.path.exists():
                try:
                    f = h5py.File(self.path, "a", rdcc_nbytes=0)
                    if f.attrs.get("plan_digest") == plan and all(n in f for n in shapes):
                        self.resumed = True
                    else:
                        f.close()
                except OSError:  # a file killed before its header was complete: start over
                    pass
                if not self.resumed:
                    self.path.unlink(missing_ok=True)
                    self.discarded = True
            if not self.resumed:
                f = self._create(h5py, shapes, plan, attrs, label_names)
            self.file = f
            self.dropped = truncate_to_verified(f, self.names)
            # Held open so a chunk is written by f.flush(), which reports a failed write; chunks of a
            # dataset whose last handle closes are written while h5py ignores any error.
            self._held = {name: f[name] for name in f}
        except BaseException:
            self.lock.release()
            raise

    def _create(self, h5py, shapes, plan, attrs, label_names):
        f = h5py.File(self.path, "w", rdcc_nbytes=0)
        str_t = h5py.string_dtype("utf-8")
        for name, shape in shapes.items():
            # fletcher32: a chunk whose bytes changed on disk is an error when read, not wrong numbers.
            f.create_dataset(name, shape=(0, *shape), maxshape=(None, *shape), dtype="float16", chunks=(1, *shape),
                             fletcher32=True)
        f.create_dataset("ids", shape=(0,), maxshape=(None,), dtype=str_t, chunks=(1024,))
        f.create_dataset("files", shape=(0,), maxshape=(None,), dtype=str_t, chunks=(1024,))
        f.create_dataset("skipped", shape=(0,), maxshape=(None,), dtype=str_t, chunks=(64,))
        f.create_dataset("row_crc", shape=(0,), maxshape=(None,), dtype="uint32", chunks=(4096,))
        f.create_dataset("row_commit", shape=(0, 2), maxshape=(None, 2), dtype="int64", chunks=(4096, 2))
        if label_names is not None:
            f.create_dataset("labels", shape=(0, self.num_labels), maxshape=(None, self.num_labels),
                             dtype="int8", chunks=(1024, max(self.num_labels, 1)))
            f.create_dataset("label_names", data=np.array(list(label_names), dtype=object), dtype=str_t)
        h5_write_attrs(f, {"schema": schema_tag("features"), **attrs,
                           "labels_digest": labels_digest(label_names) if label_names is not None else ""})
        f.attrs["plan_digest"] = plan
        for counter in ("rows_done", "inputs_done", "skipped_done"):
            f.attrs[counter] = 0
        f.attrs["complete"] = False
        f.flush()
        return f

    @property
    def rows_done(self) -> int:
        return int(self.file.attrs["rows_done"])

    @property
    def inputs_done(self) -> int:
        return int(self.file.attrs["inputs_done"])

    def append(self, maps: dict[str, np.ndarray], ids: Sequence[str], files: Sequence[str],
               labels: np.ndarray | None, inputs_consumed: int, skipped: Sequence[str] = ()) -> None:
        """Write one batch: ``maps[name]`` is (B, D, H, W); then advance the counters.

        A write the disk refuses is an ``OSError`` naming the partial file (h5py raises some as
        RuntimeError); the counters do not move, so the batch is written again on resume.
        """
        with disk_errors(self.path):
            self._append(maps, ids, files, labels, inputs_consumed, skipped)

    def _append(self, maps, ids, files, labels, inputs_consumed, skipped) -> None:
        f = self.file
        start, b = self.rows_done, len(ids)
        check_free_space(self.path, sum(maps[n].size * 2 for n in self.names) if b else 0)
        inputs_after = self.inputs_done + inputs_consumed
        held = self._held
        skipped_after = held["skipped"].shape[0] + len(skipped)
        if b:
            maps = {n: np.asarray(maps[n]).astype(np.float16, copy=False) for n in self.names}
            has_labels = "labels" in f and labels is not None
            rows = {**maps, "ids": np.array(list(ids), dtype=object), "files": np.array(list(files), dtype=object),
                    "row_crc": row_crcs(self.names, maps, ids, labels if has_labels else None).astype(np.uint32),
                    "row_commit": np.tile(np.array([inputs_after, skipped_after], np.int64), (b, 1))}
            if has_labels:
                rows["labels"] = labels.astype(np.int8, copy=False)
            for name, values in rows.items():
                ds = held[name]
                ds.resize(start + b, axis=0)
                ds[start:start + b] = values
        if skipped:
            ds = held["skipped"]
            k = ds.shape[0]
            ds.resize(k + len(skipped), axis=0)
            ds[k:] = np.array(list(skipped), dtype=object)
        f.flush()
        # Counters last: a batch is only counted once its rows are on disk.
        f.attrs["rows_done"] = start + b
        f.attrs["skipped_done"] = skipped_after
        f.attrs["inputs_done"] = inputs_after
        f.flush()

    def finish(self, extra_attrs: dict[str, Any] | None = None) -> Path:
        """Mark complete, close, and rename onto the destination."""
        if extra_attrs:
            h5_write_attrs(self.file, extra_attrs)
        self.file.attrs["complete"] = True
        self._held.clear()
        with disk_errors(self.path):
            self.file.close()
        try:
            os.replace(self.path, self.dest)
        finally:
            self.lock.release()
        return self.dest

    def close(self) -> None:
        """Close without finishing (the partial file stays, to be resumed)."""
        self._held.clear()
        try:
            self.file.close()
        except Exception:  # already closed, or the disk refuses the last flush
            pass
        self.lock.release()


class FeatureFile:
    """Read access to a features file, opened lazily per process (safe with DataLoader workers).
    Opening checks every dataset and attribute a consumer relies on (core/features/checks.py), so a
    hand-edited file is one line naming the dataset, never a traceback or a silent subset."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        with h5_open(self.path, "features") as f:
            self.attrs = h5_read_attrs(f)
            self.maker = "mlgraph import-yt8m" if self.attrs.get("modality") == "video" else "mlgraph extract"
            fix = f"remake it with `{self.maker}`"
            check_file_attrs(self.path, self.attrs, fix)
            main = h5_dataset(f, MAIN, self.path, kinds=FLOATS, ndim=4, fix=fix)
            n = main.shape[0]
            self.feature_shape = map_shape(main, MAIN, self.path, fix)  # (D, H, W), each >= 1
            aux = h5_dataset(f, AUX, self.path, kinds=FLOATS, ndim=4, rows=n, fix=fix, required=False)
            self.aux_shape = map_shape(aux, AUX, self.path, fix) if aux is not None else None
            self.ids = h5_strings(f, "ids", self.path, rows=n, fix=fix)
            self.files = h5_strings(f, "files", self.path, rows=n, fix=fix)
            labels = h5_dataset(f, "labels", self.path, kinds=NUMBERS, ndim=2, rows=n, fix=fix, required=False)
            self.labels = labels[:] if labels is not None else None
            self.label_names = h5_strings(f, "label_names", self.path, fix=fix, required=labels is not None,
                                          rows=labels.shape[1] if labels is not None else None)
            self.skipped = h5_strings(f, "skipped", self.path, fix=fix, required=False) or []
            check_virtual_sources(self.path, f)  # a merge --virtual's shard files must be beside it
        if self.labels is not None:
            check_labels(self.path, self.labels, self.maker)
        self._h5 = None
        self._pid = None

    def __len__(self) -> int:
        return len(self.ids)

    def content_digest(self) -> str:
        """The rows' fingerprint (:func:`rows_digest`): ``--resume`` notices a file made again in place."""
        return rows_digest(self.path, self.ids, self.labels, self.attrs, self.feature_shape)

    @property
    def has_aux(self) -> bool:
        return self.aux_shape is not None

    def _file(self):
        if self._h5 is None or self._pid != os.getpid():
            self._h5 = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._h5

    def read(self, index: int | Sequence[int] | slice, name: str = MAIN) -> np.ndarray:
        """Feature maps as float32: (D, H, W) for an int, (B, D, H, W) for a sorted list or slice. A chunk
        whose checksum fails, or maps that are not finite, are a one-line :class:`InputError`."""
        try:
            out = self._read(index, name)
        except OSError as exc:
            raise damaged(self.path, name, index, exc, self.maker) from None
        check_finite(self.path, out, name, index, self.maker)
        return out

    def _read(self, index: int | Sequence[int] | slice, name: str) -> np.ndarray:
        ds = self._file()[name]
        if isinstance(index, (int, np.integer, slice)):
            return ds[index if isinstance(index, slice) else int(index)].astype(np.float32)
        idx = np.asarray(index, dtype=np.int64)
        out = np.empty((len(idx), *ds.shape[1:]), dtype=np.float32)
        # h5py's fancy indexing is ~20x slower than slicing one-image chunks: read each run of
        # consecutive rows as one slice, in sorted order, and scatter back.
        order = np.argsort(idx, kind="stable")
        sorted_idx = idx[order]
        breaks = np.flatnonzero(np.diff(sorted_idx) != 1) + 1
        for run_pos in np.split(np.arange(len(idx)), breaks):
            if len(run_pos) == 0:
                continue
            lo, hi = sorted_idx[run_pos[0]], sorted_idx[run_pos[-1]] + 1
            if hi - lo == len(run_pos):
                out[order[run_pos]] = ds[lo:hi]
            else:  # repeated indices
                for pos in run_pos:
                    out[order[pos]] = ds[sorted_idx[pos]]
        return out

    def close(self) -> None:
        if self._h5 is not None:
            self._h5.close()
            self._h5 = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_h5": None, "_pid": None}


def open_features(path: str | os.PathLike) -> FeatureFile:
    return FeatureFile(path)

