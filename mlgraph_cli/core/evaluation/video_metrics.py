"""Video metrics (docs/metrics.md and docs/video.md; the definitions follow the
YouTube-8M starter code's eval_util.py and segment_eval_inference.py).

- Video level: GAP@20 (core/evaluation/metrics.py ``gap_at_k``, reused) and mAP over labels
  (core/evaluation/metrics.py ``average_precision``).
- Segment level (YouTube-8M Segments): MAP@K over the rated segments only. For each class, its
  rated segments are ranked by the model's score for the segment's 5 frames; AP@K is the
  YouTube-8M ``ap_at_n``: (1 / min(P, K)) * sum of precision@r over the positives ranked r <= K,
  with P the class's positive ratings (score > 0); MAP@K is the mean over classes with at least
  one positive rating (how many were left out is reported). Unrated (segment, class) pairs never
  count: "all labels are not exhaustively rated". Tied scores are scored as one block (the
  precision at the end of the block), as core/evaluation/metrics.py does, so the result does not depend on
  the input order; the reference breaks ties by its sort.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from mlgraph_cli.core.evaluation.metrics import average_precision, gap_at_k

# The Kaggle YouTube-8M Segments metric was MAP@100,000 (--top_n=100000).
SEGMENT_TOP_K = 100_000
VIDEO_TOP_K = 20


def ap_at_k(scores: np.ndarray, positive: np.ndarray, k: int) -> float:
    """AP@k of one ranked list: scores (n,), positive (n,) bool. NaN without positives."""
    s = np.asarray(scores, dtype=np.float64)
    pos = np.asarray(positive, dtype=bool)
    total = int(pos.sum())
    if total == 0:
        return float("nan")
    order = np.argsort(-s, kind="stable")
    ss, pp = s[order], pos[order]
    n = len(ss)
    # end of each row's tie block, so tied segments share one precision
    is_last = np.ones(n, dtype=bool)
    is_last[:-1] = ss[:-1] != ss[1:]
    block_end = np.minimum.accumulate(np.where(is_last, np.arange(n), n)[::-1])[::-1]  # (n,)
    hits = np.cumsum(pp)[block_end]
    precision = hits / (block_end + 1.0)
    ranked = np.arange(n) < k  # only the top k ranks count
    return float((precision * (pp & ranked)).sum() / min(total, k))


def segment_map(segment_scores: np.ndarray, segment_labels: np.ndarray, segment_positive: np.ndarray, *,
                k: int = SEGMENT_TOP_K, label_names: Sequence[str] | None = None) -> dict[str, Any]:
    """MAP@k over rated segments, on the 0-100 scale.

    segment_scores (S,): the model's score of each rating's class for that segment's frames.
    segment_labels (S,): the rating's label column. segment_positive (S,) bool: rating score > 0.
    Returns ``{"MAP@k": ..., "k": k, "per_label_ap": {name: AP}, "classes": n scored,
    "classes_without_positives": n}``.
    """
    s = np.asarray(segment_scores, dtype=np.float64)
    lab = np.asarray(segment_labels, dtype=np.int64)
    pos = np.asarray(segment_positive, dtype=bool)
    if not s.shape == lab.shape == pos.shape or s.ndim != 1:
        raise ValueError(f"segment scores {s.shape}, labels {lab.shape} and positives {pos.shape} must all be (S,)")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    per_label: dict[str, float | None] = {}
    aps = []
    without = 0
    for c in np.unique(lab):
        rows = lab == c
        ap = ap_at_k(s[rows], pos[rows], k)
        name = str(label_names[c]) if label_names is not None else str(int(c))
        if np.isnan(ap):
            without += 1
            per_label[name] = None
        else:
            aps.append(ap)
            per_label[name] = 100.0 * ap
    value = 100.0 * float(np.mean(aps)) if aps else None
    return {f"MAP@{k}": value, "k": int(k), "per_label_ap": per_label, "classes": len(aps),
            "classes_without_positives": without}


def video_metrics(scores: np.ndarray, targets: np.ndarray, *, k: int = VIDEO_TOP_K,
                  label_names: Sequence[str] | None = None) -> dict[str, Any]:
    """Video-level report on the 0-100 scale: ``GAP@k`` and ``mAP`` (labels with a positive), plus
    ``per_label_ap`` and ``labels_without_positives``. scores (N, C) any monotone scores;
    targets (N, C) 1 / 0 / -1 (ignore)."""
    ap = average_precision(scores, targets)  # (C,), NaN without positives
    scored = ~np.isnan(ap)
    names = [str(i) for i in range(len(ap))] if label_names is None else [str(x) for x in label_names]
    gap = gap_at_k(scores, targets, k)
    return {
        f"GAP@{k}": None if np.isnan(gap) else 100.0 * gap,
        "mAP": 100.0 * float(ap[scored].mean()) if scored.any() else None,
        "per_label_ap": {n: (None if np.isnan(v) else 100.0 * float(v)) for n, v in zip(names, ap)},
        "labels_without_positives": int((~scored).sum()),
        "num_videos": int(np.asarray(scores).shape[0]),
    }
