"""A small trainer for the temporal heads on in-memory frame features, and their inference.

``fit_video_head`` trains any head that takes ``head(x, mask)`` (core/video/heads.py) with BCE on
logits and AdamW; ignored targets (-1) are left out of the loss. ``predict_videos`` gives
per-video probabilities; ``score_segments`` runs the head on each rated segment's frames alone
(the frames outside the segment are masked), as YouTube-8M Segments is scored.

Arrays: features (N, D, T) float (a (N, D, T, 1) array works too), mask (N, T) bool, labels
(N, C) in {1, 0, -1}.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mlgraph_cli.core.progress import NULL_PROGRESS, ProgressHook
from mlgraph_cli.core.video.yt8m import SEGMENT_FRAMES


@dataclass
class VideoTrainConfig:
    """Optimisation of :func:`fit_video_head`.

    probe_epochs: for a head with ``init_from_probe`` (temporal CMA), first train a mean-pool
    linear probe this many epochs and start the head from it (docs/video.md: without it the
    ReLU-cosine attention often never finds the label's frames); 0 = start from random weights.

    attention_lr: learning rate of the cross-modality transform (``head.cmt``), None = ``lr``.
    The attention only learns through the normalised ReLU-cosine, whose gradient is small next
    to the classifiers' (docs/video.md), so it may need its own rate.
    """

    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-3
    attention_lr: float | None = None
    weight_decay: float = 1e-4
    probe_epochs: int = 10
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.probe_epochs < 0:
            raise ValueError("epochs and batch_size must be at least 1, probe_epochs at least 0")
        if self.lr <= 0 or (self.attention_lr is not None and self.attention_lr <= 0):
            raise ValueError("learning rates must be positive")


@dataclass
class FitResult:
    history: list[dict[str, Any]] = field(default_factory=list)  # per epoch: phase, epoch, loss (+ evaluate())


def _frames(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    if t.dim() == 4:
        t = t[..., 0]  # (N, D, T, 1) -> (N, D, T)
    return t


def _param_groups(head: nn.Module, config: VideoTrainConfig) -> list[dict[str, Any]]:
    cmt = getattr(head, "cmt", None)
    if cmt is None or config.attention_lr is None:
        return [{"params": [p for p in head.parameters() if p.requires_grad]}]
    cmt_ids = {id(p) for p in cmt.parameters()}
    return [{"params": [p for p in head.parameters() if p.requires_grad and id(p) not in cmt_ids]},
            {"params": [p for p in cmt.parameters() if p.requires_grad], "lr": config.attention_lr}]


def fit_video_head(head: nn.Module, features: np.ndarray, mask: np.ndarray, labels: np.ndarray,
                   config: VideoTrainConfig, *, evaluate: Callable[[nn.Module], dict[str, float]] | None = None,
                   progress: ProgressHook = NULL_PROGRESS) -> FitResult:
    """Train ``head`` in place: BCE with logits over non-ignored targets, AdamW, shuffled batches.

    ``evaluate(head)``, if given, runs after each epoch (head in eval mode) and its numbers join
    the history. Deterministic for a seed on one machine and thread count.
    """
    result = FitResult()
    if config.probe_epochs and hasattr(head, "init_from_probe"):
        from mlgraph_cli.core.video.heads import TemporalPoolHead

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            probe = TemporalPoolHead(head.in_channels, head.num_labels, pool="mean")
        probe_config = VideoTrainConfig(**{**config.__dict__, "epochs": config.probe_epochs, "probe_epochs": 0,
                                           "attention_lr": None})
        fitted = fit_video_head(probe, features, mask, labels, probe_config, progress=progress)
        result.history += [{**entry, "phase": "probe"} for entry in fitted.history]
        head.init_from_probe(probe.fc.weight.detach().cpu(), probe.fc.bias.detach().cpu())
    device = torch.device(config.device)
    x = _frames(features).float()
    m = torch.as_tensor(np.asarray(mask), dtype=torch.bool)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.float32)
    n = x.shape[0]
    gen = torch.Generator().manual_seed(config.seed)
    head.to(device)
    opt = torch.optim.AdamW(_param_groups(head, config), lr=config.lr, weight_decay=config.weight_decay)
    progress.start("Training", total=config.epochs, unit="epochs")
    for epoch in range(config.epochs):
        head.train()
        order = torch.randperm(n, generator=gen)
        total, seen = 0.0, 0
        for start in range(0, n, config.batch_size):
            idx = order[start:start + config.batch_size]
            xb, mb, yb = x[idx].to(device), m[idx].to(device), y[idx].to(device)
            logits = head(xb, mb)  # (B, C)
            weight = (yb >= 0).float()  # ignored targets (-1) leave the loss
            loss = F.binary_cross_entropy_with_logits(logits, yb.clamp_min(0), weight=weight, reduction="sum")
            loss = loss / weight.sum().clamp_min(1.0)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            seen += len(idx)
        entry = {"phase": "train", "epoch": epoch + 1, "loss": total / max(seen, 1)}
        if evaluate is not None:
            head.eval()
            with torch.no_grad():
                entry.update(evaluate(head))
        result.history.append(entry)
        progress.advance(1)
    progress.stop()
    head.eval()
    return result


@torch.no_grad()
def predict_videos(head: nn.Module, features: np.ndarray, mask: np.ndarray, *, batch_size: int = 64,
                   device: str = "cpu", logits: bool = False) -> np.ndarray:
    """Per-video probabilities (or ``logits``), (N, C) float32."""
    head.eval().to(device)
    x = _frames(features)
    m = torch.as_tensor(np.asarray(mask), dtype=torch.bool)
    out = []
    for start in range(0, x.shape[0], batch_size):
        z = head(x[start:start + batch_size].float().to(device), m[start:start + batch_size].to(device))
        out.append((z if logits else torch.sigmoid(z)).cpu())
    c = getattr(head, "num_labels", 0)
    return torch.cat(out).numpy().astype(np.float32) if out else np.zeros((0, c), np.float32)


@torch.no_grad()
def score_segments(head: nn.Module, features: np.ndarray, mask: np.ndarray, segment_video: np.ndarray,
                   segment_start: np.ndarray, *, segment_frames: int = SEGMENT_FRAMES, batch_size: int = 64,
                   device: str = "cpu") -> np.ndarray:
    """Scores of segments: the head on each segment's frames alone, (S, C) probabilities.

    segment_video (S,): row of each segment's video in ``features``; segment_start (S,): its first
    frame. A segment covers frames [start, start + segment_frames) that are real frames of the
    video; rows repeating a (video, start) pair are computed once.
    """
    head.eval().to(device)
    x = _frames(features)
    m = torch.as_tensor(np.asarray(mask), dtype=torch.bool)
    pairs = np.stack([np.asarray(segment_video, np.int64), np.asarray(segment_start, np.int64)], axis=1)  # (S, 2)
    unique, inverse = np.unique(pairs, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    t = x.shape[-1]
    frames = torch.arange(t)
    out = []
    for start in range(0, len(unique), batch_size):
        block = torch.as_tensor(unique[start:start + batch_size])  # (B, 2)
        rows, first = block[:, 0], block[:, 1]
        seg = (frames[None, :] >= first[:, None]) & (frames[None, :] < first[:, None] + segment_frames)  # (B, T)
        seg_mask = seg & m[rows]
        z = head(x[rows].float().to(device), seg_mask.to(device))
        out.append(torch.sigmoid(z).cpu())
    c = getattr(head, "num_labels", 0)
    scores = torch.cat(out).numpy().astype(np.float32) if out else np.zeros((0, c), np.float32)
    return scores[inverse] if len(unique) else np.zeros((0, c), np.float32)
