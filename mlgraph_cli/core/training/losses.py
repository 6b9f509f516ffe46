"""The training losses of ``mlgraph train --loss``: binary cross-entropy and the asymmetric loss.

Both take logits (B, C) and targets (B, C) with 1 = present, 0 = absent and -1 = unknown (VOC
"difficult", Open Images unverified); unknown entries are left out and the loss is the mean over
the known ones, so the two are on the same scale and the learning rate means the same for both.

Asymmetric loss (ASL): Ridnik, Ben-Baruch, Zamir, Noy, Friedman, Protter, Zelnik-Manor.
"Asymmetric Loss For Multi-Label Classification", ICCV 2021, eq. 3-6. With p = sigmoid(z) and
the shifted probability p_m = max(p - m, 0) of a negative (m: the probability margin, ``clip``):

    L+ = (1 - p)^gamma_pos * log(p)                   for a positive target
    L- = p_m^gamma_neg * log(1 - p_m)                 for a negative target
    ASL = -y L+ - (1 - y) L-

gamma_neg > gamma_pos focuses less on the many easy negatives of a multi-label image than on its
few positives; the margin discards negatives whose probability is already below m (and lowers
the weight of the others), which also rejects mislabelled negatives with a very high p. With
gamma_pos = gamma_neg = 0 and m = 0 it is BCE. Paper defaults: gamma_neg 4, gamma_pos 0, m 0.05.

Ours where the paper leaves room: the mean over known entries (the authors' code sums over the
batch; only the scale differs), and the focusing weights keep their gradient, as the paper's
equations and its gradient analysis (section 3.3) have them.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from mlgraph_cli.core.training.config import LOSSES

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _known_mean(loss: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    known = targets >= 0
    return (loss * known).sum() / known.sum().clamp(min=1)


def masked_bce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean BCE-with-logits over known targets; targets (B, C) with -1 = ignore."""
    loss = F.binary_cross_entropy_with_logits(logits.float(), targets.clamp(min=0).float(), reduction="none")
    return _known_mean(loss, targets)


def asymmetric_loss(logits: torch.Tensor, targets: torch.Tensor, *, gamma_neg: float = 4.0,
                    gamma_pos: float = 0.0, clip: float = 0.05) -> torch.Tensor:
    """ASL (module docstring) averaged over known targets; logits (B, C), targets (B, C), -1 = ignore.

    Computed in float32 whatever the autocast dtype (p^4 of a float16 p underflows).
    """
    z = logits.float()
    y = targets.clamp(min=0).float()
    p = torch.sigmoid(z)
    log_pos = F.logsigmoid(z)  # log p, finite for any logit
    if clip > 0:
        p_neg = (p - clip).clamp(min=0)  # p_m
        log_neg = torch.log((1 - p + clip).clamp(max=1))  # log(1 - p_m) >= log(clip): finite
    else:
        p_neg, log_neg = p, F.logsigmoid(-z)  # log(1 - p)
    pos = _focus(torch.sigmoid(-z), gamma_pos) * log_pos  # (1 - p)^gamma_pos log p
    neg = _focus(p_neg, gamma_neg) * log_neg  # p_m^gamma_neg log(1 - p_m)
    return _known_mean(-(y * pos + (1 - y) * neg), targets)


def _focus(base: torch.Tensor, gamma: float) -> torch.Tensor:
    """base ** gamma for base in [0, 1], with a finite gradient where base is 0 (a probability that
    rounds to 0 at a large logit, or a negative under the margin): 0 there, and 1 for gamma = 0."""
    if gamma == 0:
        return torch.ones_like(base)
    return torch.where(base > 0, base.clamp_min(1e-30).pow(gamma), torch.zeros_like(base))


def make_loss(config) -> LossFn:
    """The loss a :class:`~mlgraph_cli.core.training.config.TrainConfig` names (``loss``, ``asl_*``)."""
    if config.loss == "asl":
        gn, gp, m = float(config.asl_gamma_neg), float(config.asl_gamma_pos), float(config.asl_clip)
        return lambda logits, targets: asymmetric_loss(logits, targets, gamma_neg=gn, gamma_pos=gp, clip=m)
    return masked_bce
