"""Run directories and what lives in them (schema ``mlgraph/run@1``).

A run directory (``runs/train/exp``, ``exp2``, ... or one named with ``-o``; core/training/run_dir.py
finds and claims it) holds:

- ``config.json``: everything needed to rebuild the model and preprocess an image, read and
  written by :class:`~mlgraph_cli.core.training.run_config.RunConfig` alone (plain JSON, never a pickled
  object: nanoGPT's habit).
- ``best.safetensors`` / ``last.safetensors``: the model's state dict (``head.*``, and
  ``backbone.*`` when trained end to end). The label embeddings (and ML-GCN's adjacency) are
  buffers of the head, so they travel inside it and loading a run needs no other file. Loading
  never unpickles: safetensors holds bare tensors.
- ``backbone.safetensors``: the backbone's weights when they cannot be rebuilt from a name
  (random init, a local file, or a backbone fine-tuned end to end).
- ``resume.pt``: model, optimiser, schedule and RNG states as plain tensors and dicts, read back
  with ``torch.load(weights_only=True)``.
- ``args.json`` (the resolved training config), ``metrics.jsonl`` (one line per epoch),
  ``split.json`` (the validation ids when the split was drawn from the training file).

Every file is written through :func:`~mlgraph_cli.core.io.outputs.write_output` (a temporary name
renamed into place) and read back through a check of what it holds: weights that are finite,
metrics lines that are objects with their epoch, a resume state of this very run.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from mlgraph_cli.core.io.outputs import write_output
from mlgraph_cli.core.io.artifacts import maker
from mlgraph_cli.core.io.inputs import check_input_file
from mlgraph_cli.core.io.jsonfile import describe, parse_json
from mlgraph_cli.core.training.config import CHECKPOINTS
from mlgraph_cli.core.training.run_config import CONFIG, DIGEST_KEY, RunConfig
from mlgraph_cli.core.training.selection import SELECT_BY
from mlgraph_cli.errors import InputError, MismatchError, input_error

ARGS = "args.json"
METRICS = "metrics.jsonl"
SPLIT = "split.json"
RESUME = "resume.pt"
BACKBONE_WEIGHTS = "backbone.safetensors"
RESUME_KEYS = ("epoch", "model", "optimizer", "scheduler", "scaler", "rng")
CURVES = "curves.png"



def weights_path(run_dir: str | os.PathLike, which: str) -> Path:
    """``RUN/best.safetensors`` or ``RUN/last.safetensors``."""
    if which not in CHECKPOINTS:
        raise InputError(f"unknown checkpoint {which!r} (choose one of: {', '.join(CHECKPOINTS)})")
    return Path(run_dir) / f"{which}.safetensors"


# ---------------------------------------------------------------------------------------------
# metrics.jsonl

def append_metrics(run_dir: str | os.PathLike, row: dict[str, Any]) -> None:
    """Append one JSON line to ``metrics.jsonl`` (rewritten atomically, it stays small)."""
    path = Path(run_dir) / METRICS
    old = path.read_text(encoding="utf-8") if path.is_file() else ""
    with write_output(path) as tmp:
        tmp.write_text(old + json.dumps(row) + "\n", encoding="utf-8")


def read_metrics(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of ``metrics.jsonl``: each line an object with its whole ``epoch`` >= 1 and numbers
    (or null) for the measures; a line that is not is one line naming the file and the line."""
    path = Path(run_dir) / METRICS
    if not path.exists():
        return []
    fix = f"restore the run's own {METRICS}, or start the run again with `{maker('run')} --force`"
    check_input_file(path, fix=fix)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise input_error(path, "not UTF-8 text", fix) from None
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        row = parse_json(line, path, fix=fix, line=number)
        bad = None
        if not isinstance(row, dict):
            bad = f"the line is {describe(row)}, not an object"
        elif isinstance(row.get("epoch"), bool) or not isinstance(row.get("epoch"), int) or row["epoch"] < 1:
            bad = f'"epoch" is {describe(row.get("epoch"))}, not a whole number >= 1'
        elif row.get("select_by") is not None and row["select_by"] not in SELECT_BY:
            bad = f'"select_by" is {describe(row["select_by"])}, not one of {", ".join(SELECT_BY)}'
        else:
            odd = [k for k, v in row.items() if k not in ("epoch", "select_by") and v is not None
                   and (isinstance(v, bool) or not isinstance(v, (int, float)))]
            bad = f'"{odd[0]}" is {describe(row[odd[0]])}, not a number' if odd else None
        if bad:
            raise input_error(path, bad, fix, line=number)
        rows.append(row)
    return rows


