"""Run directories: where a new run goes (``runs/train/exp``, ``exp2``, ... or ``-o``), the latest
run of a folder, the files of a run that commands read, and a new run's claim on its folder.

A claim (:func:`claim_run_dir`) locks the folder for the whole run (``.NAME.lock`` beside it,
:class:`~mlgraph_cli.core.io.outputs.WriteLock`), so two ``train`` runs to one folder cannot
both proceed, and refuses a folder that holds anything this run would lose without ``--force``:
a resumable run, someone else's files, a run whose resume state is gone. A folder holding only
what a run writes before its first epoch ends (a run stopped by bad data) has nothing to keep
and is reused.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from mlgraph_cli.core.io.artifacts import maker
from mlgraph_cli.core.io.outputs import WriteLock
from mlgraph_cli.core.training.checkpoint import (ARGS, BACKBONE_WEIGHTS, CHECKPOINTS, CURVES, METRICS, RESUME,
                                                  SPLIT)
from mlgraph_cli.core.training.run_config import CONFIG, RunConfig
from mlgraph_cli.errors import MlgraphError

# What a run has written before its first epoch ends: a folder holding no more than these is a
# run that finished no epoch (stopped by bad data, say), with nothing to keep.
BEFORE_FIRST_EPOCH = frozenset({ARGS, CONFIG, SPLIT, BACKBONE_WEIGHTS})


def next_run_dir(root: str | os.PathLike, name: str = "exp") -> Path:
    """The first free ``root/name``, ``root/name2``, ``root/name3``, ... (ultralytics' numbering)."""
    root = Path(root)
    candidate = root / name
    if not candidate.exists():
        return candidate
    taken = set()
    pattern = re.compile(rf"^{re.escape(name)}(\d+)$")
    if root.is_dir():
        for child in root.iterdir():
            m = pattern.match(child.name)
            if m:
                taken.add(int(m.group(1)))
    n = 2
    while n in taken or (root / f"{name}{n}").exists():
        n += 1
    return root / f"{name}{n}"


def latest_run(root: str | os.PathLike) -> Path | None:
    """The run under ``root`` whose ``config.json`` was written last, or None."""
    root = Path(root)
    if not root.is_dir():
        return None
    runs = [c for c in root.iterdir() if (c / CONFIG).is_file()]
    if not runs:
        return None
    return max(runs, key=lambda c: ((c / CONFIG).stat().st_mtime_ns, c.name))


def find_run(given: str | os.PathLike | None, runs_root: str | os.PathLike | None, *, flag: str) -> Path:
    """The run a command uses: ``given``, else the latest run under ``runs_root`` (a project's runs
    folder), then under ``./runs/train``; none is one line naming ``flag``."""
    if given is not None:
        return Path(given)
    roots = ([Path(runs_root)] if runs_root is not None else []) + [Path("runs/train")]
    found = next((run for run in map(latest_run, roots) if run is not None), None)
    if found is None:
        raise MlgraphError(f"no trained run found under {roots[0]} (train one with `{maker('run')}`, or pass {flag})")
    return found


def is_run_dir(path: str | os.PathLike) -> bool:
    return (Path(path) / CONFIG).is_file()


def claim_run_dir(out: str | os.PathLike, *, force: bool = False, command: str = "mlgraph train") -> WriteLock:
    """Take ``out`` for a new run: lock it (one ``train`` per folder; released by the caller) and
    check that nothing there would be lost. Without ``force`` a folder is free when it is absent,
    empty, or a run that finished no epoch; a resumable run and any other file are refused with
    one line. With ``force`` the files of an earlier run are removed (the user's others stay)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise MlgraphError(f"{out}: exists and is not a folder (choose another -o)")
    out.parent.mkdir(parents=True, exist_ok=True)
    lock = WriteLock(out, "run folder")
    try:
        if not force:
            _check_free(out, command)
        out.mkdir(parents=True, exist_ok=True)
        if force:  # files of an overwritten run that this one might not rewrite
            for stale in (METRICS, RESUME, SPLIT, BACKBONE_WEIGHTS, CURVES, *(f"{c}.safetensors" for c in CHECKPOINTS)):
                (out / stale).unlink(missing_ok=True)
    except BaseException:
        lock.release()
        raise
    return lock


def _check_free(out: Path, command: str) -> None:
    names = sorted(p.name for p in out.iterdir() if not _scratch(p.name)) if out.is_dir() else []
    if not names:
        return
    if (out / CONFIG).is_file() and (out / RESUME).is_file():
        raise MlgraphError(f"{out}: already holds a training run (continue it with `{command} --resume {out}`, "
                           "pass --force to overwrite it, or choose another -o)")
    if CONFIG in names and set(names) <= BEFORE_FIRST_EPOCH:
        try:
            RunConfig.read(out)
            return  # a run that finished no epoch: nothing to keep
        except MlgraphError:
            pass
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    raise MlgraphError(f"{out}: is not empty ({shown}) and holds no run that `{command} --resume` can continue "
                       "(pass --force to write the run there anyway, or choose another -o)")


def _scratch(name: str) -> bool:
    """Lock and temporary files of our own writers (left by a killed process): not the user's."""
    return name.startswith(".") and (name.endswith(".lock") or name.endswith(".tmp"))


def run_files(run_dir: str | os.PathLike) -> list[Path]:
    """Every file of a run that a command using the run reads: the inputs an output of ``evaluate``,
    ``predict`` or ``export`` must never be written over."""
    run = Path(run_dir)
    return [run / name for name in (CONFIG, ARGS, METRICS, SPLIT, RESUME, BACKBONE_WEIGHTS,
                                    *(f"{c}.safetensors" for c in CHECKPOINTS))]
