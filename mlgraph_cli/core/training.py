"""Training a classification head (optionally with its backbone) on multi-label targets.

The :class:`Trainer` is the one call a stage makes (ultralytics' trainer facade): it runs the
epochs, validates on rank 0, writes ``best`` / ``last`` weights, ``metrics.jsonl`` and the
resume state into a run directory, and continues a stopped run exactly.

Choices, and why:
- Loss: BCE with logits over the targets that are known (1 or 0); -1 (ignore: VOC difficult,
  Open Images unverified) is masked out, the mean taken over the known entries.
- Batches and their order: see :mod:`mlgraph_cli.core.batches` (a seeded DistributedSampler in
  every run, so a resumed run and an N-process run see the same batches as a straight one).
- Resume: at each epoch's end the model, optimiser, schedule, gradient scaler and every rank's
  RNG states are saved; restoring them continues the run bit for bit (tests/test_train.py).
- Schedules step per optimiser step; mixed precision (fp16 autocast + GradScaler) only on CUDA.
- Video (features from ``mlgraph import-yt8m``): batches carry the mask of real frames and the
  head is called as ``head(x, mask)`` (core/video/heads.py); everything else is the same loop, so
  runs, resume and metrics.jsonl work as for images. Temporal CMA starts from a mean-pool linear
  probe (:func:`probe_start`, docs/video.md) before the first epoch.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from mlgraph_cli.core import checkpoint as ckpt
from mlgraph_cli.core import distributed as dist_util
from mlgraph_cli.core.batches import eval_loader, make_loader
from mlgraph_cli.core.progress import NULL_PROGRESS, ProgressHook

OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("cosine", "onecycle", "constant")
CACHES = ("auto", "ram", "disk")


@dataclass
class TrainConfig:
    """What a training run is made of; defaults, then the project's ``[train]``, then flags.

    batch_size is the global batch (split over the ranks of a torchrun launch). lr is the head's
    peak learning rate; an end-to-end backbone trains at ``lr * backbone_lr_scale``.
    clip_grad: max global gradient norm (0 = no clipping). amp: None = on for CUDA, off on CPU.
    val_fraction: share of the training file held out when no validation file is given (0 = none).
    """

    head: str = "cma"
    epochs: int = 20
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
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
    probe_epochs: int | None = None  # video cma: probe epochs before training; None = epochs // 2, 0 = none

    def __post_init__(self) -> None:
        checks = [
            (self.epochs >= 1, f"epochs must be at least 1, not {self.epochs}"),
            (self.batch_size >= 1, f"batch_size must be at least 1, not {self.batch_size}"),
            (self.lr > 0, f"lr must be positive, not {self.lr}"),
            (self.optimizer in OPTIMIZERS, f"optimizer must be one of {', '.join(OPTIMIZERS)}, not {self.optimizer!r}"),
            (self.schedule in SCHEDULES, f"schedule must be one of {', '.join(SCHEDULES)}, not {self.schedule!r}"),
            (self.cache in CACHES, f"cache must be one of {', '.join(CACHES)}, not {self.cache!r}"),
            (0.0 <= self.val_fraction < 1.0, f"val_fraction must be in [0, 1), not {self.val_fraction}"),
            (0.0 < self.threshold < 1.0, f"threshold must be in (0, 1), not {self.threshold}"),
            (self.clip_grad >= 0, f"clip_grad must be >= 0, not {self.clip_grad}"),
            (self.workers >= 0, f"workers must be >= 0, not {self.workers}"),
            (0 <= self.warmup_epochs < self.epochs, f"warmup_epochs must be in [0, epochs), not {self.warmup_epochs}"),
            (self.backbone_lr_scale >= 0, f"backbone_lr_scale must be >= 0, not {self.backbone_lr_scale}"),
            (self.probe_epochs is None or self.probe_epochs >= 0,
             f"probe_epochs must be >= 0, not {self.probe_epochs}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


# ---------------------------------------------------------------------------------------------
# The model: an optional backbone (end to end) feeding a head

class Classifier(nn.Module):
    """``backbone`` (an nn.Module returning ``{"features": ..., "features_aux": ...}``, or None for
    cached features) and ``head``. forward(x, aux) -> logits (B, C).

    Multi-scale heads get ``[aux, main]``: the earlier stage first, as ms-cma's ``in_channels``.
    """

    def __init__(self, head: nn.Module, backbone: nn.Module | None = None) -> None:
        super().__init__()
        self.head = head
        self.backbone = backbone

    def maps(self, x: torch.Tensor, aux: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.backbone is not None:
            out = self.backbone(x)
            return out["features"], out.get("features_aux")
        return x, aux

    def head_input(self, x: torch.Tensor, aux: torch.Tensor | None):
        return [aux, x] if getattr(self.head, "multi_scale", False) else x

    def forward(self, x: torch.Tensor, aux: torch.Tensor | None = None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        """mask: (B, T) bool of real frames for a temporal head (video), None for images."""
        main, aux = self.maps(x, aux)
        if mask is not None:
            return self.head(self.head_input(main, aux), mask)
        return self.head(self.head_input(main, aux))


def _inputs(batch: dict[str, Any], device: torch.device) -> tuple[torch.Tensor, ...]:
    """(x, aux, mask) of a batch on ``device``; aux and mask may be None."""
    x = batch["x"].to(device, non_blocking=True)
    aux = batch["aux"].to(device, non_blocking=True) if batch["aux"] is not None else None
    mask = batch.get("mask")
    return x, aux, (mask.to(device, non_blocking=True) if mask is not None else None)


def masked_bce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean BCE-with-logits over known targets; targets (B, C) int8 with -1 = ignore."""
    known = targets >= 0
    loss = F.binary_cross_entropy_with_logits(logits.float(), targets.clamp(min=0).float(), reduction="none")
    return (loss * known).sum() / known.sum().clamp(min=1)


