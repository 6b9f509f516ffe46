"""Checks that keep a features file honest, on the way in and on the way out.

Writing: each row gets a CRC-32 of its bytes and the counters of the batch that wrote it, so a
resumed run keeps only rows that are verifiably on disk; a batch that would not fit on the disk
is refused before HDF5 starts it. Reading: the attributes acted on are of the kinds written, the
maps are finite and the labels are -1, 0 or 1; the rows' CRCs give a file its fingerprint.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import zlib
from pathlib import Path
from typing import Any, Iterator, Sequence

import h5py
import numpy as np

from mlgraph_cli.errors import InputError

FREE_SPACE_MARGIN = 16 * 2**20  # bytes kept free beyond twice the batch
VERIFY_ROWS = 256  # rows read back at a time when a resumed file is checked


def row_crcs(names: Sequence[str], maps: dict[str, np.ndarray], ids: Sequence[Any],
             labels: np.ndarray | None) -> np.ndarray:
    """(B,) int64: CRC-32 of each row's maps (float16 bytes, datasets in ``names`` order), id and labels."""
    out = np.empty(len(ids), dtype=np.int64)
    for i, ident in enumerate(ids):
        crc = 0
        for name in names:
            crc = zlib.crc32(np.ascontiguousarray(maps[name][i], dtype=np.float16).tobytes(), crc)
        crc = zlib.crc32(ident if isinstance(ident, bytes) else str(ident).encode("utf-8"), crc)
        if labels is not None:
            crc = zlib.crc32(np.ascontiguousarray(labels[i], dtype=np.int8).tobytes(), crc)
        out[i] = crc
    return out


def verified_rows(f: Any, names: Sequence[str]) -> tuple[int, int, int]:
    """Read every counted row of an open partial file back and check its CRC.

    Returns (rows, inputs_done, skipped_done) to resume from: all counted rows when each is as it
    was written, else the start of the batch holding the first row that is not (its counters
    taken from the batch before).
    """
    rows = int(f.attrs["rows_done"])
    good = min(rows, f["row_crc"].shape[0], f["row_commit"].shape[0])
    for lo in range(0, good, VERIFY_ROWS):
        hi = min(good, lo + VERIFY_ROWS)
        try:
            crcs = row_crcs(names, {n: f[n][lo:hi] for n in names}, f["ids"][lo:hi],
                            f["labels"][lo:hi] if "labels" in f else None)
        except OSError:  # a chunk that fails its fletcher32 checksum: damaged from here
            crcs = np.full(hi - lo, -1, dtype=np.int64)
        bad = np.flatnonzero(crcs != f["row_crc"][lo:hi].astype(np.int64))
        if len(bad):
            good = lo + int(bad[0])
            break
    if good == rows:
        return rows, int(f.attrs["inputs_done"]), int(f.attrs.get("skipped_done", 0))
    commit = f["row_commit"][: good + 1]
    # Back to the first row of the batch holding the bad row; when that row's counters are
    # missing too, the batch of the last good row may be short as well: drop it.
    ref = commit[good] if good < len(commit) else (commit[good - 1] if good else None)
    start = good
    while start > 0 and (commit[start - 1] == ref).all():
        start -= 1
    if start == 0:
        return 0, 0, 0
    inputs, skipped = commit[start - 1]
    return start, int(inputs), int(skipped)


def truncate_to_verified(f: Any, names: Sequence[str]) -> int:
    """Cut every dataset of an open partial file back to the rows verifiably on disk; returns
    how many counted rows were dropped (0 when every row is as written)."""
    rows, dropped = int(f.attrs["rows_done"]), 0
    if "row_crc" in f and rows:
        start, inputs, skipped = verified_rows(f, names)
        if start < rows:
            dropped = rows - start
            f.attrs["rows_done"], f.attrs["inputs_done"], f.attrs["skipped_done"] = start, inputs, skipped
            rows = start
    # Rows past the counter were written by a batch that never finished: drop them.
    for name in [*names, "ids", "files", "row_crc", "row_commit", "labels"]:
        if name in f and f[name].shape[0] != rows:
            f[name].resize(rows, axis=0)
    skipped = int(f.attrs.get("skipped_done", 0))
    if f["skipped"].shape[0] != skipped:
        f["skipped"].resize(skipped, axis=0)
    f.flush()
    return dropped


