"""Baseline heads that CMA must be measured against (docs/method.md).

- GAP / GMP: global average or max pooling of the backbone map, then one linear layer.
  ML-GCN's README shows why both are needed: ResNet-101 reaches 77.3 mAP on COCO with GAP
  but 81.9 with GMP, so a "+x over ResNet-101" claim must say which pooling.
- ML-GCN: Chen, Wei, Wang, Guo. "Multi-Label Image Recognition with Graph Convolutional
  Networks", CVPR 2019. Two graph-convolution layers over the label embeddings produce one
  classifier per label, W (C, D); the image vector is the GMP of the backbone map; the logits
  are W @ x. As in its code (megvii-research/ML-GCN models.py, util.py ``gen_adj``): no
  biases, LeakyReLU(0.2) between the layers, and the adjacency fixed (not trained) and
  normalised as D^-1/2 A^T D^-1/2 with D the row sums of A.
"""

from __future__ import annotations

import torch
from torch import nn

from mlgraph_cli.core.models.common import (Head, as_feature_map, check_channels, check_option, label_buffer,
                                            makes)
from mlgraph_cli.errors import InputError, MismatchError

POOLS = {"gap": "average", "gmp": "max"}


class GlobalPoolHead(Head):
    """Global pooling + linear: x (B, D, H, W) -> logits (B, C). ``pool``: "gap" or "gmp"."""

    def __init__(self, in_channels: int, num_labels: int, *, pool: str = "gap", dropout: float = 0.0) -> None:
        super().__init__()
        check_option(pool in POOLS, "gap", "pool", pool, " or ".join(POOLS))
        self.name = pool
        self._linear_classifier(in_channels, num_labels, dropout)

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        return ("dropout",)  # ``pool`` is chosen by the head's name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = as_feature_map(x)
        check_channels(x, self.in_channels, self.name)
        x = x.to(self.fc.weight.dtype)  # cached maps are float16: pool in the parameters' precision
        pooled = x.mean(dim=(2, 3)) if self.name == "gap" else x.amax(dim=(2, 3))  # (B, D, H, W) -> (B, D)
        return self.fc(self.dropout(pooled))  # (B, C)


def normalize_adjacency(a: torch.Tensor) -> torch.Tensor:
    """ML-GCN's normalisation D^-1/2 A^T D^-1/2, D = diag(row sums of A); (C, C) -> (C, C).

    ``gen_adj`` in ML-GCN's util.py computes (A D)^T D, which is this matrix. Rows that sum to
    zero (a label with neither neighbours nor self-loop) get 0 instead of an infinite scale.
    """
    a = a.to(torch.float32)
    deg = a.sum(dim=1)  # (C,)
    inv_sqrt = torch.where(deg > 0, deg.clamp_min(1e-12).rsqrt(), torch.zeros_like(deg))  # (C,)
    return inv_sqrt[:, None] * a.T * inv_sqrt[None, :]  # entry (i, j) = d_i^-1/2 A_ji d_j^-1/2


