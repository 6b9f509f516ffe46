"""Cross-modality attention head (CMA); MS-CMA, one per backbone stage, is core/models/ms_cma.py.

You, Guo, Cui, Zhuang, Wang. "Cross-Modality Attention with Semantic Graph Embedding for
Multi-Label Classification", AAAI 2020 (docs/method.md). Each label k has a frozen embedding
e_k; the backbone map X (B, D, H, W) is projected into the embedding space by the
cross-modality transform Z = phi(X), and the label's attention over locations is the
ReLU-clipped cosine between Z(h, w) and e_k, normalised to sum to one (not a softmax):

    s_k(h, w) = ReLU(cos(Z(h, w), e_k))
    a_k(h, w) = s_k(h, w) / (sum_hw s_k + eps)
    f_k       = sum_hw a_k(h, w) X(h, w)           (a weighted average of backbone features)
    logit_k   = <w_k, f_k> + b_k                   (one weight vector per label)

Ours where the paper is silent (docs/method.md): the number of CMT layers, its hidden width,
an optional GAP + linear branch added to the logits, dropout on the features, and what happens
when every s_k is zero (``collapse``, below).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mlgraph_cli.core.models.common import (Head, ProbeFit, as_feature_map, check_attention_options,
                                            check_channels, check_option, label_buffer, makes, start_from_probe)


class CrossModalityTransform(nn.Module):
    """phi: ``layers`` 1x1 convolutions D -> d, with BN + ReLU between them (B, D, H, W) -> (B, d, H, W).

    One layer is a single linear projection per location. No BN/ReLU after the last layer:
    the cosine that follows only sees directions, and a ReLU there would forbid negative
    coordinates the label embeddings may have.
    """

    def __init__(self, in_channels: int, out_channels: int, *, layers: int = 1, hidden: int = 512) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        width = in_channels
        for _ in range(layers - 1):
            # bias is redundant before BN
            blocks += [nn.Conv2d(width, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True)]
            width = hidden
        blocks.append(nn.Conv2d(width, out_channels, 1))
        self.net = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class CrossModalityAttention(Head):
    """CMA head over one feature map. x (B, D, H, W) or (B, D, T) -> logits (B, C).

    embeddings: (C, d) label embeddings, frozen (a buffer, saved with the state dict).
    cmt_layers / hidden: depth and hidden width of the cross-modality transform.
    gap_branch: add a global-average-pool + linear branch to the logits (not in the paper). On by
      default, with dropout and collapse below (alone a tie with the probe start: +0.21 +- 0.12
      paired over 9 runs for cma, +0.29 +- 0.18 for ms-cma).
    dropout: on the backbone features before the classifiers (both branches). Default 0.3. With
      the GAP branch and the uniform collapse it is the set the rule of docs/benchmarks.md keeps:
      each alone ties the paper's choice, the three together beat the paper's head (cma +0.39
      +- 0.19, ms-cma +0.54 +- 0.15 validation mAP, paired over 9 runs).
    eps: the eps of a_k = s_k / (sum s_k + eps).
    collapse: what a_k is when every s_k(h, w) of an image is 0 (no location looks like the
      label). ``"zero"`` is the formula as written: a_k = 0, so f_k = 0 and logit_k = b_k.
      ``"uniform"`` (default, see dropout) uses a_k = (s_k + eps / HW) / (sum s_k + eps): exactly uniform
      attention (f_k = the GAP vector) when the sum is 0, a smooth blend while it is tiny,
      and within eps of the paper's a_k otherwise. Either way no gradient reaches phi or the
      label's cosine through such an image (the ReLU is flat there); "uniform" at least keeps
      w_k learning from an informative f_k instead of a zero vector.
    """

    name = "cma"
    needs_embeddings = True
    def __init__(self, in_channels: int, num_labels: int, embeddings: torch.Tensor | None = None, *,
                 embedding_dim: int | None = None, cmt_layers: int = 1, hidden: int = 512,
                 gap_branch: bool = True, dropout: float = 0.3, eps: float = 1e-6,
                 collapse: str = "uniform") -> None:
        super().__init__()
        check_option(isinstance(cmt_layers, int) and cmt_layers >= 1, self.name, "cmt_layers", cmt_layers,
                     "1 = a single 1x1 projection, 2 = projection, BN, ReLU, projection")
        check_attention_options(self.name, hidden=hidden, dropout=dropout, eps=eps, collapse=collapse)
        e = label_buffer(embeddings, num_labels, embedding_dim, self.name)
        self.register_buffer("embeddings", e)  # (C, d), frozen
        self.in_channels, self.num_labels = int(in_channels), int(num_labels)
        self.eps, self.collapse = float(eps), collapse
        self.cmt = CrossModalityTransform(in_channels, e.shape[1], layers=cmt_layers, hidden=hidden)
        # per-label classifiers w_k, b_k; initialised like nn.Linear(D, C)
        bound = in_channels ** -0.5
        self.weight = nn.Parameter(torch.empty(num_labels, in_channels).uniform_(-bound, bound))  # (C, D)
        self.bias = nn.Parameter(torch.empty(num_labels).uniform_(-bound, bound))  # (C,)
        self.gap = nn.Linear(in_channels, num_labels) if gap_branch else None
        self.dropout = nn.Dropout(float(dropout))
        self._remember(in_channels=self.in_channels, num_labels=self.num_labels, embedding_dim=int(e.shape[1]),
                       cmt_layers=cmt_layers, hidden=hidden, gap_branch=bool(gap_branch),
                       dropout=float(dropout), eps=self.eps, collapse=collapse)

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        """(B, D, H, W) or (B, D, T) features in the parameters' dtype (cached maps are float16)."""
        x = as_feature_map(x)
        check_channels(x, self.in_channels, self.name)
        return x.to(self.weight.dtype)

    def _linear_transform(self) -> nn.Conv2d | None:
        """phi when it is one 1x1 convolution (``cmt_layers = 1``), else None."""
        return self.cmt.net[0] if len(self.cmt.net) == 1 else None

    @property
    def accepts_probe(self) -> bool:
        """Whether :meth:`init_from_probe` can start this head (its transform is linear)."""
        return self._linear_transform() is not None

    def init_from_probe(self, weight: torch.Tensor, bias: torch.Tensor) -> ProbeFit:
        """Start from a linear probe on the average-pooled map (core/training/probe.py): logit_k = <v_k, x> + b_k.

        phi becomes E^+ V, so each location's cosine with label k reads the probe's evidence for k
        there (a class activation map); w_k = v_k, b_k = b_k; the GAP branch starts at zero. When
        rank(E) < C, phi is the least-squares fit of E phi = V, and the ProbeFit returned says so
        (:func:`~mlgraph_cli.core.models.common.start_from_probe`). Needs ``cmt_layers = 1``.
        """
        return start_from_probe(self, self._linear_transform(), self.label_embeddings(), weight, bias, self.gap)

    def label_embeddings(self) -> torch.Tensor:
        """The e_k the attention uses, (C, d) float32."""
        return self.embeddings.float()

    def similarity(self, x: torch.Tensor) -> torch.Tensor:
        """s_k(h, w) = ReLU(cos(phi(X)(h, w), e_k)), shape (B, C, H*W), float32."""
        z = self.cmt(x).flatten(2)  # (B, d, H, W) -> (B, d, N)
        # float32 even under mixed precision: eps / N in a_k would underflow in float16
        with torch.autocast(device_type=z.device.type, enabled=False):
            z = F.normalize(z.float(), dim=1)  # unit vector per location
            e = F.normalize(self.label_embeddings(), dim=1)  # (C, d) unit label embeddings
            return F.relu(torch.einsum("cd,bdn->bcn", e, z))  # (B, C, N)

    def _attend(self, x: torch.Tensor) -> torch.Tensor:
        """a_k over the N = H*W locations, (B, C, N) float32 (float32 so eps / N does not underflow)."""
        s = self.similarity(x)  # (B, C, N)
        total = s.sum(dim=-1, keepdim=True)  # (B, C, 1)
        if self.collapse == "uniform":
            return (s + self.eps / s.shape[-1]) / (total + self.eps)
        return s / (total + self.eps)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """The normalised attention maps a_k, (B, C, H, W); each sums to one over (H, W)
        ("zero" collapse: to 0 where every s_k is 0)."""
        x = self._prepare(x)
        b, _, h, w = x.shape
        return self._attend(x).reshape(b, self.num_labels, h, w)  # (B, C, N) -> (B, C, H, W)

    def category_features(self, x: torch.Tensor) -> torch.Tensor:
        """f_k = sum_hw a_k(h, w) X(h, w), (B, C, D). For inspection: forward avoids building it."""
        x = self._prepare(x)
        a = self._attend(x)  # (B, C, N)
        return torch.einsum("bcn,bdn->bcd", a, x.flatten(2).float())  # (B, C, D)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._prepare(x)
        a = self._attend(x).to(self.weight.dtype)  # (B, C, N)
        feats = self.dropout(x.flatten(2))  # (B, D, H, W) -> (B, D, N)
        # <w_k, f_k> = sum_n a_k(n) <w_k, X(n)> by linearity: a (B, C, N) map instead of a
        # (B, C, D) tensor of category features, D / N times less memory at D = 2048, N = 196.
        per_location = torch.einsum("cd,bdn->bcn", self.weight, feats)  # (B, C, N)
        logits = (a * per_location).sum(dim=-1) + self.bias  # (B, C)
        if self.gap is not None:
            logits = logits + self.gap(feats.mean(dim=-1))  # (B, D) -> (B, C)
        return logits


@makes(CrossModalityAttention)
def cma(*, in_channels: int, num_labels: int, embeddings: torch.Tensor | None = None,
        adjacency: torch.Tensor | None = None, **options) -> CrossModalityAttention:
    """CMA head (You et al., AAAI 2020); ``adjacency`` is not used (the graph is in the embeddings)."""
    check_option(isinstance(in_channels, int), "cma", "in_channels", in_channels, "one channel count")
    return CrossModalityAttention(in_channels, num_labels, embeddings, **options)
