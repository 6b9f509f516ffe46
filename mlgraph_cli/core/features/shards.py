"""Shards of one extraction: a plan cut into N contiguous ranges, one features file each, and the merge.

Every process computes the same plan and the same plan digest (see :mod:`mlgraph_cli.stages.extract`)
and takes range I of N. Range boundaries are multiples of the batch size, so each shard forwards the
very batches a single process would and the merged maps are the same bytes. A shard file is an
ordinary features file (resumable, checksummed) with these attributes besides: ``shard_index``,
``shard_count``, ``shard_start``, ``shard_stop``, ``shard_inputs`` (the whole plan's length) and
``shard_plan_digest`` (the whole plan's digest; its own ``plan_digest`` names the shard too).

:func:`merge_shards` checks that the shards belong to one plan and cover it exactly once, then
concatenates them in plan order into the file a single process would have written: the same
datasets, the same attributes (``provenance`` aside). With ``virtual`` the feature maps stay in
the shard files and the merged file maps onto them (an HDF5 virtual dataset).
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import h5py
import numpy as np

from mlgraph_cli.core.features.checks import check_free_space, disk_errors, rows_fingerprint
from mlgraph_cli.core.features.file import AUX, MAIN, partial_path
from mlgraph_cli.core.io.hdf5 import h5_read_attrs, h5_read_strings, h5_write_attrs
from mlgraph_cli.core.io.outputs import WriteLock, output_target
from mlgraph_cli.errors import MlgraphError, input_error

SHARD_KEYS = ("shard_index", "shard_count", "shard_start", "shard_stop", "shard_inputs", "shard_plan_digest")
COPY_ROWS = 256  # rows copied at a time by a merge (bounded memory whatever the shard size)


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` (0 <= I < N) -> (I, N); anything else is a one-line error naming ``--shard``."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not m or not 0 <= int(m.group(1)) < int(m.group(2)):
        raise MlgraphError(f"--shard {text}: expected I/N with 0 <= I < N (e.g. --shard 0/4 for the first of four; "
                           "with SLURM: --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT)")
    return int(m.group(1)), int(m.group(2))


def shard_range(total: int, index: int, count: int, unit: int) -> tuple[int, int]:
    """Inputs [start, stop) of shard ``index`` of ``count``: near-equal runs of whole ``unit``-sized batches."""
    batches = -(-total // max(1, unit))
    lo, hi = batches * index // count, batches * (index + 1) // count
    return min(total, lo * unit), min(total, hi * unit)


def shard_path(dest: str | os.PathLike, index: int, count: int) -> Path:
    """``features.h5`` -> ``features.shard-3-of-8.h5`` beside it."""
    d = Path(dest)
    return d.with_name(f"{d.stem}.shard-{index}-of-{count}{d.suffix}")


def sub_plan(plan, start: int, stop: int):
    """The inputs [start, stop) of an extraction plan (same root, labels and names)."""
    return replace(plan, paths=plan.paths[start:stop], files=plan.files[start:stop], ids=plan.ids[start:stop],
                   labels=plan.labels[start:stop] if plan.labels is not None else None)


def shard_of(total: int, digest: str, shard: tuple[int, int], unit: int) -> tuple[int, int, dict[str, Any], str]:
    """Shard I of N of a plan of ``total`` inputs whose digest is ``digest``: (start, stop, the
    shard's attributes, the shard file's own plan id)."""
    index, count = shard
    start, stop = shard_range(total, index, count, unit)
    keys = {"shard_index": index, "shard_count": count, "shard_start": start, "shard_stop": stop,
            "shard_inputs": total, "shard_plan_digest": digest}
    return start, stop, keys, f"{digest}/shard-{index}-of-{count}"


def read_done(path: Path) -> tuple[list[str], Any]:
    """(``skipped`` lines, provenance) of a finished features file."""
    with h5py.File(path, "r") as f:
        return h5_read_strings(f["skipped"]), h5_read_attrs(f).get("provenance")


def wait_for_shards(paths: Sequence[Path], progress, poll_s: float = 0.5) -> None:
    """Rank 0 of a torchrun extraction: wait until every rank's shard file is complete.

    No collective is used, so a long shard never meets a process-group timeout; if another rank
    fails, torchrun stops this one too.
    """
    waiting = [p for p in paths if not p.is_file()]
    if waiting:
        progress.log(f"Waiting for {len(waiting)} other shard(s) to finish")
    while any(not p.is_file() for p in paths):
        time.sleep(poll_s)


def finished_shard(path: Path, plan_id: str) -> bool:
    """True when ``path`` is a complete shard file of this plan (a re-run of a finished shard skips it)."""
    if not path.is_file():
        return False
    try:
        with h5py.File(path, "r") as f:
            return bool(f.attrs.get("complete", False)) and f.attrs.get("plan_digest") == plan_id
    except OSError:
        return False


@dataclass
class ShardInfo:
    path: Path
    attrs: dict[str, Any]

    @property
    def index(self) -> int:
        return int(self.attrs["shard_index"])

    @property
    def range(self) -> tuple[int, int]:
        return int(self.attrs["shard_start"]), int(self.attrs["shard_stop"])


def read_shards(paths: Sequence[str | os.PathLike]) -> list[ShardInfo]:
    """Open each shard's header and check they make one whole plan; in plan order."""
    if not paths:
        raise MlgraphError("no shard files given (e.g. mlgraph merge features.shard-*.h5 -o features.h5)")
    shards = []
    for p in map(Path, paths):
        if not p.is_file():
            if partial_path(p).is_file():
                raise input_error(p, "unfinished shard (only its partial file is there)",
                                  "run the same `mlgraph extract ... --shard I/N` again to finish it")
            raise input_error(p, "no such file", "make it with `mlgraph extract ... --shard I/N`")
        try:
            with h5py.File(p, "r") as f:
                attrs = h5_read_attrs(f)
        except OSError as exc:
            raise input_error(p, f"not a readable HDF5 file ({exc})", "make it with `mlgraph extract ... --shard I/N`") from None
        if "shard_index" not in attrs:
            raise input_error(p, "not a shard (made without --shard)", "give the files written by `mlgraph extract --shard I/N`")
        if not attrs.get("complete", False):
            raise input_error(p, "unfinished shard", "run the same `mlgraph extract ... --shard I/N` again to finish it")
        shards.append(ShardInfo(p, attrs))
    first = shards[0]
    for s in shards[1:]:
        for key in ("shard_plan_digest", "shard_count", "shard_inputs"):
            if s.attrs[key] != first.attrs[key]:
                raise input_error(s.path, f"a shard of another plan or other settings than {first.path} "
                                          f"({key} differs)", "merge shards of one `mlgraph extract` command")
    count = int(first.attrs["shard_count"])
    by_index: dict[int, ShardInfo] = {}
    for s in shards:
        if s.index in by_index:
            raise input_error(s.path, f"shard {s.index}/{count} is given twice (also {by_index[s.index].path})",
                              "give each shard once")
        by_index[s.index] = s
    missing = sorted(set(range(count)) - set(by_index))
    if missing:
        names = ", ".join(f"{i}/{count}" for i in missing[:8]) + (" ..." if len(missing) > 8 else "")
        raise input_error(first.path, f"{len(missing)} of {count} shards are missing: {names}",
                          "run `mlgraph extract ... --shard I/N` for them and give every shard file")
    ordered = [by_index[i] for i in range(count)]
    pos = 0
    for s in ordered:
        lo, hi = s.range
        if lo != pos:
            raise input_error(s.path, f"shard {s.index}/{count} covers inputs {lo}-{hi} but {pos} was expected "
                                      "(overlapping or missing inputs: shards made with other batch sizes?)",
                              "re-run the odd shard with the same --batch-size as the others")
        pos = hi
    if pos != int(first.attrs["shard_inputs"]):
        raise input_error(ordered[-1].path, f"the shards end at input {pos} of {first.attrs['shard_inputs']}",
                          "re-run the last shard")
    return ordered


