"""The model a run trains and loads: an optional backbone feeding a head, its loss and its scores."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from mlgraph_cli.core.training import losses
from mlgraph_cli.core.progress import NULL_PROGRESS, ProgressHook



class Classifier(nn.Module):
    """``backbone`` (an nn.Module returning ``{"features": ..., "features_aux": ...}``, or None for
    cached features) and ``head``. forward(x, aux) -> logits (B, C).

    Multi-scale heads get ``[aux, main]``: the earlier stage first, as ms-cma's ``in_channels``.
    Temporal heads (``head.modality == "video"``) get the mask of real frames too.
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
        return [aux, x] if self.head.multi_scale else x

    def forward(self, x: torch.Tensor, aux: torch.Tensor | None = None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        """mask: (B, T) bool of real frames for a temporal head (None: all real), unused for images."""
        main, aux = self.maps(x, aux)
        if self.head.modality == "video":
            return self.head(main, mask)
        return self.head(self.head_input(main, aux))


def inputs_on(batch: dict[str, Any], device: torch.device) -> tuple[torch.Tensor, ...]:
    """(x, aux, mask) of a batch on ``device``; aux and mask may be None."""
    x = batch["x"].to(device, non_blocking=True)
    aux = batch["aux"].to(device, non_blocking=True) if batch["aux"] is not None else None
    mask = batch.get("mask")
    return x, aux, (mask.to(device, non_blocking=True) if mask is not None else None)


@torch.no_grad()
def score(model: nn.Module, loader: DataLoader, device: torch.device, progress: ProgressHook = NULL_PROGRESS,
          amp: bool = False, loss: losses.LossFn | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """Probabilities (N, C) float32, targets (N, C) int8 and the mean masked ``loss`` (BCE unless
    given: a run's validation loss is its training loss) over a loader."""
    loss = loss or losses.masked_bce
    was_training = model.training
    model.eval()
    scores, targets, loss_sum, known = [], [], 0.0, 0
    for batch in loader:
        if len(batch["y"]) == 0:
            continue
        x, aux, mask = inputs_on(batch, device)
        y = batch["y"].to(device)
        with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=amp):
            logits = model(x, aux, mask).float()
        n_known = int((y >= 0).sum())
        loss_sum += float(loss(logits, y)) * n_known
        known += n_known
        scores.append(torch.sigmoid(logits).cpu().numpy())
        targets.append(batch["y"].numpy())
        progress.advance(len(y))
    model.train(was_training)
    if not scores:
        c = int(getattr(getattr(model, "head", None), "num_labels", 0))
        return np.zeros((0, c), np.float32), np.zeros((0, c), np.int8), float("nan")
    return np.concatenate(scores), np.concatenate(targets), loss_sum / max(known, 1)
