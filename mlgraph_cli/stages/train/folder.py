"""The run folder of a new training run: which folder (``-o``, or ``runs/train/exp``, ``exp2``, ...),
what an earlier run there means, and the files written before the first epoch (``args.json``,
``split.json``, ``backbone.safetensors``, ``config.json``; docs/train.md "The run folder")."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from mlgraph_cli.core.io.outputs import write_json
from mlgraph_cli.core.training import checkpoint as ckpt
from mlgraph_cli.core.training import distributed as dist_util
from mlgraph_cli.core.training.config import TrainConfig
from mlgraph_cli.core.training.eventlog import EVENT_FILES
from mlgraph_cli.core.training.run_config import RunConfig
from mlgraph_cli.errors import MlgraphError
from mlgraph_cli.stages.train import finish
from mlgraph_cli.stages.train.inputs import TrainInputs

COMMAND = "mlgraph train"


def choose_run_dir(run_dir, runs_root, name, force: bool, dist) -> Path:
    """Rank 0 picks (and checks) the folder and tells the others, so they never race its files."""
    out, problem = None, None
    if dist.is_main:
        try:
            out = os.fspath(_pick_run_dir(run_dir, runs_root, name, force))
        except MlgraphError as exc:
            problem = str(exc)
    out, problem = dist_util.broadcast_object(dist, (out, problem))
    if problem is not None:
        raise MlgraphError(problem)
    return Path(out)


def _pick_run_dir(run_dir, runs_root, name, force: bool) -> Path:
    if run_dir is not None:
        out = Path(run_dir)
        # a run that never finished an epoch (stopped by bad data, say) has nothing to keep: reuse it
        started = ckpt.is_run_dir(out) and (out / ckpt.RESUME).is_file()
        if started and not force:
            raise MlgraphError(f"{out}: already holds a training run (continue it with `{COMMAND} --resume {out}`, "
                               "pass --force to overwrite it, or choose another -o)")
        if out.exists() and not out.is_dir():
            raise MlgraphError(f"{out}: exists and is not a folder (choose another -o)")
    else:
        out = ckpt.next_run_dir(runs_root, name or "exp")
    out.mkdir(parents=True, exist_ok=True)
    if force or run_dir is not None:  # files of an overwritten run that this one might not rewrite
        for stale in (ckpt.METRICS, ckpt.RESUME, ckpt.SPLIT, ckpt.BACKBONE_WEIGHTS, "best.safetensors",
                      "last.safetensors", finish.CURVES):
            (out / stale).unlink(missing_ok=True)
        for events in out.glob(EVENT_FILES):  # an overwritten run's TensorBoard log (core/training/eventlog.py)
            events.unlink(missing_ok=True)
    return out


def run_config_of(inputs: TrainInputs, config: TrainConfig, prepared) -> RunConfig:
    from mlgraph_cli.core.io.artifacts import provenance

    data = prepared.data
    return RunConfig(
        labels=data.label_names, head=prepared.model.head.config, modality=data.modality,
        threshold=config.threshold, input=data.input_kind, backbone=data.backbone_config,
        backbone_weights=ckpt.BACKBONE_WEIGHTS if data.backbone_state is not None else None,
        backbone_trained=data.input_kind == "images", data=data.data_info, embeddings=prepared.embeddings_info,
        graph=prepared.graph_info, probe=prepared.probe,
        selection={"select_by": config.select_by, "tie_break": "val_loss"},
        provenance=provenance(COMMAND, _params(inputs, config)))


def _params(inputs: TrainInputs, config: TrainConfig) -> dict[str, Any]:
    return {"inputs": inputs.to_json(), "config": dataclasses.asdict(config)}


def write_run_files(out: Path, inputs: TrainInputs, config: TrainConfig, prepared, run_config: RunConfig,
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