def merge_shards(paths: Sequence[str | os.PathLike], dest: str | os.PathLike, *, virtual: bool = False,
                 extra_attrs: dict[str, Any] | None = None) -> tuple[Path, int]:
    """Write the features file of the whole plan from its shards: (path, rows).

    The merged file is built under ``.<name>.merging`` and renamed into place. Its size is checked
    against the free space first (HDF5 can crash the process when the disk fills mid-write); a
    write the disk refuses is an ``OSError`` naming the output, and nothing is left behind. A
    ``virtual`` merge records a fingerprint of each shard's rows, checked whenever it is read
    (:func:`check_virtual_sources`).
    """
    shards = read_shards(paths)
    dest = output_target(dest, stream_ok=False)[0]  # a file, never a device or a pipe; links followed
    if any(s.path.resolve() == dest.resolve() for s in shards):
        raise input_error(dest, "is one of the shards", "write the merged file under another name with -o")
    lock = WriteLock(dest)
    tmp = dest.with_name(f".{dest.name}.merging")
    try:
        files = [h5py.File(s.path, "r") for s in shards]
        try:
            need = sum(_copied_bytes(f, virtual) for f in files)
            with disk_errors(dest):
                check_free_space(dest, need)
                rows = _write_merged(files, shards, tmp, dest, virtual)
                with h5py.File(tmp, "a") as out:
                    attrs = {k: v for k, v in h5_read_attrs(files[0]).items() if k not in SHARD_KEYS}
                    attrs.update(plan_digest=shards[0].attrs["shard_plan_digest"], rows_done=rows,
                                 inputs_done=int(shards[0].attrs["shard_inputs"]),
                                 skipped_done=sum(int(f["skipped"].shape[0]) for f in files),
                                 skipped_count=sum(int(s.attrs.get("skipped_count", 0)) for s in shards),
                                 **(extra_attrs or {}))
                    if virtual:
                        attrs["virtual_sources"] = [{"file": _relative(s.path, dest), "rows": rows_fingerprint(f)}
                                                    for s, f in zip(shards, files)]
                    h5_write_attrs(out, attrs)
        finally:
            for f in files:
                f.close()
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        lock.release()
    return dest, rows