@torch.no_grad()
def score(model: nn.Module, loader: DataLoader, device: torch.device, progress: ProgressHook = NULL_PROGRESS,
          amp: bool = False) -> tuple[np.ndarray, np.ndarray, float]:
    """Probabilities (N, C) float32, targets (N, C) int8 and the mean masked BCE over a loader."""
    was_training = model.training
    model.eval()
    scores, targets, loss_sum, known = [], [], 0.0, 0
    for batch in loader:
        if len(batch["y"]) == 0:
            continue
        x, aux, mask = _inputs(batch, device)
        y = batch["y"].to(device)
        with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=amp):
            logits = model(x, aux, mask).float()
        n_known = int((y >= 0).sum())
        loss_sum += float(masked_bce(logits, y)) * n_known
        known += n_known
        scores.append(torch.sigmoid(logits).cpu().numpy())
        targets.append(batch["y"].numpy())
        progress.advance(len(y))
    model.train(was_training)
    if not scores:
        c = int(getattr(getattr(model, "head", None), "num_labels", 0))
        return np.zeros((0, c), np.float32), np.zeros((0, c), np.int8), float("nan")
    return np.concatenate(scores), np.concatenate(targets), loss_sum / max(known, 1)


# ---------------------------------------------------------------------------------------------
# Optimiser and schedule

def param_groups(model: Classifier, config: TrainConfig) -> list[dict[str, Any]]:
    """Head and backbone groups (the backbone at ``lr * backbone_lr_scale``); no weight decay on
    biases and norm scales (1-d parameters), the usual AdamW practice."""
    groups = []
    for part, scale in (("head", 1.0), ("backbone", config.backbone_lr_scale)):
        module = getattr(model, part)
        if module is None:
            continue
        params = [p for p in module.parameters() if p.requires_grad]
        decay = [p for p in params if p.ndim >= 2]
        no_decay = [p for p in params if p.ndim < 2]
        for ps, wd in ((decay, config.weight_decay), (no_decay, 0.0)):
            if ps:
                groups.append({"params": ps, "lr": config.lr * scale, "weight_decay": wd, "name": part})
    return groups


def make_optimizer(groups: list[dict[str, Any]], config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=config.momentum > 0)
    return torch.optim.AdamW(groups, lr=config.lr)


