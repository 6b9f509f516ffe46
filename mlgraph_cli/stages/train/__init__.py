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

import torch

from mlgraph_cli.core.device import resolve_device
from mlgraph_cli.core.io.jsonfile import read_json
from mlgraph_cli.core.io.outputs import WriteLock, write_json
from mlgraph_cli.core.progress import NULL_PROGRESS, ProgressHook
from mlgraph_cli.core.project import merge_config
from mlgraph_cli.core.training import checkpoint as ckpt
from mlgraph_cli.core.training import distributed as dist_util
from mlgraph_cli.core.training.config import TrainConfig
from mlgraph_cli.core.training.eventlog import EventLog, wants_log
from mlgraph_cli.core.training.probe import probe_start
from mlgraph_cli.core.training.run_config import RunConfig
from mlgraph_cli.core.training.trainer import TrainResult, Trainer
from mlgraph_cli.errors import MismatchError, MlgraphError
from mlgraph_cli.stages.train import finish
from mlgraph_cli.stages.train import inputs as inputs_mod
from mlgraph_cli.stages.train.folder import choose_run_dir, run_config_of, write_run_files
from mlgraph_cli.stages.train.inputs import TrainInputs

COMMAND = "mlgraph train"
# Settings a resumed run may change: they decide where and how fast (or what is logged), not what is computed.
RESUMABLE_CHANGES = ("workers", "device", "cache", "tensorboard")


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training: ``run_dir`` keeps its last finished epoch (``kept``; False: it had
    none yet, e.g. during the probe start), ready for ``--resume`` either way."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__(str(run_dir))
        self.run_dir = run_dir
        self.kept = (run_dir / ckpt.RESUME).is_file()


