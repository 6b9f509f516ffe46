"""Loading a trained run: rebuild its model from ``config.json`` + safetensors.

Rebuilding never unpickles anything: the head comes from its plain config
(``build_head(**config["head"])``) and its tensors from ``best`` / ``last.safetensors``; the
backbone from its config, with weights from ``backbone.safetensors`` (random init or a local
file at extraction time), from the checkpoint (fine-tuned end to end), or by name (a named
pretrained set such as ``IMAGENET1K`` of EfficientNet-Lite0). Video runs have no backbone.

The backbone's map shapes are read from the run's config, not learnt from a blank forward pass
(that pass cost a whole extra forward per ``predict``); only ``image_size`` other than the
run's probes again, since that size must be checked.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mlgraph_cli.core.features.backbones.build import backbone_from_config
from mlgraph_cli.core.io.artifacts import maker
from mlgraph_cli.core.models import build_head
from mlgraph_cli.core.training import checkpoint as ckpt
from mlgraph_cli.core.training.run_config import RunConfig
from mlgraph_cli.core.training.trainer import Classifier
from mlgraph_cli.errors import InputError, MismatchError, MlgraphError


@dataclass
class LoadedRun:
    """A run's model in eval mode. ``model.backbone`` is set when ``with_backbone`` was asked for
    (or the run trained its backbone end to end)."""

    run_dir: Path
    config: dict[str, Any]
    model: Classifier
    label_names: list[str]
    threshold: float
    checkpoint: str
    epoch: int | None
    thresholds: list[float] | None = None  # per label, chosen on validation at train time (label order)

    @property
    def head_name(self) -> str:
        return str(self.config["head"]["name"])

    @property
    def modality(self) -> str:
        """"image" or "video" (runs from before video support are image runs)."""
        return str(self.config.get("modality") or "image")


def load_run(run_dir: str | os.PathLike, which: str = "best", *, device: Any = "cpu", with_backbone: bool = False,
             image_size: int | None = None) -> LoadedRun:
    """Rebuild a run's model. ``image_size`` overrides the backbone's input size (attention
    heads and global pooling work on any map size; the backbone must still give a map)."""
    run = Path(run_dir)
    run_config = RunConfig.read(run)
    config = run_config.to_json()
    fix = f"train it with `{maker('run')}`, or continue it with `{maker('run')} --resume {run}`"
    path = ckpt.weights_path(run, which)
    if not path.is_file():
        raise InputError(f"{path}: no such weights file (the run finished no epoch yet; {fix})")
    tensors, meta = ckpt.load_weights(path, fix=fix)
    head = _build_head(run, config, tensors, path)
    run_config.check_weights(path, meta)  # same shapes, but another order of labels or another run
    trained_backbone = bool(config.get("backbone_trained"))
    backbone = None
    if with_backbone or trained_backbone:
        backbone = _build_backbone(run, config, tensors, path, device, image_size)
    model = Classifier(head, backbone).to(device).eval()
    epoch = int(meta["epoch"]) if str(meta.get("epoch", "")).isdigit() else None
    return LoadedRun(run_dir=run, config=config, model=model, label_names=list(config["labels"]),
                     threshold=float(config.get("threshold", 0.5)), checkpoint=which, epoch=epoch,
                     thresholds=run_config.thresholds)


def _build_head(run: Path, config: dict[str, Any], tensors: dict[str, torch.Tensor], path: Path):
    head_cfg = dict(config.get("head") or {})
    if "name" not in head_cfg:
        raise InputError(f"{run / ckpt.CONFIG}: no head config (re-train with `{maker('run')}`)")
    try:
        head = build_head(**head_cfg)
    except (MlgraphError, TypeError, ValueError, RuntimeError) as exc:  # options hand-edited into nonsense
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise MismatchError(f"{run / ckpt.CONFIG}: \"head\" does not describe a head mlgraph can build ({first}) "
                            f"(re-train with `{maker('run')}`, or restore the run's own config.json)") from None
    state = {k[len("head."):]: v for k, v in tensors.items() if k.startswith("head.")}
    try:
        head.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0].rstrip(":")
        raise MismatchError(f"{path}: these weights do not fit the {head_cfg['name']!r} head described in "
                            f"{run / ckpt.CONFIG} ({first}) (use the run's own files, or re-train with "
                            f"`{maker('run')}`)") from None
    if len(config.get("labels") or []) != getattr(head, "num_labels", -1):
        raise MismatchError(f"{run / ckpt.CONFIG}: {len(config.get('labels') or [])} label names for a head with "
                            f"{getattr(head, 'num_labels', '?')} outputs (re-train with `{maker('run')}`)")
    return head


def _build_backbone(run: Path, config: dict[str, Any], tensors: dict[str, torch.Tensor], path: Path, device,
                    image_size: int | None):
    bcfg = dict(config.get("backbone") or {})
    if not bcfg:
        raise InputError(f"{run / ckpt.CONFIG}: no backbone recorded, so images cannot be turned into features "
                         f"(train on features from `{maker('features')}`)")
    # The stored map shapes stand unless another input size is asked for (then probe and check it).
    probe = image_size is not None and int(image_size) != bcfg.get("image_size")
    if image_size is not None:
        bcfg["image_size"] = int(image_size)
        if bcfg.get("preprocessing"):
            bcfg["preprocessing"] = {**bcfg["preprocessing"], "size": int(image_size)}
    if config.get("backbone_trained"):
        state = {k[len("backbone."):]: v for k, v in tensors.items() if k.startswith("backbone.")}
        source = path
    elif config.get("backbone_weights"):
        source = run / config["backbone_weights"]
        state, _ = ckpt.load_weights(source, fix=f"re-train with `{maker('run')}` to store it again")
    else:
        return backbone_from_config(bcfg, device, probe=probe)  # a named pretrained set
    backbone = backbone_from_config(bcfg, device, load_weights=False, probe=probe)
    try:
        backbone.load_state_dict(state)
    except RuntimeError as exc:
        raise MismatchError(f"{source}: the backbone weights do not fit {bcfg.get('name')} "
                            f"({str(exc).splitlines()[0]}) (re-train with `{maker('run')}`)") from None
    return backbone