def make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int):
    """Per-step schedule over ``epochs * steps_per_epoch`` steps.

    cosine: linear warm-up for ``warmup_epochs``, then half a cosine from the peak down to
    ``min_lr_ratio`` times it (Loshchilov & Hutter, SGDR, 2017, without restarts).
    onecycle: torch's OneCycleLR (Smith 2018), warm-up share = warmup_epochs / epochs (0.3 if 0).
    constant: the peak throughout.
    """
    total = max(1, config.epochs * steps_per_epoch)
    warm = int(round(config.warmup_epochs * steps_per_epoch))
    if config.schedule == "onecycle":
        pct = config.warmup_epochs / config.epochs if config.warmup_epochs > 0 else 0.3
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=[g["lr"] for g in optimizer.param_groups],
                                                   total_steps=total, pct_start=pct)
    if config.schedule == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    floor = config.min_lr_ratio

    def cosine(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        t = min(1.0, (step - warm) / max(1, total - warm))
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * t))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, cosine)


# ---------------------------------------------------------------------------------------------
# The trainer

@dataclass
class TrainResult:
    """What a finished (or resumed and finished) run produced."""

    run_dir: Path
    epochs_done: int
    start_epoch: int
    best_epoch: int | None
    best_map: float | None
    last: dict[str, Any]
    is_main: bool