def run_train(inputs: TrainInputs, overrides: dict[str, Any], *, project=None, resume: str | os.PathLike | None = None,
              run_dir: str | os.PathLike | None = None, name: str | None = None, force: bool = False,
              progress: ProgressHook = NULL_PROGRESS) -> TrainResult:
    """``mlgraph train`` as one call. ``overrides``: TrainConfig values from flags (None = not given);
    ``project``: the folder's project (core.project) or None. A new run takes the dataclass
    defaults, then ``[train]``, then the flags (``head_options`` merged key by key over
    ``[train] head_options``), and fills the paths left out from the project;
    ``resume`` continues a run with its own settings instead."""
    if resume is not None:
        given = {k: v for k, v in dataclasses.asdict(inputs).items() if v is not None}
        return resume_training(resume, overrides, inputs=TrainInputs(**given) if given else None, progress=progress)
    config = merge_config(TrainConfig, project, "train", {**overrides, "head_options": None})
    if overrides.get("head_options"):  # --head-option: merged over [train] head_options, key by key
        config = dataclasses.replace(config, head_options={**config.head_options, **overrides["head_options"]})
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
    wants_log(config.tensorboard)  # --tensorboard without the package: one line before any work
    dist, device = _start(config)
    lock = None
    try:
        prepared = inputs_mod.prepare(inputs, config, device=device, dist=dist, progress=progress)
        out, lock = choose_run_dir(run_dir, runs_root, name, force, dist)
        # The run's files come first, so a run stopped during its probe start is a run `--resume` restarts.
        run_config = run_config_of(inputs, config, prepared)
        if dist.is_main:
            write_run_files(out, inputs, config, prepared, run_config, dist)
        dist_util.barrier(dist)
        if config.probe_epochs:
            prepared.probe = _probe_start(prepared, config, out, device, dist, progress)
            if prepared.probe is not None and dist.is_main:
                run_config.probe = prepared.probe
                run_config.write(out)
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
    :data:`RESUMABLE_CHANGES` may differ from the saved ones, and ``epochs`` may grow: a run
    (finished or not) then goes on to the new count, its schedule fitted again to it
    (core/training/optim.py, ``extend_schedule``). ``inputs``: paths given again (moved files);
    they must hold the same data. A run that never finished an epoch (stopped during its probe
    start, say) starts again from the beginning with its saved settings.
    """
    run = Path(run_dir)
    saved = RunConfig.read(run)
    args = read_json(run / ckpt.ARGS, fix=f"the run is incomplete; start a new one with `{COMMAND}`")
    overrides = overrides or {}
    ckpt.check_same_head(run, saved, overrides.get("head"))
    config = _resumed_config(run, args, overrides).for_modality(saved.modality)  # older args.json
    wants_log(config.tensorboard)
    paths = TrainInputs.from_json(args.get("inputs") if isinstance(args, dict) else None)
    if inputs is not None:
        paths = dataclasses.replace(paths, **{k: v for k, v in dataclasses.asdict(inputs).items() if v is not None})
    if not (run / ckpt.RESUME).is_file():  # train claims (and locks) the folder itself
        progress.log(f"{run}: no finished epoch to continue from; starting the run again with its saved settings")
        return train(paths, config, run_dir=run, force=True, progress=progress, on_epoch_end=on_epoch_end)
    lock = WriteLock(run, "run folder") if dist_util.dist_info_from_env().is_main else None
    try:
        return _resume(run, saved, args, config, paths, progress, on_epoch_end)
    finally:
        if lock is not None:
            lock.release()


def _resume(run: Path, saved: RunConfig, args: dict[str, Any], config: TrainConfig, paths: TrainInputs,
            progress: ProgressHook, on_epoch_end) -> TrainResult:
    state = ckpt.load_resume(run / ckpt.RESUME, saved)
    started = int((args.get("config") or {}).get("epochs") or config.epochs)
    if int(state["epoch"]) >= config.epochs:
        raise MlgraphError(f"{run}: the run already finished its {config.epochs} epochs (evaluate it with "
                           f"`mlgraph evaluate {run}`, or extend it with `{COMMAND} --resume {run} --epochs N`, "
                           f"N > {config.epochs})")
    state.setdefault("schedule_epochs", started)  # a state from before extensions: its run's own count
    dist, device = _start(config)
    try:
        prepared = inputs_mod.prepare(paths, config, device=device, dist=dist, progress=progress)
        inputs_mod.check_same_data(run, saved, prepared)
        if dist.is_main:
            ckpt.truncate_metrics(run, int(state["epoch"]))
            if config.epochs != started:  # the run goes on to the new count: args.json says so from now on
                write_json(run / ckpt.ARGS, {**args, "config": {**args["config"], "epochs": config.epochs},
                                             "extended": [*args.get("extended", []), {"from": started,
                                                                                      "to": config.epochs}]})
        return _fit(prepared, config, run, device, dist, progress, on_epoch_end, resume=state,
                    digest=saved.digest() if saved.run_id else None)
    finally:
        dist_util.teardown(dist)


# ---------------------------------------------------------------------------------------------

def _start(config: TrainConfig):
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


def _probe_start(prepared, config, out: Path, device, dist, progress):
    """The probe start of a new run (core/training/probe.py); Ctrl-C or SIGTERM during it leaves a run
    folder that ``--resume`` (or the same command again) starts over."""
    try:
        with _sigterm_as_interrupt():
            return probe_start(prepared.model, prepared.data.train_set, config, device,
                               progress if dist.is_main else NULL_PROGRESS)
    except KeyboardInterrupt:
        raise TrainingInterrupted(out) from None


def _fit(prepared, config, run_dir, device, dist, progress, on_epoch_end, resume, digest) -> TrainResult:
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
    log = EventLog(run_dir, int(resume["epoch"]) if resume else 0) if dist.is_main and wants_log(
        config.tensorboard) else None
    trainer = Trainer(prepared.model, data.train_set, data.val_set if dist.is_main else None,
                      config=config, label_names=data.label_names, run_dir=run_dir, device=device, dist=dist,
                      progress=progress if dist.is_main else NULL_PROGRESS,
                      on_epoch_end=_each(log, on_epoch_end), weights_digest=digest)
    try:
        with _sigterm_as_interrupt():
            result = trainer.fit(resume=resume)
            if dist.is_main:  # per-label thresholds and curves.png (stages/train/finish.py)
                result.validation_note, result.event_log = note, log is not None
                finish.record_selection(Path(run_dir), result)
                result.thresholds = finish.tune_run_thresholds(prepared, config, Path(run_dir), device)
                result.curves = finish.draw_curves(Path(run_dir), progress)
            # The other ranks wait for rank 0's finishing work: a rank that tears its process group
            # down while rank 0 still holds it can abort under gloo (seen in CI as SIGABRT at exit).
            dist_util.barrier(dist)
            return result
    except KeyboardInterrupt:
        raise TrainingInterrupted(Path(run_dir)) from None
    finally:
        if log is not None:
            log.close()


def _each(*callbacks):
    """One on_epoch_end calling each of ``callbacks`` that is not None, in order."""
    live = [c for c in callbacks if c is not None]
    return (lambda row: [c(row) for c in live]) if live else None


def _resumed_config(run: Path, args: dict[str, Any], overrides: dict[str, Any]) -> TrainConfig:
    saved = dict(args.get("config") or {})
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    for key, value in overrides.items():
        if value is None or key not in names or key in RESUMABLE_CHANGES or key == "head":
            continue
        if key == "epochs" and saved.get("epochs") is not None and value != saved["epochs"]:
            if value < saved["epochs"]:
                raise MlgraphError(f"{run / ckpt.ARGS}: this run was started with {saved['epochs']} epochs; "
                                   f"--resume with --epochs only extends a run (pass more than {saved['epochs']}, "
                                   f"or start a new run with `{COMMAND} -o NEW_RUN`)")
            saved["epochs"] = value  # an extension: resume_training fits the schedule to it
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
