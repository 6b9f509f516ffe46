"""Temporal heads over frame features with a mask: temporal CMA and the pooling baselines.

x: (B, D, T) frame features (a (B, D, T, 1) map is accepted too); mask: (B, T) bool, True for
real frames (None: all real). Padded frames never reach an output: the attention is zero there,
pooled statistics skip them, and normalisation statistics are taken over real frames only.

Temporal CMA is CMA (You et al., AAAI 2020; docs/method.md; core/models/cma.py) with the T frames
in the place of the H x W locations:

    z_t       = phi(x_t)                          cross-modality transform, per frame (a 1x1 conv)
    s_k(t)    = ReLU(cos(z_t, e_k))               e_k: the frozen label embedding
    a_k(t)    = s_k(t) / (sum_t' s_k(t') + eps)   over real frames only
    f_k       = sum_t a_k(t) x_t                  category-wise feature
    logit_k   = <w_k, f_k> + b_k                  per-label classifier

Ours where the paper is silent (measured in benchmarks/video_quality.py, docs/video.md):
``center`` feeds phi each frame minus its clip's mean frame (so the attention looks at what is
particular to a frame, not at what the whole clip shares), and ``mean_branch`` adds a masked
mean-pool + linear term.

Baselines (docs/method.md): masked mean pooling + linear (``video-gap``) and masked max pooling +
linear (``video-gmp``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mlgraph_cli.core.models.common import (Head, ProbeFit, check_attention_options, check_channels,
                                            check_option, label_buffer, makes, start_from_probe)


def as_frames(x: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, D, T) or (B, D, T, 1) features and an optional (B, T) mask -> (B, D, T), (B, T) bool."""
    if x.dim() == 4:
        if x.shape[-1] != 1:
            raise ValueError(f"video features must be (B, D, T) or (B, D, T, 1), got {tuple(x.shape)}")
        x = x[..., 0]  # (B, D, T, 1) -> (B, D, T)
    if x.dim() != 3:
        raise ValueError(f"video features must be (B, D, T) or (B, D, T, 1), got {tuple(x.shape)}")
    if mask is None:
        mask = torch.ones(x.shape[0], x.shape[2], dtype=torch.bool, device=x.device)
    mask = mask.to(device=x.device, dtype=torch.bool)
    if tuple(mask.shape) != (x.shape[0], x.shape[2]):
        raise ValueError(f"mask {tuple(mask.shape)} does not match features {tuple(x.shape)}")
    return x, mask


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over real frames: (B, D, T), (B, T) -> (B, D). A clip with no real frame gives zeros."""
    m = mask.to(x.dtype).unsqueeze(1)  # (B, 1, T)
    return (x * m).sum(-1) / m.sum(-1).clamp_min(1.0)


def masked_max(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Max over real frames: (B, D, T), (B, T) -> (B, D). A clip with no real frame gives zeros."""
    filled = x.masked_fill(~mask.unsqueeze(1), float("-inf"))  # (B, D, T)
    out = filled.amax(-1)
    return torch.where(mask.any(-1, keepdim=True), out, torch.zeros_like(out))


