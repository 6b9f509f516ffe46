"""The probe start of a CMA head (image or video): a linear probe on pooled features first.

A new CMA run may begin by training a pooling + linear probe (mean over the map's locations, or
over a clip's real frames) with the same :class:`~mlgraph_cli.core.training.trainer.Trainer`, for
``config.probe_epochs`` epochs, and then start the head from it (``head.init_from_probe``):
phi = E^+ V, so that from the first step a location's (or frame's) cosine with label k measures
the probe's evidence for k there, and the classifiers w_k = v_k. That is exact only when the C
label embeddings have rank C; with more labels than their width (YouTube-8M: 3,862 labels in
300 dimensions) or linearly dependent embeddings, phi is the least-squares fit of E phi = V and
the start says so through ``progress.log``, with the relative residual, which config.json's
``probe`` records beside the rank (core/models/common.py, ``probe_transform``). Without the
probe start the ReLU-cosine attention of a random start may never find a label's frames (video, docs/video.md); for images
it is an option measured in benchmarks/fair.py (docs/benchmarks.md).

Pooling is fixed, so each example is pooled once ((N, D) in memory) and the probe trains on the
pooled vectors. Deterministic for a seed, so every rank of a torchrun launch starts from the
same head. Heads end to end on images (a backbone in the model), and heads whose transform is
not one linear map (``cmt_layers`` > 1), get no probe.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch.utils.data import Dataset

from mlgraph_cli.core.models import build_head
from mlgraph_cli.core.models.classifier import Classifier
from mlgraph_cli.core.models.common import as_feature_map
from mlgraph_cli.core.models.temporal import as_frames, masked_mean
from mlgraph_cli.core.progress import NULL_PROGRESS, ProgressHook
from mlgraph_cli.core.training.batches import TensorSet, eval_loader
from mlgraph_cli.core.training.config import TrainConfig
from mlgraph_cli.core.training.trainer import Trainer


def _pooled(x, mask: torch.Tensor | None, video: bool) -> torch.Tensor:
    """(B, D) means: over a clip's real frames (video), or over every location of a map; the
    maps of a multi-scale head (a list) are pooled each and concatenated, in the head's order."""
    if isinstance(x, (list, tuple)):
        return torch.cat([_pooled(m, mask, video) for m in x], dim=1)
    if video:
        frames, mask = as_frames(x, mask)  # (B, D, T), (B, T)
        return masked_mean(frames.float(), mask)
    return as_feature_map(x).float().mean(dim=(-2, -1))  # (B, D, H, W) -> (B, D)


def probe_start(model: Classifier, train_set: Dataset, config: TrainConfig, device: torch.device,
                progress: ProgressHook = NULL_PROGRESS) -> dict[str, Any] | None:
    """Train a pooling + linear probe and start ``model.head`` from it.

    Returns ``{"epochs", "loss", "images" or "videos"}`` (what config.json records), or None for
    a head without a linear transform to start (no ``init_from_probe``, or ``cmt_layers`` > 1), a
    model with a backbone, or 0 probe epochs.
    """
    head = model.head
    epochs = int(config.probe_epochs or 0)
    if (not getattr(head, "accepts_probe", False) or epochs < 1
            or getattr(model, "backbone", None) is not None):
        return None
    video = head.modality == "video"
    pooled, targets = [], []
    progress.start("probe: pooling " + ("clips" if video else "maps"), total=len(train_set),
                   unit="videos" if video else "images")
    for batch in eval_loader(train_set, config.batch_size, config.workers):
        pooled.append(_pooled(model.head_input(batch["x"], batch.get("aux")), batch.get("mask"), video))
        targets.append(batch["y"])
        progress.advance(len(batch["y"]))
    progress.stop()
    means = torch.cat(pooled)[:, :, None]  # each example as one location (or frame), its mean
    means = TensorSet(means if video else means[..., None], torch.cat(targets))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        width = sum(head.in_channels) if isinstance(head.in_channels, (list, tuple)) else head.in_channels
        probe = build_head("video-gap" if video else "gap", in_channels=width, num_labels=head.num_labels)
    probe_config = dataclasses.replace(config, epochs=epochs, warmup_epochs=0.0, patience=0)
    fit = Trainer(Classifier(probe), means, None, config=probe_config, label_names=[], run_dir=None, device=device,
                  progress=progress, label="probe").fit()
    start = head.init_from_probe(probe.fc.weight.detach().cpu(), probe.fc.bias.detach().cpu())
    if not start.exact:
        progress.log(start.note())
    key = "videos" if video else "images"
    return {"epochs": epochs, "loss": fit.last["train_loss"], key: len(means), "embedding_rank": start.rank,
            "residual": round(start.residual, 6)}
