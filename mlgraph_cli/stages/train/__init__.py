"""Stage: train a classification head on cached features, or a backbone + head on images.

``train`` checks that the inputs agree (label sets, backbones), builds the data, the head and
the run directory, and hands over to :class:`~mlgraph_cli.core.training.trainer.Trainer`.
``resume_training`` continues a stopped run from its ``resume.pt``. Under torchrun every rank
runs this function; rank 0 alone writes.

Video features (``mlgraph import-yt8m``) use the same Trainer, so run folders, ``--resume`` and
metrics.jsonl work as for images. The features file's schema decides the modality once; unset
epochs / lr / probe epochs then take that modality's defaults (``TrainConfig.for_modality``). A
new temporal CMA run (and an image CMA run given ``probe_epochs``) first trains a mean-pool
probe and starts the head from it (``core.probe.probe_start``); a resumed run never repeats it, its weights are in
``resume.pt``. config.json (``core.run_config.RunConfig``) records the modality and the probe.

:func:`run_train` is what ``mlgraph train`` calls: the project file, the ``[train]`` table and
every default are resolved here, so a library caller gets what the command gets. SIGTERM during
training is treated as Ctrl-C: the last finished epoch stays, ready for ``--resume``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import threading
from pathlib import Path
from typing import Any, Callable

from mlgraph_cli.core.training import checkpoint as ckpt
from mlgraph_cli.core.training import distributed as dist_util
from mlgraph_cli.core.training import run_dir as run_dir_mod
from mlgraph_cli.core.io.jsonfile import read_json
from mlgraph_cli.core.io.outputs import WriteLock, write_json
from mlgraph_cli.core.progress import NULL_PROGRESS, ProgressHook
from mlgraph_cli.core.training.run_config import RunConfig
from mlgraph_cli.core.training.config import TrainConfig
from mlgraph_cli.core.training.trainer import TrainResult
from mlgraph_cli.errors import MismatchError, MlgraphError
from mlgraph_cli.stages.train import finish
from mlgraph_cli.stages.train import inputs as inputs_mod
from mlgraph_cli.stages.train.inputs import TrainInputs

COMMAND = "mlgraph train"
# Settings a resumed run may change: they decide where and how fast, not what is computed.
RESUMABLE_CHANGES = ("workers", "device", "cache")


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training: ``run_dir`` keeps its last finished epoch, ready for ``--resume``."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__(str(run_dir))
        self.run_dir = run_dir


def run_train(inputs: TrainInputs, overrides: dict[str, Any], *, project=None, resume: str | os.PathLike | None = None,
              run_dir: str | os.PathLike | None = None, name: str | None = None, force: bool = False,
              progress: ProgressHook = NULL_PROGRESS) -> TrainResult:
    """``mlgraph train`` as one call. ``overrides``: TrainConfig values from flags (None = not given);
    ``project``: the folder's project (core.project) or None. A new run takes the dataclass
    defaults, then ``[train]``, then the flags, and fills the paths left out from the project;
    ``resume`` continues a run with its own settings instead."""
    if resume is not None:
        given = {k: v for k, v in dataclasses.asdict(inputs).items() if v is not None}
        return resume_training(resume, overrides, inputs=TrainInputs(**given) if given else None, progress=progress)
    from mlgraph_cli.core.project import merge_config

    config = merge_config(TrainConfig, project, "train", overrides)
    runs_root = project.artifact("runs") if project is not None else Path("runs/train")
    return train(inputs.with_project(project, config.head, config.head_options), config, run_dir=run_dir, runs_root=runs_root, name=name,
                 force=force, progress=progress)


def train(inputs: TrainInputs, config: TrainConfig, *, run_dir: str | os.PathLike | None = None,
          runs_root: str | os.PathLike = "runs/train", name: str | None = None, force: bool = False,
          progress: ProgressHook = NULL_PROGRESS,
          on_epoch_end: Callable[[dict[str, Any]], None] | None = None) -> TrainResult:
    """Train a new run. ``run_dir`` (``-o``) wins; otherwise ``runs_root/name`` numbered
    ``exp``, ``exp2``, ... Unset epochs / lr / probe epochs take the defaults of the data's
    modality. Returns the run's :class:`TrainResult` (on every rank)."""
    config = inputs_mod.resolved_config(inputs, config)
    dist, device = _start(config)
    lock = None
    try:
        prepared = inputs_mod.prepare(inputs, config, device=device, dist=dist, progress=progress)
        out, lock = _choose_run_dir(run_dir, runs_root, name, force, dist)
        if config.probe_epochs:
            from mlgraph_cli.core.training.probe import probe_start

            with _sigterm_as_interrupt():
                prepared.probe = probe_start(prepared.model, prepared.data.train_set, config, device,
                                             progress if dist.is_main else NULL_PROGRESS)
        run_config = _run_config(inputs, config, prepared)
        if dist.is_main:
            _write_run_files(out, inputs, config, prepared, run_config, dist)
        dist_util.barrier(dist)
        return _fit(prepared, config, out, device, dist, progress, on_epoch_end, resume=None,
                    digest=run_config.digest())
    finally:
        if lock is not None:
            lock.release()
        dist_util.teardown(dist)