class MaskedBatchNorm(nn.Module):
    """Batch norm over the real frames of a batch, (B, F, T) + mask -> (B, F, T).

    nn.BatchNorm1d would average padded zeros into its statistics, so a clip's output would depend
    on how much padding its batch holds; here mean and variance come from real frames only.
    """

    def __init__(self, features: int, momentum: float = 0.1, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(features))
        self.bias = nn.Parameter(torch.zeros(features))
        self.register_buffer("running_mean", torch.zeros(features))
        self.register_buffer("running_var", torch.ones(features))
        self.momentum, self.eps = momentum, eps

    def forward(self, z: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.training:
            m = mask.unsqueeze(1).to(z.dtype)  # (B, 1, T)
            n = m.sum().clamp_min(1.0)
            mean = (z * m).sum(dim=(0, 2)) / n  # (F,)
            var = (((z - mean[None, :, None]) ** 2) * m).sum(dim=(0, 2)) / n  # (F,)
            with torch.no_grad():
                self.running_mean.lerp_(mean.detach(), self.momentum)
                self.running_var.lerp_(var.detach() * n / (n - 1).clamp_min(1.0), self.momentum)
        else:
            mean, var = self.running_mean, self.running_var
        z = (z - mean[None, :, None]) * torch.rsqrt(var[None, :, None] + self.eps)
        return z * self.weight[None, :, None] + self.bias[None, :, None]


class TemporalTransform(nn.Module):
    """phi, applied to every frame: ``layers`` linear maps D -> d (1x1 convolutions over time), with
    masked batch norm + ReLU between them. (B, D, T) + mask -> (B, d, T)."""

    def __init__(self, in_channels: int, out_channels: int, *, layers: int = 1, hidden: int = 512) -> None:
        super().__init__()
        self.linears = nn.ModuleList()
        self.norms = nn.ModuleList()
        width = in_channels
        for _ in range(layers - 1):
            self.linears.append(nn.Conv1d(width, hidden, 1, bias=False))  # bias is redundant before BN
            self.norms.append(MaskedBatchNorm(hidden))
            width = hidden
        self.linears.append(nn.Conv1d(width, out_channels, 1))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        for linear, norm in zip(self.linears[:-1], self.norms):
            x = F.relu(norm(linear(x), mask))
        return self.linears[-1](x)


class TemporalCMA(Head):
    """Temporal cross-modality attention. x (B, D, T) + mask (B, T) -> logits (B, C).

    embeddings: (C, d) label embeddings, frozen (a buffer, saved with the state dict).
    cmt_layers / hidden: depth and hidden width of phi. center: phi sees x_t minus the clip's mean
    frame. mean_branch: add masked mean-pool + linear to the logits (default
    on, like the image CMA's GAP branch: chosen on the validation clips of
    benchmarks/video_files_quality.py, docs/video.md).
    dropout: on the frame features before the classifiers. eps, collapse: as in the image CMA
    (core/models/cma.py): "uniform" attends evenly over real frames when every s_k(t) is 0.
    """

    name = "video-cma"
    modality = "video"
    needs_embeddings = True

    def __init__(self, in_channels: int, num_labels: int, embeddings: torch.Tensor | None = None, *,
                 embedding_dim: int | None = None, cmt_layers: int = 1, hidden: int = 512, center: bool = True,
                 mean_branch: bool = True, dropout: float = 0.0, eps: float = 1e-6, collapse: str = "uniform") -> None:
        super().__init__()
        check_option(isinstance(cmt_layers, int) and cmt_layers >= 1, self.name, "cmt_layers", cmt_layers,
                     "1 = one linear map per frame, 2 = linear, BN, ReLU, linear")
        check_attention_options(self.name, hidden=hidden, dropout=dropout, eps=eps, collapse=collapse)
        e = label_buffer(embeddings, num_labels, embedding_dim, self.name)
        self.register_buffer("embeddings", e)  # (C, d), frozen
        self.in_channels, self.num_labels = int(in_channels), int(num_labels)
        self.center, self.eps, self.collapse = bool(center), float(eps), collapse
        self.cmt = TemporalTransform(in_channels, e.shape[1], layers=cmt_layers, hidden=hidden)
        bound = in_channels ** -0.5  # nn.Linear's default init, one row per label
        self.weight = nn.Parameter(torch.empty(num_labels, in_channels).uniform_(-bound, bound))  # (C, D)
        self.bias = nn.Parameter(torch.empty(num_labels).uniform_(-bound, bound))  # (C,)
        self.mean_fc = nn.Linear(in_channels, num_labels) if mean_branch else None
        self.dropout = nn.Dropout(float(dropout))
        self._remember(in_channels=self.in_channels, num_labels=self.num_labels, embedding_dim=int(e.shape[1]),
                       cmt_layers=cmt_layers, hidden=hidden, center=self.center, mean_branch=bool(mean_branch),
                       dropout=float(dropout), eps=self.eps, collapse=collapse)

    def _linear_transform(self) -> nn.Conv1d | None:
        """phi when it is one linear map per frame (``cmt_layers = 1``), else None."""
        return self.cmt.linears[0] if len(self.cmt.linears) == 1 else None

    @property
    def accepts_probe(self) -> bool:
        """Whether :meth:`init_from_probe` can start this head (its transform is linear)."""
        return self._linear_transform() is not None

    def init_from_probe(self, weight: torch.Tensor, bias: torch.Tensor) -> ProbeFit:
        """Start phi and the classifiers from a linear probe over the clip (e.g. a trained ``video-gap``).

        weight (C, D), bias (C,): the probe's logit_k = <v_k, x> + b_k. phi becomes E^+ V (the
        least-squares fit when rank(E) < C; the ProbeFit returned says how exact), so that
        from the first step the cosine of frame t with label k measures the probe's evidence for k
        in that frame; the classifiers start as the probe's and the mean-pool branch at zero, so
        with uniform attention the head would be the probe
        (:func:`~mlgraph_cli.core.models.common.start_from_probe`). Needs ``cmt_layers = 1``.
        """
        return start_from_probe(self, self._linear_transform(), self.embeddings, weight, bias, self.mean_fc)

    def similarity(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """s_k(t) = ReLU(cos(z_t, e_k)), zero at padded frames: (B, C, T) float32."""
        x, mask = as_frames(x, mask)
        check_channels(x, self.in_channels, self.name)
        x = x.float()
        if self.center:
            x = x - masked_mean(x, mask).unsqueeze(-1)  # (B, D, T) minus the clip's mean frame
        z = self.cmt(x, mask)  # (B, d, T)
        z = F.normalize(z, dim=1)  # unit vector per frame
        e = F.normalize(self.embeddings, dim=1)  # (C, d)
        s = F.relu(torch.einsum("cd,bdt->bct", e, z))  # (B, C, T)
        return s * mask.unsqueeze(1).to(s.dtype)

    def attention(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """a_k(t), (B, C, T) float32: sums to one over the real frames, zero at padded ones
        ("zero" collapse: all zero where every s_k(t) is 0)."""
        x, mask = as_frames(x, mask)
        s = self.similarity(x, mask)  # (B, C, T)
        total = s.sum(-1, keepdim=True)  # (B, C, 1)
        if self.collapse == "uniform":
            m = mask.unsqueeze(1).to(s.dtype)  # (B, 1, T)
            return (s + self.eps * m / m.sum(-1, keepdim=True).clamp_min(1.0)) / (total + self.eps)
        return s / (total + self.eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x, mask = as_frames(x, mask)
        a = self.attention(x, mask)  # (B, C, T)
        feats = self.dropout(x.float())  # (B, D, T)
        # <w_k, f_k> = sum_t a_k(t) <w_k, x_t>: a (B, C, T) map instead of (B, C, D) category features
        per_frame = torch.einsum("cd,bdt->bct", self.weight, feats)  # (B, C, T)
        logits = (a * per_frame).sum(-1) + self.bias  # (B, C)
        if self.mean_fc is not None:
            logits = logits + self.mean_fc(masked_mean(feats, mask))
        return logits


class TemporalPoolHead(Head):
    """Pooling over frames + linear, (B, D, T) -> (B, C): masked mean of the frames (``video-gap``),
    masked max of the frames (``video-gmp``), or the linear score of every frame and its masked max
    over time (``video-frame-max``: logit_k = max_t <w_k, x_t> + b_k, a frame-level classifier)."""

    modality = "video"
    POOLS = {"mean": "video-gap", "max": "video-gmp", "frame-max": "video-frame-max"}
    # One linear map on 1,152-d clip statistics overfits a few hundred videos at the video weight
    # decay; it trains with a decay of 1.0 (core/training/config.py HEAD_TRAINING_DEFAULTS).

    def __init__(self, in_channels: int, num_labels: int, *, pool: str = "mean", dropout: float = 0.0) -> None:
        super().__init__()
        check_option(pool in self.POOLS, "video-gap", "pool", pool, " or ".join(self.POOLS))
        self.name = self.POOLS[pool]
        self.pool = pool
        self._linear_classifier(in_channels, num_labels, dropout)

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        return ("dropout",)  # the pool is chosen by the head's name

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x, mask = as_frames(x, mask)
        check_channels(x, self.in_channels, self.name)
        x = self.dropout(x.float())
        if self.pool == "frame-max":
            per_frame = torch.einsum("cd,bdt->bct", self.fc.weight, x) + self.fc.bias[None, :, None]  # (B, C, T)
            return masked_max(per_frame, mask)  # (B, C)
        pooled = masked_mean(x, mask) if self.pool == "mean" else masked_max(x, mask)  # (B, D)
        return self.fc(pooled)


@makes(TemporalCMA)
def video_cma(*, in_channels: int, num_labels: int, embeddings: torch.Tensor | None = None, **options) -> TemporalCMA:
    """Temporal CMA over frames."""
    return TemporalCMA(in_channels, num_labels, embeddings, **options)


@makes(TemporalPoolHead)
def video_gap(*, in_channels: int, num_labels: int, embeddings: torch.Tensor | None = None,
              **options) -> TemporalPoolHead:
    """Masked mean pooling over frames + linear."""
    return TemporalPoolHead(in_channels, num_labels, pool="mean", **options)


@makes(TemporalPoolHead)
def video_gmp(*, in_channels: int, num_labels: int, embeddings: torch.Tensor | None = None,
              **options) -> TemporalPoolHead:
    """Masked max pooling over frames + linear."""
    return TemporalPoolHead(in_channels, num_labels, pool="max", **options)


@makes(TemporalPoolHead)
def video_frame_max(*, in_channels: int, num_labels: int, embeddings: torch.Tensor | None = None,
                    **options) -> TemporalPoolHead:
    """A linear score per frame, max over the real frames (a frame-level reference)."""
    return TemporalPoolHead(in_channels, num_labels, pool="frame-max", **options)
