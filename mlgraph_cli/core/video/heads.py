"""Temporal heads, kept importable from their old home: they live in core/models/temporal.py and
are registered with the image heads in :data:`mlgraph_cli.core.models.HEADS`."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from mlgraph_cli.core.models import HEADS, build_head, resolve_head
from mlgraph_cli.core.models.temporal import (MaskedBatchNorm, TemporalCMA, TemporalPoolHead, TemporalTransform,
                                              as_frames, masked_max, masked_mean)

VIDEO_HEADS = {name: factory for name, factory in HEADS.items() if factory.head_class.modality == "video"}

__all__ = ["MaskedBatchNorm", "TemporalCMA", "TemporalPoolHead", "TemporalTransform", "VIDEO_HEADS", "as_frames",
           "build_video_head", "masked_max", "masked_mean"]


def build_video_head(name: str, *, in_channels: int, num_labels: int, embeddings: torch.Tensor | None = None,
                     adjacency: torch.Tensor | None = None, **options: Any) -> nn.Module:
    """``build_head`` for a temporal head; ``cma``, ``gap``, ``gmp`` mean ``video-cma``, ... ."""
    return build_head(resolve_head(name, "video") if name not in VIDEO_HEADS else name, in_channels=in_channels,
                      num_labels=num_labels, embeddings=embeddings, **options)