def resume_training(run_dir: str | os.PathLike, overrides: dict[str, Any] | None = None, *,
                    inputs: TrainInputs | None = None, progress: ProgressHook = NULL_PROGRESS,
                    on_epoch_end: Callable[[dict[str, Any]], None] | None = None) -> TrainResult:
    """Continue ``run_dir`` where its last checkpoint left it, with the settings it was started with.

    ``overrides``: settings given again on the command line (None = not given); only
    :data:`RESUMABLE_CHANGES` may differ from the saved ones. ``inputs``: paths given again
    (moved files); they must hold the same data.
    """
    run = Path(run_dir)
    saved = RunConfig.read(run)
    lock = WriteLock(run, "run folder") if dist_util.dist_info_from_env().is_main else None
    try:
        return _resume(run, saved, overrides or {}, inputs, progress, on_epoch_end)
    finally:
        if lock is not None:
            lock.release()


def _resume(run: Path, saved: RunConfig, overrides: dict[str, Any], inputs: TrainInputs | None,
            progress: ProgressHook, on_epoch_end) -> TrainResult:
    args = read_json(run / ckpt.ARGS, fix=f"the run is incomplete; start a new one with `{COMMAND}`")
    ckpt.check_same_head(run, saved, overrides.get("head"))
    config = _resumed_config(run, args, overrides).for_modality(saved.modality)  # older args.json
    state = ckpt.load_resume(run / ckpt.RESUME, saved)
    if int(state["epoch"]) >= config.epochs:
        raise MlgraphError(f"{run}: the run already finished its {config.epochs} epochs (evaluate it with "
                           f"`mlgraph evaluate {run}`, or start a longer one with `{COMMAND} --epochs N`)")
    paths = TrainInputs.from_json(args.get("inputs") if isinstance(args, dict) else None)
    if inputs is not None:
        paths = dataclasses.replace(paths, **{k: v for k, v in dataclasses.asdict(inputs).items() if v is not None})
    dist, device = _start(config)
    try:
        prepared = inputs_mod.prepare(paths, config, device=device, dist=dist, progress=progress)
        inputs_mod.check_same_data(run, saved, prepared)
        if dist.is_main:
            ckpt.truncate_metrics(run, int(state["epoch"]))
        return _fit(prepared, config, run, device, dist, progress, on_epoch_end, resume=state,
                    digest=saved.digest() if saved.run_id else None)
    finally:
        dist_util.teardown(dist)


# ---------------------------------------------------------------------------------------------

