"""Optimiser and learning-rate schedule of a training run (core/training/trainer.py)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from mlgraph_cli.core.training.config import TrainConfig



def param_groups(model: nn.Module, config: TrainConfig) -> list[dict[str, Any]]:
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


def extend_schedule(scheduler, steps_done: int) -> None:
    """Place a schedule made for a run's new, larger epoch count at ``steps_done`` optimiser steps.

    ``--resume RUN --epochs N`` over a run started with fewer epochs: the schedule is fitted again to
    N epochs and the run goes on from where an N-epoch run would be after ``steps_done`` steps
    (timm's choice for a resumed run with more epochs). A cosine that had reached its floor therefore
    rises to the value an N-epoch cosine has at that point and decays again to the floor at epoch N
    (docs/train.md, "Resume").
    """
    state = scheduler.state_dict()
    # one step short of steps_done, and past torch's "scheduler stepped before the optimiser" check,
    # which is meant for the first step of a new run
    state.update(last_epoch=steps_done - 1, _step_count=steps_done + 1)
    scheduler.load_state_dict(state)
    scheduler.step()  # now at steps_done: each group's lr is the new schedule's there
