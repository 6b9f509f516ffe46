"""Heads fitted in closed form rather than trained by SGD (``head.fitted``): the Trainer's one hook.

A fitted head (the converged linear probe, core/models/linear_probe.py) reads pooled features
that do not change while it learns, so each training and validation example is pooled once, the
head solves its problem on rank 0 (``head.fit``), and the Trainer treats that fit as the run's
one epoch: validation, ``best`` / ``last`` weights, metrics.jsonl and thresholds as for any head.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from mlgraph_cli.core.models.classifier import Classifier, inputs_on
from mlgraph_cli.core.progress import NULL_PROGRESS, ProgressHook
from mlgraph_cli.core.training.batches import eval_loader
from mlgraph_cli.core.training.losses import LossFn


@torch.no_grad()
def pooled(model: Classifier, dataset: Dataset, batch_size: int, workers: int, device: torch.device,
           progress: ProgressHook = NULL_PROGRESS, what: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """The head's input features of every example, (N, F) float32, and targets (N, C) int8."""
    head = model.head
    feats, targets = [], []
    video = head.modality == "video"
    progress.start(f"fit: pooling {what} " + ("clips" if video else "maps"), total=len(dataset),
                   unit="videos" if video else "images")
    was_training = model.training
    model.eval()
    for batch in eval_loader(dataset, batch_size, workers):
        if len(batch["y"]) == 0:
            continue
        x, aux, mask = inputs_on(batch, device)
        main, aux = model.maps(x, aux)
        feats.append(head.features(model.head_input(main, aux), mask).float().cpu().numpy())
        targets.append(batch["y"].numpy())
        progress.advance(len(batch["y"]))
    progress.stop()
    model.train(was_training)
    return np.concatenate(feats), np.concatenate(targets)


def fit_head(model: Classifier, train_set: Dataset, val_set: Dataset | None, *, batch_size: int, workers: int,
             device: torch.device, loss: LossFn,
             progress: ProgressHook = NULL_PROGRESS) -> tuple[float, dict[str, Any]]:
    """Fit ``model.head`` in place on the pooled training examples, choosing its settings on the
    validation ones (None: the head's default). Returns the training loss at the solution and
    the head's report (``head.fit``'s dict; its "summary" goes to ``progress.log``)."""
    x, y = pooled(model, train_set, batch_size, workers, device, progress)
    x_val, y_val = (pooled(model, val_set, batch_size, workers, device, progress, "validation")
                    if val_set is not None else (None, None))
    info = model.head.fit(x, y, x_val, y_val)
    progress.log(f"fit: {info['summary']}")
    with torch.no_grad():
        logits = model.head.classify(torch.from_numpy(x).to(device))  # (N, F) -> (N, C)
        value = float(loss(logits, torch.from_numpy(y).to(device)))
    return value, info
