"""Adjacencies derived from a :class:`LabelGraph`'s counts, chosen by name (docs/method.md, "The label graph").

Each function takes the graph and its own keyword parameters and returns a dense (C, C)
float64 array; :data:`ADJACENCIES` names them and :func:`adjacency` dispatches.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from mlgraph_cli.core.graph.counts import LabelGraph
from mlgraph_cli.errors import InputError


def _cond_mean(g: LabelGraph, **_: Any) -> np.ndarray:
    p = g.conditional()
    return (p + p.T) / 2.0


def _binary(g: LabelGraph, tau: float = 0.4, **_: Any) -> np.ndarray:
    p = g.conditional()
    a = (np.maximum(p, p.T) >= tau).astype(np.float64)
    np.fill_diagonal(a, 0.0)
    return a


def _mlgcn(g: LabelGraph, tau: float = 0.4, p: float = 0.2, **_: Any) -> np.ndarray:
    """ML-GCN's re-weighted correlation matrix (Chen et al., CVPR 2019, eq. 7-8).

    Binarise P(j|i) at tau, re-weight the neighbours of each label to sum to p, put 1 - p on the
    diagonal (self-loop). Asymmetric, rows sum to 1 for labels with neighbours. This follows the
    paper's equations; the released ML-GCN code differs (column sums, p = 0.25, diagonal 1), so
    pass p=0.25 to get its neighbour weight.
    """
    cond = g.conditional()
    b = (cond >= tau).astype(np.float64)
    np.fill_diagonal(b, 0.0)
    rows = b.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(rows > 0, b * p / rows, 0.0)
    np.fill_diagonal(a, np.where(rows.ravel() > 0, 1.0 - p, 1.0))
    return a


def _jaccard(g: LabelGraph, **_: Any) -> np.ndarray:
    m = g.dense_cooccurrence()
    n = g.image_counts.astype(np.float64)
    union = n[:, None] + n[None, :] - m
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(union > 0, m / union, 0.0)
    np.fill_diagonal(a, 0.0)
    return a


def _npmi(g: LabelGraph, **_: Any) -> np.ndarray:
    """Normalised pointwise mutual information, clipped at 0 (only positive association)."""
    m = g.dense_cooccurrence()
    n = g.image_counts.astype(np.float64)
    total = float(max(g.num_images, 1))
    pij = m / total
    pi = n / total
    with np.errstate(divide="ignore", invalid="ignore"):
        pmi = np.log(pij / (pi[:, None] * pi[None, :]))
        npmi = pmi / -np.log(pij)
    a = np.where(m > 0, np.clip(npmi, 0.0, 1.0), 0.0)
    np.fill_diagonal(a, 0.0)
    return np.nan_to_num(a)


ADJACENCIES: dict[str, Callable[..., np.ndarray]] = {
    "cond-mean": _cond_mean,
    "binary": _binary,
    "mlgcn": _mlgcn,
    "jaccard": _jaccard,
    "npmi": _npmi,
}


def keep_apart(a: np.ndarray, self_weight: float) -> np.ndarray:
    """The ASGE target A + lambda I rescaled to a unit diagonal: off-diagonal A_ij / (1 + lambda).

    Cosine similarity has a unit diagonal, so adding lambda I to a target only matters once the
    matrix is read as a Gram matrix: (A + (1 + lambda) I) / (1 + lambda) asks the embeddings of
    co-occurring labels to be less alike (lambda = 0 is A itself, lambda -> infinity orthogonal,
    one-hot-like vectors) while keeping the order of the pairs, so neighbours still rank first.
    It is also positive semi-definite once 1 + lambda >= -(smallest eigenvalue of A), so an
    exact fit exists at any dimension >= C. (C, C) in, (C, C) float64 out, zero diagonal.
    """
    lam = float(self_weight)
    if not lam >= 0.0:
        raise InputError(f"self weight {self_weight!r} is not valid (lambda >= 0: 0 keeps the adjacency as it is)")
    out = np.asarray(a, dtype=np.float64) / (1.0 + lam)
    np.fill_diagonal(out, 0.0)
    return out


def adjacency(graph: LabelGraph, kind: str = "cond-mean", **params: Any) -> np.ndarray:
    """A dense (C, C) adjacency derived from ``graph``; see :data:`ADJACENCIES` for the kinds."""
    try:
        fn = ADJACENCIES[kind]
    except KeyError:
        raise InputError(f"unknown adjacency {kind!r} (choose one of: {', '.join(ADJACENCIES)})") from None
    return fn(graph, **params)


