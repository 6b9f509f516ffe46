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

from mlgraph_cli.core.features.config import MAX_IMAGE_SIZE
from mlgraph_cli.core.training.selection import SELECT_BY

OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("cosine", "onecycle", "constant")
CACHES = ("auto", "ram", "disk")
LOSSES = ("bce", "asl")  # core/training/losses.py (kept here too: this module imports no torch)
CHECKPOINTS = ("best", "last")  # the weights a run keeps: RUN/best.safetensors, RUN/last.safetensors
# The names `--head` takes (core/models HEADS; a video head is named without its "video-" prefix).
HEAD_CHOICES = ("cma", "ms-cma", "gap", "gmp", "mlgcn", "query", "probe", "frame-max")
# The head an unset --head becomes (docs/benchmarks.md, "Defaults by a rule"): on images multi-scale CMA
# where the features hold the finer map as well (what `mlgraph extract` writes by default with
# EfficientNet-Lite0), CMA on one map (MS-CMA's single-scale form), temporal CMA on video.
DEFAULT_HEADS = {"image-two-maps": "ms-cma", "image": "cma", "video": "cma"}
DEFAULT_HEAD_HELP = (f"{DEFAULT_HEADS['image-two-maps']} on image features with two maps (extract's default), "
                     f"{DEFAULT_HEADS['image']} on one map and on video")


def default_head(modality: str, two_maps: bool) -> str:
    """The head of a run that names none, for data of ``modality`` with one map or two."""
    return DEFAULT_HEADS["image-two-maps" if modality == "image" and two_maps else modality]


# Per modality: what an unset epochs / lr / weight_decay / probe_epochs / patience becomes.
MODALITY_DEFAULTS: dict[str, dict[str, Any]] = {
    "image": {"epochs": 20, "lr": 1e-3, "weight_decay": 1e-4, "probe_epochs": 0, "patience": 0},
    "video": {"epochs": 40, "lr": 1e-2, "weight_decay": 1e-4, "probe_epochs": 10, "patience": 10},
}
# Per head (its name in core/models HEADS): what it trains with instead of its modality's default.
# cma, ms-cma: the probe start, chosen on the validation splits of benchmarks/fair.py, where it lifted
# cma from below GAP to above it (docs/benchmarks.md). Video pooling heads: AdamW's decoupled decay of
# 1.0 (x lr 1e-2 per step) brings them to what a logistic regression with its C chosen on validation
# reaches (docs/video.md, "Defaults").
HEAD_TRAINING_DEFAULTS: dict[str, dict[str, Any]] = {
    "cma": {"probe_epochs": 20},
    "ms-cma": {"probe_epochs": 20},
    "video-gap": {"weight_decay": 1.0},
    "video-gmp": {"weight_decay": 1.0},
    "video-frame-max": {"weight_decay": 1.0},
}
_MODALITY_WORDS = {"image": "images", "video": "video"}


def modality_default_text(name: str) -> str:
    """What an unset ``name`` becomes, as ``--help`` shows it, from the two tables above:
    ``0 on images (20 for cma, ms-cma), 10 on video``."""
    parts = []
    for modality, defaults in MODALITY_DEFAULTS.items():
        base, by_value = defaults[name], {}
        for head, values in HEAD_TRAINING_DEFAULTS.items():
            is_video = head.startswith("video-")
            if name in values and is_video == (modality == "video") and values[name] != base:
                by_value.setdefault(values[name], []).append(head.removeprefix("video-"))
        heads = "; ".join(f"{value:g} for {', '.join(names)}" for value, names in by_value.items())
        parts.append(f"{base:g} on {_MODALITY_WORDS[modality]}" + (f" ({heads})" if heads else ""))
    return ", ".join(parts)


def _per_modality(name: str) -> Any:
    """A field left None, filled per head and modality (:meth:`TrainConfig.for_modality`); the
    text of its default (``metadata["default"]``) is what the command's help shows."""
    return field(default=None, metadata={"default": modality_default_text(name)})