class Trainer:
    """Train ``model`` on ``train_set``, validate on ``val_set`` (rank 0, whole set, no padding),
    write checkpoints to ``run_dir`` (rank 0 alone).

    device: this rank's torch device. on_epoch_end(row) runs after each epoch's files are
    written (a test interrupts a run there, as Ctrl-C would).
    """

    def __init__(self, model: Classifier, train_set: Dataset, val_set: Dataset | None, *, config: TrainConfig,
                 label_names: Sequence[str], run_dir: str | Path, device: torch.device,
                 dist: dist_util.DistInfo = dist_util.DistInfo(), progress: ProgressHook = NULL_PROGRESS,
                 on_epoch_end: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.model = model.to(device)
        self.train_set, self.val_set = train_set, val_set
        self.config, self.label_names = config, list(label_names)
        self.run_dir = Path(run_dir)
        self.device, self.dist, self.progress = device, dist, progress
        self.on_epoch_end = on_epoch_end
        self.amp = device.type == "cuda" and config.amp is not False

    def _wrapped(self) -> nn.Module:
        if not self.dist.enabled:
            return self.model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(self.model, device_ids=ids)

    def fit(self, resume: dict[str, Any] | None = None) -> TrainResult:
        """Run the remaining epochs (all of them, or those after ``resume['epoch']``)."""
        from mlgraph_cli.core.metrics import multilabel_metrics

        cfg, dist, device, model = self.config, self.dist, self.device, self.model
        seed_everything(cfg.seed + dist.rank)  # per-rank dropout masks; rank 0 matches a 1-process run
        net = self._wrapped()
        loader = make_loader(self.train_set, batch_size=cfg.batch_size, dist=dist, shuffle=cfg.shuffle,
                             seed=cfg.seed, workers=cfg.workers, pin=device.type == "cuda")
        steps = len(loader)
        optimizer = make_optimizer(param_groups(model, cfg), cfg)
        scheduler = make_scheduler(optimizer, cfg, steps)
        scaler = torch.amp.GradScaler(device.type, enabled=self.amp)
        start, best_map, best_epoch = 0, -math.inf, None
        if resume is not None:
            model.load_state_dict(resume["model"])
            optimizer.load_state_dict(resume["optimizer"])
            scheduler.load_state_dict(resume["scheduler"])
            scaler.load_state_dict(resume["scaler"])
            start, best_epoch = int(resume["epoch"]), resume.get("best_epoch")
            best_map = float(resume.get("best_map", -math.inf))
            states = resume["rng"]
            ckpt.set_rng_state(states[dist.rank] if len(states) == dist.world_size else states[0], device)
            if len(states) != dist.world_size and dist.rank:  # another world size: fresh streams
                seed_everything(cfg.seed + dist.rank + 1000 * start)
        last: dict[str, Any] = {}
        for epoch in range(start + 1, cfg.epochs + 1):
            t0 = time.perf_counter()
            loader.sampler.sampler.set_epoch(epoch)  # a new permutation per epoch, same on all ranks
            train_loss = self._train_epoch(net, loader, optimizer, scheduler, scaler, epoch, steps)
            row: dict[str, Any] = {"epoch": epoch, "train_loss": train_loss, "val_loss": None, "val_mAP": None,
                                   "val_CF1": None, "val_OF1": None,
                                   "lr": optimizer.param_groups[0]["lr"]}
            improved = self.val_set is None
            if dist.is_main and self.val_set is not None:
                self.progress.start(f"validate {epoch}/{cfg.epochs}", total=len(self.val_set), unit="images")
                scores, targets, val_loss = score(model, eval_loader(self.val_set, cfg.batch_size, cfg.workers),
                                                  device, self.progress, amp=self.amp)
                self.progress.stop()
                m = multilabel_metrics(scores, targets, threshold=cfg.threshold, label_names=self.label_names)
                row.update(val_loss=val_loss, val_mAP=m["mAP"], val_CF1=m["CF1"], val_OF1=m["OF1"])
                # mAP is None when no validation label has a positive: the first epoch stands as best
                improved = best_epoch is None or (m["mAP"] is not None and m["mAP"] > best_map)
            row["seconds"] = round(time.perf_counter() - t0, 3)
            if improved:
                best_epoch = epoch
                best_map = row["val_mAP"] if row["val_mAP"] is not None else best_map
            self._save(epoch, row, improved, optimizer, scheduler, scaler, best_map, best_epoch)
            last = row
            if dist.is_main:
                self.progress.log(_epoch_line(row, cfg.epochs))
            if self.on_epoch_end is not None:
                self.on_epoch_end(row)
        return TrainResult(run_dir=self.run_dir, epochs_done=cfg.epochs, start_epoch=start, best_epoch=best_epoch,
                           best_map=None if best_map == -math.inf else best_map, last=last, is_main=dist.is_main)

    def _train_epoch(self, net, loader, optimizer, scheduler, scaler, epoch: int, steps: int) -> float:
        cfg, device = self.config, self.device
        net.train()
        if self.dist.is_main:
            self.progress.start(f"epoch {epoch}/{cfg.epochs}", total=steps, unit="batches")
        loss_sum, known = 0.0, 0
        for batch in loader:
            if len(batch["y"]) == 0:  # every image of the batch was unreadable
                continue
            x, aux, mask = _inputs(batch, device)
            y = batch["y"].to(device, non_blocking=True)
            with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=self.amp):
                logits = net(x, aux, mask)
            loss = masked_bce(logits, y)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if cfg.clip_grad > 0:
                scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
                nn.utils.clip_grad_norm_(self.model.parameters(), cfg.clip_grad)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            n = int((y >= 0).sum())
            loss_sum += float(loss.detach()) * n
            known += n
            if self.dist.is_main:
                self.progress.advance(1)
        if self.dist.is_main:
            self.progress.stop()
        loss_sum, known = dist_util.all_reduce_sum(self.dist, [loss_sum, float(known)], device)
        return loss_sum / max(known, 1.0)

    def _save(self, epoch, row, improved, optimizer, scheduler, scaler, best_map, best_epoch) -> None:
        """metrics line, then weights, then the resume state: a run killed in between resumes from
        the previous epoch and drops the extra metrics line (see stages/train.py)."""
        rngs = self._gather_rng()
        if not self.dist.is_main:
            dist_util.barrier(self.dist)
            return
        state = self.model.state_dict()
        meta = {"schema": "mlgraph/run@1", "epoch": str(epoch), "val_mAP": str(row["val_mAP"])}
        ckpt.append_metrics(self.run_dir, row)
        ckpt.save_weights(ckpt.weights_path(self.run_dir, "last"), state, meta)
        if improved:
            ckpt.save_weights(ckpt.weights_path(self.run_dir, "best"), state, meta)
        ckpt.save_resume(self.run_dir / ckpt.RESUME, {
            "epoch": epoch, "model": state, "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "rng": rngs,
            "best_map": best_map, "best_epoch": best_epoch, "world_size": self.dist.world_size,
        })
        dist_util.barrier(self.dist)

    def _gather_rng(self) -> list[dict[str, Any]]:
        """Every rank's RNG state, in rank order (on rank 0; an in-memory exchange between our own
        processes). The file only ever holds tensors and numbers."""
        mine = ckpt.rng_state(self.device)
        if not self.dist.enabled:
            return [mine]
        import torch.distributed as tdist

        box: list[Any] = [None] * self.dist.world_size
        tdist.all_gather_object(box, mine)
        return box