class GraphConvolution(nn.Module):
    """H' = A_hat H W (Kipf & Welling 2017), no bias as in ML-GCN. H (C, F_in) -> (C, F_out)."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        bound = out_features ** -0.5  # ML-GCN's init: U(-1/sqrt(out), 1/sqrt(out))
        self.weight = nn.Parameter(torch.empty(in_features, out_features).uniform_(-bound, bound))

    def forward(self, h: torch.Tensor, a_hat: torch.Tensor) -> torch.Tensor:
        return a_hat @ (h @ self.weight)  # (C, C) @ ((C, F_in) @ (F_in, F_out)) -> (C, F_out)


class MLGCN(Head):
    """ML-GCN head. x (B, D, H, W) -> logits (B, C).

    embeddings: (C, d) label vectors fed to the GCN (word vectors in the paper), frozen.
    adjacency: (C, C) correlation matrix, e.g. ``core.graph.adjacency(graph, "mlgcn")``
      (eq. 7-8: binarised at tau, neighbours re-weighted to sum to p, self-loop 1 - p); kept
      normalised as a buffer so the state dict carries it.
    hidden: width of the first GCN layer (1024 in the paper). negative_slope: LeakyReLU slope.
    """

    name = "mlgcn"
    needs_embeddings = True
    needs_adjacency = True

    def __init__(self, in_channels: int, num_labels: int, embeddings: torch.Tensor | None = None,
                 adjacency: torch.Tensor | None = None, *, embedding_dim: int | None = None,
                 hidden: int = 1024, negative_slope: float = 0.2, dropout: float = 0.0) -> None:
        super().__init__()
        check_option(isinstance(hidden, int) and hidden >= 1, self.name, "hidden", hidden, "a positive width")
        check_option(float(negative_slope) >= 0, self.name, "negative_slope", negative_slope, "a slope >= 0")
        check_option(0.0 <= float(dropout) < 1.0, self.name, "dropout", dropout, "a probability in [0, 1)")
        rebuilding = embeddings is None and embedding_dim is not None
        e = label_buffer(embeddings, num_labels, embedding_dim, self.name)
        if adjacency is None:
            if not rebuilding:
                raise InputError("head 'mlgcn' needs the label graph for its adjacency "
                                 "(make one with `mlgraph build-graph` and pass `--graph`)")
            a_hat = torch.zeros(num_labels, num_labels)  # filled by load_state_dict
        else:
            a = torch.as_tensor(adjacency).detach()
            if tuple(a.shape) != (num_labels, num_labels):
                raise MismatchError(f"the adjacency is {tuple(a.shape)} for {num_labels} labels "
                                    f"(rebuild the graph with `mlgraph build-graph` on this dataset)")
            a_hat = normalize_adjacency(a)
        self.register_buffer("embeddings", e)  # (C, d), frozen
        self.register_buffer("adjacency", a_hat)  # (C, C), normalised, frozen
        self.in_channels, self.num_labels = int(in_channels), int(num_labels)
        self.gc1 = GraphConvolution(e.shape[1], hidden)
        self.gc2 = GraphConvolution(hidden, in_channels)
        self.act = nn.LeakyReLU(float(negative_slope))
        self.dropout = nn.Dropout(float(dropout))
        self._remember(in_channels=self.in_channels, num_labels=self.num_labels, embedding_dim=int(e.shape[1]),
                       hidden=hidden, negative_slope=float(negative_slope), dropout=float(dropout))

    def classifiers(self) -> torch.Tensor:
        """The per-label classifiers the GCN produces, W (C, D)."""
        h = self.act(self.gc1(self.embeddings, self.adjacency))  # (C, d) -> (C, hidden)
        return self.gc2(h, self.adjacency)  # (C, hidden) -> (C, D)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = as_feature_map(x)
        check_channels(x, self.in_channels, self.name)
        w = self.classifiers()  # (C, D)
        v = self.dropout(x.to(w.dtype).amax(dim=(2, 3)))  # GMP: (B, D, H, W) -> (B, D)
        return v @ w.T  # (B, D) @ (D, C) -> (B, C)


@makes(GlobalPoolHead)
def gap(*, in_channels: int, num_labels: int, embeddings: torch.Tensor | None = None,
        adjacency: torch.Tensor | None = None, **options) -> GlobalPoolHead:
    """Global average pooling + linear."""
    return GlobalPoolHead(in_channels, num_labels, pool="gap", **options)


@makes(GlobalPoolHead)
def gmp(*, in_channels: int, num_labels: int, embeddings: torch.Tensor | None = None,
        adjacency: torch.Tensor | None = None, **options) -> GlobalPoolHead:
    """Global max pooling + linear."""
    return GlobalPoolHead(in_channels, num_labels, pool="gmp", **options)


@makes(MLGCN)
def mlgcn(*, in_channels: int, num_labels: int, embeddings: torch.Tensor | None = None,
          adjacency: torch.Tensor | None = None, **options) -> MLGCN:
    """ML-GCN (Chen et al., CVPR 2019): GCN-made classifiers over a GMP image vector."""
    return MLGCN(in_channels, num_labels, embeddings, adjacency, **options)