def _start(config: TrainConfig):
    import torch

    from mlgraph_cli.core.device import resolve_device

    dist = dist_util.dist_info_from_env()
    base = resolve_device(config.device)
    device = torch.device(dist_util.device_for(dist, str(base)))
    dist_util.setup(dist, device.type)
    return dist, device


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM (a scheduler's or `kill`'s stop) raises KeyboardInterrupt, as Ctrl-C does, so the run
    stops with the same one line and keeps its last finished epoch. Main thread only (Python's rule)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _fit(prepared, config, run_dir, device, dist, progress, on_epoch_end, resume, digest) -> TrainResult:
    from mlgraph_cli.core.training.trainer import Trainer

    if resume is not None:
        try:
            prepared.model.load_state_dict(resume["model"])
        except RuntimeError as exc:
            first = str(exc).splitlines()[0]
            raise MismatchError(f"{Path(run_dir) / ckpt.RESUME}: this checkpoint does not fit a {config.head!r} "
                                f"head on these features ({first[:160]}) (start a new run with `{COMMAND}`)") from None
    data = prepared.data
    note = finish.validation_note(data) if dist.is_main else None
    if note is not None:
        progress.log(note)
    trainer = Trainer(prepared.model, data.train_set, data.val_set if dist.is_main else None,
                      config=config, label_names=data.label_names, run_dir=run_dir, device=device, dist=dist,
                      progress=progress if dist.is_main else NULL_PROGRESS, on_epoch_end=on_epoch_end,
                      weights_digest=digest)
    try:
        with _sigterm_as_interrupt():
            result = trainer.fit(resume=resume)
            if dist.is_main:  # per-label thresholds and curves.png (stages/train/finish.py)
                result.validation_note = note
                result.thresholds = finish.tune_run_thresholds(prepared, config, Path(run_dir), device)
                result.curves = finish.draw_curves(Path(run_dir), progress)
            return result
    except KeyboardInterrupt:
        raise TrainingInterrupted(Path(run_dir)) from None


def _choose_run_dir(run_dir, runs_root, name, force: bool, dist):
    """Rank 0 picks the folder and claims it (``run_dir.claim_run_dir``: checked and locked until the
    run ends), then tells the others, so they never race its files. Returns (folder, lock or None)."""
    out, problem, lock = None, None, None
    if dist.is_main:
        try:
            folder = Path(run_dir) if run_dir is not None else run_dir_mod.next_run_dir(runs_root, name or "exp")
            lock = run_dir_mod.claim_run_dir(folder, force=force, command=COMMAND)
            out = os.fspath(folder)
        except MlgraphError as exc:
            problem = str(exc)
    out, problem = dist_util.broadcast_object(dist, (out, problem))
    if problem is not None:
        raise MlgraphError(problem)
    return Path(out), lock


def _run_config(inputs: TrainInputs, config: TrainConfig, prepared) -> RunConfig:
    from mlgraph_cli.core.io.artifacts import provenance

    data = prepared.data
    return RunConfig(
        labels=data.label_names, head=prepared.model.head.config, modality=data.modality,
        threshold=config.threshold, input=data.input_kind, backbone=data.backbone_config,
        backbone_weights=ckpt.BACKBONE_WEIGHTS if data.backbone_state is not None else None,
        backbone_trained=data.input_kind == "images", data=data.data_info, embeddings=prepared.embeddings_info,
        graph=prepared.graph_info, probe=prepared.probe,
        provenance=provenance(COMMAND, _params(inputs, config)))


def _params(inputs: TrainInputs, config: TrainConfig) -> dict[str, Any]:
    return {"inputs": inputs.to_json(), "config": dataclasses.asdict(config)}


def _write_run_files(out: Path, inputs: TrainInputs, config: TrainConfig, prepared, run_config: RunConfig,
                     dist) -> None:
    data = prepared.data
    write_json(out / ckpt.ARGS, {"schema": "mlgraph/run-args@1", **_params(inputs, config),
                                 "world_size": dist.world_size, "run_dir": os.fspath(out.resolve())})
    if data.split is not None:
        write_json(out / ckpt.SPLIT, data.split)
    if data.backbone_state is not None:
        ckpt.save_weights(out / ckpt.BACKBONE_WEIGHTS, data.backbone_state,
                          {"schema": "mlgraph/run@1", "what": "backbone"})
    run_config.write(out)


def _resumed_config(run: Path, args: dict[str, Any], overrides: dict[str, Any]) -> TrainConfig:
    saved = dict(args.get("config") or {})
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    for key, value in overrides.items():
        if value is None or key not in names or key in RESUMABLE_CHANGES or key == "head":
            continue
        if saved.get(key) != value:
            raise MlgraphError(f"{run / ckpt.ARGS}: this run was started with {key} = {saved.get(key)!r}, not "
                               f"{value!r}; a resumed run keeps its settings (drop that option, or start a new run "
                               f"with `{COMMAND}`)")
    saved.update({k: v for k, v in overrides.items() if v is not None and k in RESUMABLE_CHANGES})
    try:
        return TrainConfig(**{k: v for k, v in saved.items() if k in names})
    except (TypeError, ValueError) as exc:
        raise MlgraphError(f"{run / ckpt.ARGS}: unreadable settings ({exc}) "
                           f"(start a new run with `{COMMAND}`)") from None