def truncate_metrics(run_dir: str | os.PathLike, last_epoch: int) -> None:
    """Drop lines of epochs after ``last_epoch`` (written by a run killed before its checkpoint)."""
    rows = [r for r in read_metrics(run_dir) if int(r.get("epoch", 0)) <= last_epoch]
    with write_output(Path(run_dir) / METRICS) as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# Weights (safetensors) and resume state (torch.save of plain tensors, weights_only load)

def save_weights(path: str | os.PathLike, state: dict[str, Any], metadata: dict[str, str] | None = None) -> None:
    """Write a tensor dict as safetensors, atomically. Tensors are copied to CPU, contiguous."""
    # Clones break shared storage (tied or aliased buffers), which safetensors refuses.
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}
    with write_output(path) as tmp:
        save_file(tensors, os.fspath(tmp), metadata=metadata or {})


def load_weights(path: str | os.PathLike, *, fix: str) -> tuple[dict[str, Any], dict[str, str]]:
    """(tensors, metadata) of a safetensors file; a missing, broken or non-finite file (a NaN weight
    would only show as missing labels) is a one-line error."""
    p = Path(path)
    if not p.exists():
        raise input_error(p, "no such weights file", fix)
    check_input_file(p, fix=fix)
    try:
        with safe_open(os.fspath(p), framework="pt", device="cpu") as f:
            meta = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # safetensors raises its own error types for truncated files
        raise input_error(p, f"not a readable safetensors file ({exc})", fix) from None
    for name, t in tensors.items():
        if (t.is_floating_point() or t.is_complex()) and not bool(torch.isfinite(t).all()):
            raise input_error(p, f"tensor {name!r} holds NaN or infinite values", fix)
    return tensors, meta


def save_resume(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """``torch.save`` a dict of plain tensors / numbers / dicts, atomically."""
    with write_output(path) as tmp:
        torch.save(state, tmp)


def load_resume(path: str | os.PathLike, saved: RunConfig | None = None) -> dict[str, Any]:
    """Read ``resume.pt`` with ``weights_only=True`` (nothing but tensors and containers is
    unpickled) and check it is a resume state of ``saved``'s run: its keys, its epoch, and the
    config digest it was saved with, so another run's ``resume.pt`` copied in is refused."""
    p = Path(path)
    fix = f"start the run again with `{maker('run')}`"
    if not p.exists():
        raise input_error(p.parent, "no resume.pt: the run never finished an epoch", f"start it again with `{maker('run')}`")
    check_input_file(p, fix=fix)
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # an unpickling error names the offending global
        raise input_error(p, f"not a readable resume state ({exc.__class__.__name__})", fix) from None
    missing = [k for k in RESUME_KEYS if not isinstance(state, dict) or k not in state]
    if missing:
        raise input_error(p, f"not a resume state of mlgraph train (no {missing[0]!r})", fix)
    epoch = state["epoch"]
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 1:
        raise input_error(p, f"the epoch it was saved after is {epoch!r}, not a whole number >= 1", fix)
    if saved is not None and saved.run_id and state.get(DIGEST_KEY) != saved.digest():
        raise MismatchError(f"{p}: this resume state belongs to another run than {p.parent / CONFIG} (its labels, "
                            f"head or run id differ) (restore the run's own resume.pt, or {fix})")
    return state


def rng_state(device) -> dict[str, Any]:
    """This process's RNG states (torch, CUDA, numpy, Python) as tensors and numbers only, so
    ``resume.pt`` loads with ``weights_only=True``."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy_pos": int(np_state[2]), "numpy_has_gauss": int(np_state[3]), "numpy_gauss": float(np_state[4]),
        "python": torch.tensor(py_state[1], dtype=torch.int64), "python_version": int(py_state[0]),
        "python_gauss": py_state[2],
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device) -> None:
    """Restore what :func:`rng_state` captured."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(("MT19937", state["numpy_keys"].numpy().astype(np.uint32), state["numpy_pos"],
                         state["numpy_has_gauss"], state["numpy_gauss"]))
    random.setstate((state["python_version"], tuple(int(v) for v in state["python"].tolist()), state["python_gauss"]))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def check_same_head(run_dir: str | os.PathLike, saved: RunConfig, wanted: str | None) -> None:
    """A resumed or reused run must keep its head. A video run's ``video-cma`` is ``--head cma``."""
    have = saved.head.get("name")
    same = wanted == have or (saved.modality == "video" and have == f"video-{wanted}")
    if wanted is not None and have is not None and not same:
        raise MismatchError(
            f"{Path(run_dir) / CONFIG}: this checkpoint is from head {have!r}, not {wanted!r} "
            f"(resume without --head, or start a new run with `mlgraph train --head {wanted}`)"
        )
