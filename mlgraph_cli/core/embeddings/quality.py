"""How well cosine similarity of label embeddings ranks each label's graph neighbours (docs/embed.md)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np



def cosine_matrix(vectors: np.ndarray) -> np.ndarray:
    """(C, C) float64 cosine similarity; zero vectors have cosine 0 with everything."""
    v = np.asarray(vectors, dtype=np.float64)
    v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    return v @ v.T


def average_precision(scores: np.ndarray, positives: np.ndarray) -> float:
    """Non-interpolated AP of ``scores`` (n,) against 0/1 ``positives`` (n,); tied scores form one
    step (precision at the end of the tie), as scikit-learn's ``average_precision_score``."""
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], positives[order].astype(np.float64)
    tp = np.cumsum(y)
    ends = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]  # last index of each tie group
    tp_end = tp[ends]
    gained = np.diff(np.r_[0.0, tp_end])
    return float((gained * tp_end / (ends + 1)).sum() / max(tp[-1], 1.0))


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
    from scipy.stats import pearsonr, spearmanr

    c = vectors.shape[0]
    cos = cosine_matrix(vectors)
    nb = np.asarray(neighbours, dtype=bool) & ~np.eye(c, dtype=bool)
    use = ~np.eye(c, dtype=bool) if pairs is None else (np.asarray(pairs, dtype=bool) & ~np.eye(c, dtype=bool))
    aps = []
    for i in range(c):
        cand = use[i]
        if nb[i, cand].any():
            aps.append(average_precision(cos[i, cand], nb[i, cand]))
    out: dict[str, Any] = {"map": float(np.mean(aps)) if aps else float("nan"),
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
