"""The settings of a training run (``mlgraph train``, ``[train]`` in mlgraph.toml).

Defaults that depend on what the data is (image maps or video frames) are left unset here and
filled once from the features file's schema (:meth:`TrainConfig.for_modality`), so a library
caller gets what the command gets. Why the video values: docs/video.md ("Defaults").
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("cosine", "onecycle", "constant")
CACHES = ("auto", "ram", "disk")
LOSSES = ("bce", "asl")  # core/training/losses.py (kept here too: this module imports no torch)
# Per modality: what an unset epochs / lr / probe_epochs / patience becomes.
MODALITY_DEFAULTS: dict[str, dict[str, Any]] = {
    "image": {"epochs": 20, "lr": 1e-3, "weight_decay": 1e-4, "probe_epochs": 0, "patience": 0},
    "video": {"epochs": 40, "lr": 1e-2, "weight_decay": 1e-4, "probe_epochs": 10, "patience": 10},
}


@dataclass
class TrainConfig:
    """What a training run is made of; defaults, then the project's ``[train]``, then flags.

    batch_size is the global batch (split over the ranks of a torchrun launch). lr is the head's
    peak learning rate; an end-to-end backbone trains at ``lr * backbone_lr_scale``.
    clip_grad: max global gradient norm (0 = no clipping). amp: None = on for CUDA, off on CPU.
    val_fraction: share of the training file held out when no validation file is given (0 = none).

    epochs, lr, weight_decay, probe_epochs and patience left at None take the defaults of the
    head (its class's ``training_defaults``), then of the data's modality
    (:data:`MODALITY_DEFAULTS`), filled in by :meth:`for_modality` once the features file says
    what it holds. patience: stop when validation mAP has not improved for this many epochs
    (0 = never stop early). The best epoch's weights are ``best.safetensors`` either way.
    loss: ``bce`` or ``asl``, the asymmetric loss with ``asl_gamma_neg``, ``asl_gamma_pos`` and the
    probability margin ``asl_clip`` (core/training/losses.py).
    """

    head: str = "cma"
    epochs: int | None = None
    batch_size: int = 32
    lr: float | None = None
    weight_decay: float | None = None
    optimizer: str = "adamw"
    momentum: float = 0.9
    schedule: str = "cosine"
    warmup_epochs: float = 0.0
    min_lr_ratio: float = 0.01
    clip_grad: float = 10.0
    amp: bool | None = None
    seed: int = 0
    shuffle: bool = True
    val_fraction: float = 0.1
    threshold: float = 0.5
    cache: str = "auto"
    workers: int = 0
    device: str = "auto"
    head_options: dict[str, Any] = field(default_factory=dict)
    adjacency: str = "mlgcn"
    adjacency_params: dict[str, Any] = field(default_factory=dict)
    backbone: str = "efficientnet-lite0"  # end to end only; the same defaults as `mlgraph extract`
    weights: str = "DEFAULT"
    image_size: int | None = None  # None: the backbone's default (448 torchvision, 224 Lite0)
    layers: list[str] | None = None
    backbone_lr_scale: float = 0.1
    flip: bool = True
    probe_epochs: int | None = None  # video cma: epochs of its probe start; 0 = none
    patience: int | None = None
    loss: str = "bce"  # "bce" or "asl" (core/training/losses.py)
    asl_gamma_neg: float = 4.0  # ASL's focusing parameter of negatives (Ridnik et al., ICCV 2021)
    asl_gamma_pos: float = 0.0  # ... and of positives
    asl_clip: float = 0.05  # ASL's probability margin m: negatives with p < m add nothing

    def for_modality(self, modality: str, head_defaults: dict[str, Any] | None = None) -> "TrainConfig":
        """A copy with every unset (None) value taken from ``head_defaults``, then ``modality``'s."""
        defaults = {**MODALITY_DEFAULTS[modality], **(head_defaults or {})}
        fill = {k: v for k, v in defaults.items() if getattr(self, k) is None}
        return dataclasses.replace(self, **fill) if fill else self

    def __post_init__(self) -> None:
        checks = [
            (self.epochs is None or self.epochs >= 1, f"epochs must be at least 1, not {self.epochs}"),
            (self.batch_size >= 1, f"batch_size must be at least 1, not {self.batch_size}"),
            (self.lr is None or self.lr > 0, f"lr must be positive, not {self.lr}"),
            (self.weight_decay is None or self.weight_decay >= 0,
             f"weight_decay must be >= 0, not {self.weight_decay}"),
            (self.optimizer in OPTIMIZERS, f"optimizer must be one of {', '.join(OPTIMIZERS)}, not {self.optimizer!r}"),
            (self.schedule in SCHEDULES, f"schedule must be one of {', '.join(SCHEDULES)}, not {self.schedule!r}"),
            (self.cache in CACHES, f"cache must be one of {', '.join(CACHES)}, not {self.cache!r}"),
            (0.0 <= self.val_fraction < 1.0, f"val_fraction must be in [0, 1), not {self.val_fraction}"),
            (0.0 < self.threshold < 1.0, f"threshold must be in (0, 1), not {self.threshold}"),
            (self.clip_grad >= 0, f"clip_grad must be >= 0, not {self.clip_grad}"),
            (self.workers >= 0, f"workers must be >= 0, not {self.workers}"),
            (0 <= self.warmup_epochs < (self.epochs or math.inf),
             f"warmup_epochs must be in [0, epochs), not {self.warmup_epochs}"),
            (self.backbone_lr_scale >= 0, f"backbone_lr_scale must be >= 0, not {self.backbone_lr_scale}"),
            (self.probe_epochs is None or self.probe_epochs >= 0,
             f"probe_epochs must be >= 0, not {self.probe_epochs}"),
            (self.patience is None or self.patience >= 0, f"patience must be >= 0, not {self.patience}"),
            (self.loss in LOSSES, f"loss must be one of {', '.join(LOSSES)}, not {self.loss!r}"),
            (self.asl_gamma_neg >= 0 and self.asl_gamma_pos >= 0,
             f"asl_gamma_neg and asl_gamma_pos must be >= 0, not {self.asl_gamma_neg} and {self.asl_gamma_pos}"),
            (0.0 <= self.asl_clip < 1.0, f"asl_clip must be in [0, 1), not {self.asl_clip}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
