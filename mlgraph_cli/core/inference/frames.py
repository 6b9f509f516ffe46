"""Video inference on frames (training is :class:`mlgraph_cli.core.training.trainer.Trainer` for images
and video alike, the probe start of temporal CMA is core/training/probe.py). ``predict_videos`` gives
per-video probabilities; ``score_segments`` runs the head on each rated segment's frames alone
(the frames outside the segment are masked), as YouTube-8M Segments is scored.

Arrays: features (N, D, T) float (a (N, D, T, 1) array works too), mask (N, T) bool, labels
(N, C) in {1, 0, -1}.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from mlgraph_cli.core.media.yt8m.records import SEGMENT_FRAMES


def _frames(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    return t[..., 0] if t.dim() == 4 else t  # (N, D, T, 1) -> (N, D, T)


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