@dataclass
class TrainConfig:
    """What a training run is made of; defaults, then the project's ``[train]``, then flags.

    batch_size is the global batch (split over the ranks of a torchrun launch). lr is the head's
    peak learning rate; an end-to-end backbone trains at ``lr * backbone_lr_scale``.
    clip_grad: max global gradient norm (0 = no clipping). amp: None = on for CUDA, off on CPU.
    val_fraction: share of the training file held out when no validation file is given (0 = none).

    epochs, lr, weight_decay, probe_epochs and patience left at None take the defaults of the
    head (:data:`HEAD_TRAINING_DEFAULTS`), then of the data's modality
    (:data:`MODALITY_DEFAULTS`), filled in by :meth:`for_modality` once the features file says
    what it holds. patience: stop when validation mAP has not improved for this many epochs
    (0 = never stop early). The best epoch's weights are ``best.safetensors`` either way.
    select_by: what "best" means, ``mAP``, ``loss`` or ``CF1`` on the validation split; ties go to
    the lower validation loss (core/training/selection.py). patience counts epochs since the best.
    tensorboard: write TensorBoard event files into the run folder (None: when the ``tensorboard``
    package is installed; core/training/eventlog.py).
    loss: ``bce`` or ``asl``, the asymmetric loss with ``asl_gamma_neg``, ``asl_gamma_pos`` and the
    probability margin ``asl_clip`` (core/training/losses.py).
    """

    head: str | None = field(default=None, metadata={"default": DEFAULT_HEAD_HELP})  # None: default_head()
    epochs: int | None = _per_modality("epochs")
    batch_size: int = 32
    lr: float | None = _per_modality("lr")
    weight_decay: float | None = _per_modality("weight_decay")
    optimizer: str = "adamw"
    momentum: float = 0.9
    schedule: str = "cosine"
    warmup_epochs: float = 0.0
    min_lr_ratio: float = 0.01
    clip_grad: float = 10.0
    amp: bool | None = field(default=None, metadata={"default": "on for CUDA"})
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
    image_size: int | None = field(default=None, metadata={"default": "448 torchvision, 224 efficientnet-lite0"})
    layers: list[str] | None = None
    backbone_lr_scale: float = 0.1
    flip: bool = True
    probe_epochs: int | None = _per_modality("probe_epochs")  # cma, ms-cma: epochs of the probe start; 0 = none
    patience: int | None = _per_modality("patience")
    loss: str = "bce"  # "bce" or "asl" (core/training/losses.py)
    asl_gamma_neg: float = 4.0  # ASL's focusing parameter of negatives (Ridnik et al., ICCV 2021)
    asl_gamma_pos: float = 0.0  # ... and of positives
    asl_clip: float = 0.05  # ASL's probability margin m: negatives with p < m add nothing
    select_by: str = "mAP"  # which epoch is best: "mAP", "loss" or "CF1" (core/training/selection.py)
    tensorboard: bool | None = field(default=None, metadata={"default": "on when tensorboard is installed"})

    def for_modality(self, modality: str, head: str | None = None) -> "TrainConfig":
        """A copy with every unset (None) value taken from the defaults of ``head`` (its name in
        core/models HEADS: ``video-gap``), then of ``modality``."""
        defaults = {**MODALITY_DEFAULTS[modality], **HEAD_TRAINING_DEFAULTS.get(head or "", {})}
        fill = {k: v for k, v in defaults.items() if getattr(self, k) is None}
        return dataclasses.replace(self, **fill) if fill else self

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # NaN passes every comparison below as False, inf most of them
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"--{f.name.replace('_', '-')} {value}: must be a finite number")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**63:
            raise ValueError(f"--seed {self.seed}: must be a whole number from 0 to 2**63 - 1")
        if self.image_size is not None and not 1 <= self.image_size <= MAX_IMAGE_SIZE:
            raise ValueError(f"--image-size {self.image_size}: must be a whole number of px from 1 to {MAX_IMAGE_SIZE}")
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
            (self.select_by in SELECT_BY, f"select_by must be one of {', '.join(SELECT_BY)}, not {self.select_by!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
