"""core/training/losses.py: the asymmetric loss against a hand computation, its BCE limit, the ignore mask."""

from __future__ import annotations

import math

import pytest
import torch

from mlgraph_cli.core.training.losses import asymmetric_loss, make_loss, masked_bce
from mlgraph_cli.core.training.config import TrainConfig


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def test_asl_matches_the_papers_equation_by_hand():
    logits = torch.tensor([[2.0, -1.0, 0.5], [-3.0, 0.0, 1.5]])
    targets = torch.tensor([[1, 0, 0], [1, 0, -1]], dtype=torch.int8)
    gn, gp, m = 4.0, 1.0, 0.05
    terms = []
    for z, y in ((2.0, 1), (-1.0, 0), (0.5, 0), (-3.0, 1), (0.0, 0)):  # the -1 entry is left out
        p = _sigmoid(z)
        if y == 1:
            terms.append(-((1 - p) ** gp) * math.log(p))
        else:
            pm = max(p - m, 0.0)
            terms.append(-(pm ** gn) * math.log(1 - pm))
    expected = sum(terms) / len(terms)
    got = asymmetric_loss(logits, targets, gamma_neg=gn, gamma_pos=gp, clip=m)
    assert float(got) == pytest.approx(expected, rel=1e-5)


def test_a_negative_under_the_margin_adds_nothing():
    logits = torch.tensor([[math.log(0.04 / 0.96)]])  # p = 0.04 < m = 0.05
    assert float(asymmetric_loss(logits, torch.tensor([[0]]), clip=0.05)) == pytest.approx(0.0, abs=1e-7)


def test_asl_without_focusing_or_margin_is_bce():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 5, generator=g) * 3
    targets = (torch.rand(6, 5, generator=g) < 0.4).to(torch.int8)
    targets[0, 1] = targets[3, 4] = -1
    asl = asymmetric_loss(logits, targets, gamma_neg=0.0, gamma_pos=0.0, clip=0.0)
    torch.testing.assert_close(asl, masked_bce(logits, targets))
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits[targets >= 0], targets[targets >= 0].float())
    torch.testing.assert_close(asl, bce)


def test_ignored_targets_carry_no_gradient_and_extremes_stay_finite():
    logits = torch.tensor([[40.0, -40.0, 0.3, 95.0]], requires_grad=True)
    targets = torch.tensor([[1, 0, -1, 0]], dtype=torch.int8)
    loss = asymmetric_loss(logits, targets, gamma_neg=4.0, gamma_pos=0.5, clip=0.05)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    assert logits.grad[0, 2] == 0


def test_make_loss_follows_the_config():
    logits = torch.tensor([[1.0, -2.0]])
    targets = torch.tensor([[1, 0]], dtype=torch.int8)
    assert make_loss(TrainConfig()) is masked_bce
    fn = make_loss(TrainConfig(loss="asl", asl_gamma_neg=2.0, asl_gamma_pos=1.0, asl_clip=0.1))
    torch.testing.assert_close(fn(logits, targets),
                               asymmetric_loss(logits, targets, gamma_neg=2.0, gamma_pos=1.0, clip=0.1))


@pytest.mark.parametrize("values, message", [
    ({"loss": "focal"}, "loss must be one of bce, asl, not 'focal'"),
    ({"asl_clip": 1.0}, "asl_clip must be in [0, 1), not 1.0"),
    ({"asl_gamma_neg": -1.0}, "asl_gamma_neg and asl_gamma_pos must be >= 0, not -1.0 and 0.0"),
])
def test_bad_loss_settings_are_refused(values, message):
    with pytest.raises(ValueError, match=r"^" + message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        TrainConfig(**values)
