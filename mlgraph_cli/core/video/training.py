"""Video on the one training path: the probe start of temporal CMA, and inference on frames.

Training itself is :class:`mlgraph_cli.core.training.Trainer` for images and video alike;
:func:`probe_start` runs it on clip means before a temporal CMA run. ``predict_videos`` gives
per-video probabilities; ``score_segments`` runs the head on each rated segment's frames alone
(the frames outside the segment are masked), as YouTube-8M Segments is scored.

Arrays: features (N, D, T) float (a (N, D, T, 1) array works too), mask (N, T) bool, labels
(N, C) in {1, 0, -1}.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from mlgraph_cli.core.classifier import Classifier
from mlgraph_cli.core.progress import NULL_PROGRESS, ProgressHook
from mlgraph_cli.core.train_config import TrainConfig
from mlgraph_cli.core.video.yt8m import SEGMENT_FRAMES


def _frames(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    return t[..., 0] if t.dim() == 4 else t  # (N, D, T, 1) -> (N, D, T)


def probe_start(model: Classifier, train_set: Dataset, config: TrainConfig, device: torch.device,
                progress: ProgressHook = NULL_PROGRESS) -> dict[str, Any] | None:
    """Start a temporal CMA head from a mean-pool linear probe (docs/video.md).

    Without it the ReLU-cosine attention of a random start often never finds a label's frames;
    ``head.init_from_probe`` sets phi = E^+ V and the classifiers to the probe's. Mean pooling is
    fixed, so each clip is pooled once (its mean real frame, (N, D) in memory instead of the
    (N, D, T) frames) and a ``video-gap`` head is trained on the means by this same :class:`~mlgraph_cli.core.training.Trainer`
    for ``config.probe_epochs`` epochs (its optimiser and schedule). Deterministic for a seed, so
    every rank of a torchrun launch starts from the same head. Returns ``{"epochs", "loss",
    "videos"}``, or None for a head without ``init_from_probe`` or 0 probe epochs.
    """
    from mlgraph_cli.core.batches import TensorSet, eval_loader
    from mlgraph_cli.core.models import build_head
    from mlgraph_cli.core.models.temporal import as_frames, masked_mean
    from mlgraph_cli.core.training import Trainer

    head = model.head
    epochs = int(config.probe_epochs or 0)
    if not hasattr(head, "init_from_probe") or epochs < 1:
        return None
    pooled, targets = [], []
    progress.start("probe: pooling clips", total=len(train_set), unit="videos")
    for batch in eval_loader(train_set, config.batch_size, config.workers):
        frames, mask = as_frames(batch["x"], batch["mask"])  # (B, D, T), (B, T)
        pooled.append(masked_mean(frames.float(), mask))  # (B, D)
        targets.append(batch["y"])
        progress.advance(len(batch["y"]))
    progress.stop()
    means = TensorSet(torch.cat(pooled)[:, :, None], torch.cat(targets))  # each clip as one frame, its mean
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        probe = build_head("video-gap", in_channels=head.in_channels, num_labels=head.num_labels)
    probe_config = dataclasses.replace(config, epochs=epochs, warmup_epochs=0.0, patience=0)
    fit = Trainer(Classifier(probe), means, None, config=probe_config, label_names=[], run_dir=None, device=device,
                  progress=progress, label="probe").fit()
    head.init_from_probe(probe.fc.weight.detach().cpu(), probe.fc.bias.detach().cpu())
    return {"epochs": epochs, "loss": fit.last["train_loss"], "videos": len(means)}


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