def _copied_bytes(f, virtual: bool) -> int:
    """Bytes a merge copies out of shard ``f`` (a virtual merge leaves the maps where they are)."""
    return sum(int(ds.size) * ds.dtype.itemsize for name, ds in f.items()
               if isinstance(ds, h5py.Dataset) and not (virtual and name in (MAIN, AUX)))


def _relative(shard: Path, dest: Path) -> str:
    """The shard's name relative to the merged file's folder, so the set can move together."""
    return os.path.relpath(shard.resolve(), dest.resolve().parent)


def _write_merged(files, shards: list[ShardInfo], tmp: Path, dest: Path, virtual: bool) -> int:
    first = files[0]
    rows = sum(int(f[MAIN].shape[0]) for f in files)
    with h5py.File(tmp, "w") as out:
        for name, src in first.items():
            if name == "label_names":
                out.create_dataset(name, data=src[:], dtype=src.dtype)
                continue
            shape = (rows if name != "skipped" else sum(int(f[name].shape[0]) for f in files), *src.shape[1:])
            if virtual and name in (MAIN, AUX):
                layout = h5py.VirtualLayout(shape=shape, dtype=src.dtype)
                pos = 0
                for f, s in zip(files, shards):
                    n = int(f[name].shape[0])
                    if n:  # file names relative to the merged file's folder, so the set can move together
                        layout[pos:pos + n] = h5py.VirtualSource(_relative(s.path, dest), name, shape=f[name].shape)
                    pos += n
                out.create_virtual_dataset(name, layout)
                continue
            ds = out.create_dataset(name, shape=shape, maxshape=(None, *src.shape[1:]), dtype=src.dtype,
                                    chunks=src.chunks, fletcher32=src.fletcher32)
            pos, inputs_before, skipped_before = 0, 0, 0
            for f, s in zip(files, shards):
                part = f[name]
                for lo in range(0, part.shape[0], COPY_ROWS):
                    block = part[lo:lo + COPY_ROWS]
                    if name == "row_commit":  # (inputs_done, skipped_done) of the whole plan, not the shard's
                        block = block + np.array([inputs_before, skipped_before], dtype=block.dtype)
                    ds[pos:pos + len(block)] = block
                    pos += len(block)
                inputs_before += s.range[1] - s.range[0]
                skipped_before += int(f["skipped"].shape[0])
    return rows