@contextlib.contextmanager
def disk_errors(path: Path) -> Iterator[None]:
    """Turn h5py's failed writes into ``OSError(errno, system message, path)``.

    HDF5 reports a full disk as ``RuntimeError`` or as an ``OSError`` whose text holds
    ``errno = 28, error message = '...'``; only errors with such a file-write part are converted,
    so an unrelated RuntimeError keeps its traceback.
    """
    try:
        yield
    except (OSError, RuntimeError) as exc:
        text = str(exc)
        code = re.search(r"errno = (\d+)", text)
        if isinstance(exc, RuntimeError) and code is None:
            raise
        message = re.search(r"error message = '([^']*)'", text)
        number = int(code.group(1)) if code else (exc.errno if isinstance(exc, OSError) and exc.errno else errno.EIO)
        what = message.group(1) if message else (getattr(exc, "strerror", None) or os.strerror(number))
        raise OSError(number, what, os.fspath(path)) from None


def check_free_space(path: Path, batch_bytes: int) -> None:
    """Refuse a batch that would not fit with room to spare (HDF5 can crash when the disk fills
    mid-write): an ``OSError(ENOSPC)`` naming ``path`` before anything is written."""
    if not batch_bytes:
        return
    try:
        usage = shutil.disk_usage(path.parent)
    except OSError:
        return
    need = 2 * batch_bytes + FREE_SPACE_MARGIN
    if usage.total and usage.free < need:
        raise OSError(errno.ENOSPC, f"only {usage.free / 1e6:,.1f} MB free, the next batch needs "
                                    f"{need / 1e6:,.1f} MB", os.fspath(path))


# ---------------------------------------------------------------------------------------------
# Reading

def check_labels(path: Path, labels: np.ndarray, maker: str) -> None:
    """Labels must be 1 (positive), 0 (negative) or -1 (ignored)."""
    bad = np.flatnonzero(~np.isin(labels, (-1, 0, 1)).all(axis=1)) if labels.size else []
    if len(bad):
        row = int(bad[0])
        value = f"{labels[row][~np.isin(labels[row], (-1, 0, 1))][0].item():g}"  # 0.5 stays 0.5
        raise InputError(f"{path}: labels must be -1, 0 or 1, but row {row} holds {value} ({len(bad):,} row(s) "
                         f"affected; remake the file with `{maker}`)")


def check_finite(path: Path, maps: np.ndarray, name: str, index: Any, maker: str) -> None:
    """Feature maps must be finite: a NaN or inf would only surface as a NaN loss epochs later.
    One pass over the batch just read (about 0.5 ms for 32 maps of 512 x 7 x 7, a tenth of the
    read itself); rows are only looked at when it fails.
    """
    if np.isfinite(maps).all():
        return
    rows = _rows(index, len(maps) if maps.ndim == 4 else 1)
    first = rows[int(np.flatnonzero(~np.isfinite(maps.reshape(len(rows), -1)).all(axis=1))[0])] if rows else "?"
    raise InputError(f"{path}: `{name}` holds NaN or infinite values (row {first}; remake the file with `{maker}`)")


def damaged(path: Path, name: str, index: Any, exc: OSError, maker: str) -> InputError:
    """The error for a read that HDF5 refused: a checksum that fails, a truncated file."""
    rows = _rows(index, None)
    where = f" near row {rows[0]}" if rows else ""
    return InputError(f"{path}: damaged: `{name}`{where} cannot be read back as written ({_first_line(exc)}; "
                      f"remake the file with `{maker}`)")


