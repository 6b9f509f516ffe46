"""The features file (schema ``mlgraph/features@1``): backbone maps of a set of images.

Layout (HDF5):
- ``features``: (N, D, H, W) float16, chunked one image per chunk: the main (last) stage.
- ``features_aux``: (N, D', H', W') float16, optional: an earlier stage, for MS-CMA.
- ``ids``: (N,) utf-8 image ids; ``files``: (N,) utf-8 image paths (relative to ``attrs['images_root']``).
- ``labels``: (N, C) int8, 1 positive / 0 negative / -1 ignore (difficult, unknown); absent without annotations.
- ``label_names``: (C,) utf-8, present with ``labels``.
- ``skipped``: (K,) utf-8 ``path<TAB>reason`` for inputs that could not be read.
- attrs: schema, backbone, weights, image_size, layers, preprocessing, labels_digest, provenance,
  rows_done (rows written), skipped_done (entries of ``skipped``), inputs_done (inputs consumed, skipped
  ones included), plan_digest, complete.

Resume: the file is built under ``.<name>.partial`` beside the destination; rows are appended in
input order and the two counters are updated after each batch is flushed, so a run killed at any
point restarts from ``inputs_done`` (rows past ``rows_done`` are truncated). When every input is
consumed the file is marked complete and renamed onto the destination.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mlgraph_cli.core.artifacts import h5_open, h5_read_attrs, h5_read_strings, h5_write_attrs, labels_digest, schema_tag
from mlgraph_cli.errors import InputError

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
    with another plan is discarded instead of resumed.
    """

    def __init__(self, dest: str | os.PathLike, *, shapes: dict[str, tuple[int, int, int]], plan: str,
                 attrs: dict[str, Any], label_names: Sequence[str] | None = None) -> None:
        import h5py

        self.dest = Path(dest)
        self.path = partial_path(dest)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.num_labels = len(label_names) if label_names is not None else 0
        resumed = False
        if self.path.exists():
            try:
                f = h5py.File(self.path, "a")
                if f.attrs.get("plan_digest") == plan and all(n in f for n in shapes):
                    resumed = True
                else:
                    f.close()
            except OSError:  # a file killed before its header was complete: start over
                pass
            if not resumed:
                self.path.unlink(missing_ok=True)
        if not resumed:
            f = h5py.File(self.path, "w")
            str_t = h5py.string_dtype("utf-8")
            for name, shape in shapes.items():
                f.create_dataset(name, shape=(0, *shape), maxshape=(None, *shape), dtype="float16",
                                 chunks=(1, *shape))
            f.create_dataset("ids", shape=(0,), maxshape=(None,), dtype=str_t, chunks=(1024,))
            f.create_dataset("files", shape=(0,), maxshape=(None,), dtype=str_t, chunks=(1024,))
            f.create_dataset("skipped", shape=(0,), maxshape=(None,), dtype=str_t, chunks=(64,))
            if label_names is not None:
                f.create_dataset("labels", shape=(0, self.num_labels), maxshape=(None, self.num_labels),
                                 dtype="int8", chunks=(1024, max(self.num_labels, 1)))
                f.create_dataset("label_names", data=np.array(list(label_names), dtype=object), dtype=str_t)
            h5_write_attrs(f, {"schema": schema_tag("features"), **attrs,
                               "labels_digest": labels_digest(label_names) if label_names is not None else ""})
            f.attrs["plan_digest"] = plan
            f.attrs["rows_done"] = 0
            f.attrs["inputs_done"] = 0
            f.attrs["skipped_done"] = 0
            f.attrs["complete"] = False
            f.flush()
        self.file = f
        self.names = list(shapes)
        # Rows past the counter were written by a batch that never finished: drop them.
        rows = int(f.attrs["rows_done"])
        for name in [*self.names, "ids", "files"] + (["labels"] if "labels" in f else []):
            if f[name].shape[0] != rows:
                f[name].resize(rows, axis=0)
        skipped = int(f.attrs.get("skipped_done", 0))
        if f["skipped"].shape[0] != skipped:
            f["skipped"].resize(skipped, axis=0)
        self.resumed = resumed

    @property
    def rows_done(self) -> int:
        return int(self.file.attrs["rows_done"])

    @property
    def inputs_done(self) -> int:
        return int(self.file.attrs["inputs_done"])

    def append(self, maps: dict[str, np.ndarray], ids: Sequence[str], files: Sequence[str],
               labels: np.ndarray | None, inputs_consumed: int, skipped: Sequence[str] = ()) -> None:
        """Write one batch: ``maps[name]`` is (B, D, H, W); then advance the counters."""
        f = self.file
        start, b = self.rows_done, len(ids)
        if b:
            for name in self.names:
                ds = f[name]
                ds.resize(start + b, axis=0)
                ds[start:start + b] = maps[name].astype(np.float16, copy=False)
            for name, values in (("ids", ids), ("files", files)):
                ds = f[name]
                ds.resize(start + b, axis=0)
                ds[start:start + b] = np.array(list(values), dtype=object)
            if "labels" in f and labels is not None:
                ds = f["labels"]
                ds.resize(start + b, axis=0)
                ds[start:start + b] = labels.astype(np.int8, copy=False)
        if skipped:
            ds = f["skipped"]
            k = ds.shape[0]
            ds.resize(k + len(skipped), axis=0)
            ds[k:] = np.array(list(skipped), dtype=object)
        f.flush()
        # Counters last: a batch is only counted once its rows are on disk.
        f.attrs["rows_done"] = start + b
        f.attrs["skipped_done"] = f["skipped"].shape[0]
        f.attrs["inputs_done"] = self.inputs_done + inputs_consumed
        f.flush()

    def finish(self, extra_attrs: dict[str, Any] | None = None) -> Path:
        """Mark complete, close, and rename onto the destination."""
        if extra_attrs:
            h5_write_attrs(self.file, extra_attrs)
        self.file.attrs["complete"] = True
        self.file.close()
        os.replace(self.path, self.dest)
        return self.dest

    def close(self) -> None:
        """Close without finishing (the partial file stays, to be resumed)."""
        try:
            self.file.close()
        except Exception:  # already closed
            pass