def probe_epochs(config: TrainConfig) -> int:
    """Epochs of the probe start: ``config.probe_epochs``, or half the main epochs when unset (the
    1 : 2 split of benchmarks/video_quality.py, where a third of the budget trained the probe)."""
    return config.epochs // 2 if config.probe_epochs is None else int(config.probe_epochs)


def probe_start(model: Classifier, train_set: Dataset, config: TrainConfig, device: torch.device,
                progress: ProgressHook = NULL_PROGRESS) -> dict[str, Any] | None:
    """Start a temporal CMA head from a mean-pool linear probe (docs/video.md, point 4).

    Without it the ReLU-cosine attention of a random start often never finds a label's frames;
    ``head.init_from_probe`` sets phi = E^+ V and the classifiers to the probe's. Mean pooling is
    fixed, so the probe (a ``video-gap`` head) is trained by ``fit_video_head`` on each clip's mean
    real frame, pooled once in one pass over ``train_set``: (N, D) in memory instead of the (N, D, T)
    frames. Deterministic for a seed, so every rank of a torchrun launch starts from the same head.
    Returns ``{"epochs", "loss", "videos"}``, or None for a head without ``init_from_probe`` or 0 epochs.
    """
    head = model.head
    epochs = probe_epochs(config)
    if not hasattr(head, "init_from_probe") or epochs < 1:
        return None
    from mlgraph_cli.core.video.heads import TemporalPoolHead, as_frames, masked_mean
    from mlgraph_cli.core.video.training import VideoTrainConfig, fit_video_head

    pooled, targets = [], []
    progress.start("probe: pooling clips", total=len(train_set), unit="videos")
    for batch in eval_loader(train_set, config.batch_size, config.workers):
        frames, mask = as_frames(batch["x"], batch["mask"])  # (B, D, T), (B, T)
        pooled.append(masked_mean(frames.float(), mask))  # (B, D)
        targets.append(batch["y"])
        progress.advance(len(batch["y"]))
    progress.stop()
    x = torch.cat(pooled).numpy()[:, :, None]  # (N, D, 1): each clip as one frame, its mean
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        probe = TemporalPoolHead(head.in_channels, head.num_labels, pool="mean")
    fit = fit_video_head(probe, x, np.ones((len(x), 1), dtype=bool), torch.cat(targets).numpy(),
                         VideoTrainConfig(epochs=epochs, batch_size=config.batch_size, lr=config.lr,
                                          weight_decay=config.weight_decay, probe_epochs=0, seed=config.seed,
                                          device=str(device)),
                         progress=progress)
    head.init_from_probe(probe.fc.weight.detach().cpu(), probe.fc.bias.detach().cpu())
    return {"epochs": epochs, "loss": fit.history[-1]["loss"], "videos": int(x.shape[0])}


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global RNGs."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def _epoch_line(row: dict[str, Any], epochs: int) -> str:
    text = f"epoch {row['epoch']}/{epochs}: train loss {row['train_loss']:.4f}"
    if row.get("val_mAP") is not None:
        text += (f", val loss {row['val_loss']:.4f}, val mAP {row['val_mAP']:.2f}, "
                 f"CF1 {row['val_CF1']:.2f}, OF1 {row['val_OF1']:.2f}")
    return text + f", lr {row['lr']:.3g}, {row['seconds']:.1f} s"
