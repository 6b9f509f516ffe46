"""How well cosine similarity of label embeddings ranks each label's graph neighbours (docs/embed.md)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from scipy.stats import pearsonr, spearmanr

from mlgraph_cli.core.evaluation.metrics import average_precision


def cosine_matrix(vectors: np.ndarray) -> np.ndarray:
    """(C, C) float64 cosine similarity; zero vectors have cosine 0 with everything."""
    v = np.asarray(vectors, dtype=np.float64)
    v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    return v @ v.T


def neighbour_ranking(vectors: np.ndarray, neighbours: np.ndarray, reference: np.ndarray | None = None,
                      *, topk: int = 5, labels: Sequence[str] | None = None,
                      pairs: np.ndarray | None = None) -> dict[str, Any]:
    """How well cosine similarity of ``vectors`` (C, d) recovers a graph.

    neighbours: (C, C) bool, the true neighbours (diagonal ignored). For each label with at
    least one neighbour, rank the other labels by cosine and take the AP of the neighbours;
    ``map`` is their mean (0-1). reference: (C, C) continuous adjacency for the Spearman and
    Pearson correlations with cosine over pairs i < j. pairs: optional (C, C) bool restricting
    both to a subset of pairs (held-out checks). ``nearest``: label -> top-``topk`` labels.
    """
    c = vectors.shape[0]
    cos = cosine_matrix(vectors)
    nb = np.asarray(neighbours, dtype=bool) & ~np.eye(c, dtype=bool)
    use = ~np.eye(c, dtype=bool) if pairs is None else (np.asarray(pairs, dtype=bool) & ~np.eye(c, dtype=bool))
    # Label i ranks the labels j it may be compared with (use[i]) by cosine: column i of the
    # scores, targets 1 for its neighbours, 0 for the others, -1 (left out) for the rest.
    targets = np.where(use, nb.astype(np.int8), np.int8(-1))  # (C, C), row i = label i's candidates
    aps = average_precision(cos.T, targets.T)  # (C,), NaN for a label without a neighbour
    aps = aps[~np.isnan(aps)]
    out: dict[str, Any] = {"map": float(np.mean(aps)) if len(aps) else float("nan"),
                           "labels_with_neighbours": len(aps), "labels": c}
    if reference is not None:
        ref = np.asarray(reference, dtype=np.float64)
        ref = (ref + ref.T) / 2.0
        upper = np.triu(use, 1)
        x, y = cos[upper], ref[upper]
        constant = len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0
        out["spearman"] = float("nan") if constant else float(spearmanr(x, y).statistic)
        out["pearson"] = float("nan") if constant else float(pearsonr(x, y).statistic)
    if labels is not None and topk > 0:
        masked = np.where(np.eye(c, dtype=bool), -np.inf, cos)
        k = min(topk, c - 1)
        top = np.argsort(-masked, axis=1, kind="stable")[:, :k]
        out["nearest"] = {labels[i]: [{"label": labels[j], "cosine": round(float(cos[i, j]), 4),
                                       "neighbour": bool(nb[i, j])} for j in top[i]] for i in range(c)}
    return out
