"""MS-CMA: cross-modality attention on two (or more) backbone stages, logits averaged.

You et al., AAAI 2020 (docs/method.md): each stage has its own CMA head (core/models/cma.py),
with its own transform and classifiers and the same options.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from mlgraph_cli.core.models.cma import CrossModalityAttention
from mlgraph_cli.core.models.common import Head, ProbeFit, check_option, makes


class MultiScaleCMA(Head):
    """MS-CMA: one CMA head per backbone stage, logits averaged (docs/method.md).

    x: a list/tuple of maps [(B, D1, H1, W1), (B, D2, H2, W2), ...], one per ``in_channels``
    entry (e.g. ResNet res4 + res5, or the last two EfficientNet stages). Every stage has its
    own CMT and classifiers; options are shared.
    """

    name = "ms-cma"
    needs_embeddings = True
    multi_scale = True

    def __init__(self, in_channels: Sequence[int], num_labels: int, embeddings: torch.Tensor | None = None, *,
                 embedding_dim: int | None = None, **options) -> None:
        super().__init__()
        check_option(isinstance(in_channels, (list, tuple)) and len(in_channels) >= 2, self.name,
                     "in_channels", in_channels, "one channel count per stage, at least two stages")
        self.branches = nn.ModuleList(
            CrossModalityAttention(int(d), num_labels, embeddings, embedding_dim=embedding_dim, **options)
            for d in in_channels
        )
        self.num_labels = int(num_labels)
        self.in_channels = [int(d) for d in in_channels]
        branch = dict(self.branches[0].config)
        for key in ("name", "in_channels"):
            branch.pop(key)
        self._remember(**{"in_channels": [int(d) for d in in_channels], **branch})

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        return CrossModalityAttention.option_names()

    @property
    def accepts_probe(self) -> bool:
        return all(branch.accepts_probe for branch in self.branches)

    @torch.no_grad()
    def init_from_probe(self, weight: torch.Tensor, bias: torch.Tensor) -> ProbeFit:
        """Start every stage from one probe on the stages' pooled maps, concatenated in
        ``in_channels`` order: weight (C, D1 + D2 + ...). Stage s gets its block V_s, scaled by the
        number of stages S (w = S V_s, b = b), so that the averaged logits start as the probe's.
        Returns the least exact stage's fit (all share E, so its rank)."""
        sizes = [b.in_channels for b in self.branches]
        w = torch.as_tensor(weight, dtype=torch.float32)
        if w.dim() != 2 or w.shape[1] != sum(sizes):
            raise ValueError(f"probe of shape {tuple(w.shape)} for stages of {sizes} channels")
        fits = [branch.init_from_probe(block * len(sizes), bias)
                for branch, block in zip(self.branches, torch.split(w, sizes, dim=1))]
        return max(fits, key=lambda fit: fit.residual)

    def _split(self, xs: Sequence[torch.Tensor]) -> Sequence[torch.Tensor]:
        if isinstance(xs, torch.Tensor) or len(xs) != len(self.branches):
            got = "one tensor" if isinstance(xs, torch.Tensor) else f"{len(xs)} maps"
            raise ValueError(f"ms-cma expects a list of {len(self.branches)} feature maps, got {got}")
        return xs

    def forward(self, xs: Sequence[torch.Tensor]) -> torch.Tensor:
        logits = [branch(x) for branch, x in zip(self.branches, self._split(xs))]  # S x (B, C)
        return torch.stack(logits).mean(dim=0)  # (S, B, C) -> (B, C)

    def attention_maps(self, xs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Each stage's a_k at its own resolution: [(B, C, H1, W1), (B, C, H2, W2), ...]."""
        return [branch.attention(x) for branch, x in zip(self.branches, self._split(xs))]

    def attention(self, xs: Sequence[torch.Tensor]) -> torch.Tensor:
        """One map per label at the finest stage's resolution, (B, C, H, W), summing to one.

        Each stage's map is resized bilinearly to the largest grid, the stages averaged (as
        their logits are) and renormalised over locations (resizing changes the sums).
        """
        maps = self.attention_maps(xs)
        h, w = max((m.shape[-2:] for m in maps), key=lambda s: s[0] * s[1])
        resized = [m if m.shape[-2:] == (h, w) else F.interpolate(m, size=(h, w), mode="bilinear",
                                                                   align_corners=False) for m in maps]
        a = torch.stack(resized).mean(dim=0)  # (S, B, C, H, W) -> (B, C, H, W)
        total = a.sum(dim=(-2, -1), keepdim=True)  # (B, C, 1, 1)
        return a / total.clamp_min(torch.finfo(a.dtype).tiny)


@makes(MultiScaleCMA)
def ms_cma(*, in_channels: Sequence[int], num_labels: int, embeddings: torch.Tensor | None = None,
           adjacency: torch.Tensor | None = None, **options) -> MultiScaleCMA:
    """MS-CMA head: CMA on two (or more) backbone stages, logits averaged."""
    return MultiScaleCMA(in_channels, num_labels, embeddings, **options)