class FeatureFile:
    """Read access to a features file. Opens the HDF5 file lazily per process (safe with DataLoader workers)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        with h5_open(self.path, "features") as f:
            self.attrs = h5_read_attrs(f)
            if not self.attrs.get("complete", False):
                raise InputError(f"{self.path}: the features file is incomplete (finish it by running `mlgraph extract` again)")
            self.ids = h5_read_strings(f["ids"])
            self.files = h5_read_strings(f["files"])
            self.label_names = h5_read_strings(f["label_names"]) if "label_names" in f else None
            self.labels = f["labels"][:] if "labels" in f else None
            self.feature_shape = tuple(f[MAIN].shape[1:])
            self.aux_shape = tuple(f[AUX].shape[1:]) if AUX in f else None
            self.skipped = h5_read_strings(f["skipped"]) if "skipped" in f else []
        self._h5 = None
        self._pid = None

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def has_aux(self) -> bool:
        return self.aux_shape is not None

    def _file(self):
        import h5py

        if self._h5 is None or self._pid != os.getpid():
            self._h5 = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._h5

    def read(self, index: int | Sequence[int] | slice, name: str = MAIN) -> np.ndarray:
        """Feature maps as float32: (D, H, W) for an int, (B, D, H, W) for a sorted list or slice."""
        ds = self._file()[name]
        if isinstance(index, (int, np.integer)):
            return ds[int(index)].astype(np.float32)
        if isinstance(index, slice):
            return ds[index].astype(np.float32)
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
        state = dict(self.__dict__)
        state["_h5"] = None
        state["_pid"] = None
        return state


def open_features(path: str | os.PathLike) -> FeatureFile:
    return FeatureFile(path)
