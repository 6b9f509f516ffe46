"""The run folder of a new training run: which folder (``-o``, or ``runs/train/exp``, ``exp2``, ...),
what an earlier run there means, and the files written before the first epoch (``args.json``,
``split.json``, ``backbone.safetensors``, ``config.json``; docs/train.md "The run folder")."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from mlgraph_cli.core.io.artifacts import provenance
from mlgraph_cli.core.io.outputs import WriteLock, write_json
from mlgraph_cli.core.training import checkpoint as ckpt
from mlgraph_cli.core.training import distributed as dist_util
from mlgraph_cli.core.training.config import TrainConfig
from mlgraph_cli.core.training.run_config import RunConfig
from mlgraph_cli.core.training.run_dir import claim_run_dir, next_run_dir
from mlgraph_cli.errors import MlgraphError
from mlgraph_cli.stages.train.inputs import TrainInputs

COMMAND = "mlgraph train"


def choose_run_dir(run_dir, runs_root, name, force: bool, dist) -> tuple[Path, WriteLock | None]:
    """Rank 0 picks the folder and claims it (:func:`~mlgraph_cli.core.training.run_dir.claim_run_dir`:
    checked, and locked until the run ends), then tells the others, so they never race its files.
    Returns (folder, the lock on rank 0 or None)."""
    out, problem, lock = None, None, None
    if dist.is_main:
        try:
            folder = Path(run_dir) if run_dir is not None else next_run_dir(runs_root, name or "exp")
            lock = claim_run_dir(folder, force=force, command=COMMAND)
            out = os.fspath(folder)
        except MlgraphError as exc:
            problem = str(exc)
    out, problem = dist_util.broadcast_object(dist, (out, problem))
    if problem is not None:
        raise MlgraphError(problem)
    return Path(out), lock


def run_config_of(inputs: TrainInputs, config: TrainConfig, prepared) -> RunConfig:
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