def _rows(index: Any, n: int | None) -> list[int]:
    if isinstance(index, (int, np.integer)):
        return [int(index)]
    if isinstance(index, slice):
        start = index.start or 0
        return list(range(start, start + n)) if n is not None else [start]
    return [int(i) for i in np.asarray(index)]


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def check_file_attrs(path: Path, attrs: dict[str, Any], fix: str) -> None:
    """The attributes a reader acts on, of the kinds the writers store; a file still being written is refused."""
    complete = attrs.get("complete", False)
    if not isinstance(complete, (bool, int)):
        raise InputError(f"{path}: attribute `complete` is not true or false ({fix})")
    if not complete:
        raise InputError(f"{path}: the features file is incomplete (finish it by running `mlgraph extract` again)")
    for key, kind, what in (("modality", str, "text"), ("backbone_config", dict, "JSON object text")):
        if attrs.get(key) is not None and not isinstance(attrs[key], kind):
            raise InputError(f"{path}: attribute `{key}` is not {what} ({fix})")


def map_shape(ds: Any, name: str, path: Path, fix: str) -> tuple[int, ...]:
    """(D, H, W) of a maps dataset, each at least 1."""
    shape = tuple(int(d) for d in ds.shape[1:])
    if min(shape) < 1:
        raise InputError(f"{path}: `{name}` has shape {tuple(ds.shape)}: an empty map per row ({fix})")
    return shape


def rows_digest(path: Path, ids: Sequence[str], labels: np.ndarray | None, attrs: dict[str, Any],
                shape: tuple[int, ...]) -> str:
    """A fingerprint of a features file's rows, cheap to take: sha256 of its per-row CRC-32s (of
    maps, ids and labels, ``row_crc``) and of the extraction settings; files made before
    ``row_crc`` fall back to the ids and labels."""
    h = hashlib.sha256()
    with h5py.File(path, "r") as f:
        crc = f.get("row_crc")
        if isinstance(crc, h5py.Dataset) and crc.dtype.kind in "iu" and crc.ndim == 1:
            h.update(rows_fingerprint(f).encode())
        else:
            h.update("\n".join(ids).encode("utf-8", "surrogatepass"))
            if labels is not None:
                h.update(np.ascontiguousarray(labels, dtype=np.int8).tobytes())
    settings = {k: attrs.get(k) for k in ("backbone_config", "plan_digest", "provenance")}
    h.update(json.dumps([settings, list(shape)], sort_keys=True, default=str).encode("utf-8"))
    return h.hexdigest()[:32]


# ---------------------------------------------------------------------------------------------
# A merged file that reads its maps from its shards (`mlgraph merge --virtual`)

def rows_fingerprint(f) -> str:
    """sha256 of a features file's per-row CRCs (maps, id, labels of every row), 16 hex digits."""
    crc = f["row_crc"][:] if "row_crc" in f else np.zeros(0, np.uint32)
    return hashlib.sha256(crc.astype("<u4").tobytes()).hexdigest()[:16]


def check_virtual_sources(path: Path, f) -> None:
    """Refuse a merged file whose virtual datasets read from shard files that are gone (read as
    zeros) or that changed since the merge (another extraction written under the shard's name:
    its rows' fingerprint differs from the one the merge recorded)."""
    missing = []
    for name in f:
        ds = f[name]
        if getattr(ds, "is_virtual", False):
            for vs in ds.virtual_sources():
                src = Path(vs.file_name)
                if not (src if src.is_absolute() else path.parent / src).is_file():
                    missing.append(vs.file_name)
    if missing:
        raise InputError(f"{path}: made by `mlgraph merge --virtual`, it reads its maps from shard files that are not "
                         f"beside it: {', '.join(sorted(set(missing))[:3])} (put them back, or merge without --virtual)")
    recorded = f.attrs.get("virtual_sources")
    for entry in json.loads(recorded) if recorded else []:
        src = Path(entry["file"])
        try:
            with h5py.File(src if src.is_absolute() else path.parent / src, "r") as shard:
                same = rows_fingerprint(shard) == entry["rows"]
        except OSError:
            same = False
        if not same:
            raise InputError(f"{path}: made by `mlgraph merge --virtual` from {entry['file']}, which has changed since "
                             f"(its rows are not the ones merged) (merge the shards again with `mlgraph merge`)")
