"""Multi-label metrics as the literature reports them (docs/metrics.md).

Inputs are numpy arrays:
- scores (N, C): probabilities in [0, 1] (apply :func:`sigmoid` to logits first; ML-GCN's
  meter took logits and thresholded at 0, which is the same as probabilities at 0.5);
- targets (N, C) int: 1 positive, 0 negative, -1 ignore (e.g. VOC "difficult"): an ignored
  entry is left out of that label's AP and out of every count below.

:func:`average_precision` and :func:`gap_at_k` return fractions in [0, 1];
:func:`multilabel_metrics` returns the report on the 0-100 scale papers use.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from scipy.special import expit

# Work on at most this many score entries at once when sorting per label (memory, not results).
_BLOCK_ELEMENTS = 1 << 22


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Probabilities from logits, computed without overflow (float64, same shape)."""
    return expit(np.asarray(logits, dtype=np.float64))


def _check(scores: Any, targets: Any, *, probabilities: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Validate and return scores (N, C) float32/float64 and targets (N, C) int8."""
    s = np.asarray(scores)
    if s.dtype not in (np.float32, np.float64):
        s = s.astype(np.float64)  # float32 scores stay float32: only their order matters
    t = np.asarray(targets)
    if s.ndim == 1:
        s, t = s[:, None], t.reshape(-1, 1)  # one label: (N,) -> (N, 1)
    if s.ndim != 2 or s.shape != t.shape:
        raise ValueError(f"scores {s.shape} and targets {t.shape} must both be (images, labels)")
    if not np.isfinite(s).all():
        raise ValueError("scores contain NaN or infinite values")
    if probabilities and s.size and (s.min() < 0.0 or s.max() > 1.0):
        raise ValueError(f"scores must be probabilities in [0, 1] (found {s.min():.3g} .. {s.max():.3g}); "
                         f"apply metrics.sigmoid to logits first")
    if t.dtype.kind in "biu":
        bad = t.size and (t.min() < -1 or t.max() > 1)
    else:
        bad = t.size and not ((t == -1) | (t == 0) | (t == 1)).all()
    if bad:
        raise ValueError("targets must be 1 (positive), 0 (negative) or -1 (ignore)")
    return s, t.astype(np.int8)


def _ranked_ap(s: np.ndarray, t: np.ndarray, num_positives: np.ndarray | None = None) -> np.ndarray:
    """Non-interpolated AP of each column of s (n, c) against t (n, c) in {-1, 0, 1}.

    AP = (1 / N_pos) * sum over positives of the precision at their rank, ranks counted over
    non-ignored entries only. Tied scores are scored as one block (the precision at the end
    of the block), as scikit-learn does, so the result does not depend on the input order;
    without ties this is exactly ML-GCN's / ASL's formula. ``num_positives`` (c,) overrides
    N_pos (GAP counts positives that never entered the ranked list). NaN where N_pos = 0.
    """
    n = s.shape[0]
    order = np.argsort(-s, axis=0, kind="stable")  # (n, c): rank -> row, highest score first
    ss = np.take_along_axis(s, order, axis=0)  # (n, c) sorted scores
    tt = np.take_along_axis(t, order, axis=0)  # (n, c) their targets
    pos = tt == 1
    cum_pos = np.cumsum(pos, axis=0)  # (n, c) true positives within the top r
    cum_valid = np.cumsum(tt >= 0, axis=0)  # (n, c) non-ignored entries within the top r
    # index of the last row of the tie block each row belongs to
    is_last = np.ones_like(ss, dtype=bool)
    is_last[:-1] = ss[:-1] != ss[1:]
    last = np.where(is_last, np.arange(n)[:, None], n)  # (n, c)
    block_end = np.minimum.accumulate(last[::-1], axis=0)[::-1]  # (n, c) smallest last-index >= r
    hits = np.take_along_axis(cum_pos, block_end, axis=0)
    seen = np.take_along_axis(cum_valid, block_end, axis=0)
    precision = np.where(pos, hits / np.maximum(seen, 1), 0.0)  # (n, c), only at positives
    npos = pos.sum(axis=0) if num_positives is None else np.asarray(num_positives)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(npos > 0, precision.sum(axis=0) / npos, np.nan)  # (c,)


def average_precision(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Per-label non-interpolated AP in [0, 1], shape (C,); NaN for a label without positives.

    scores (N, C): any monotone scores (probabilities or logits). targets (N, C): 1, 0, or
    -1 to leave an entry out of that label's ranking. Equals scikit-learn's
    ``average_precision_score`` on the non-ignored entries, ties included.
    """
    s, t = _check(scores, targets)
    n, c = s.shape
    out = np.full(c, np.nan)
    step = max(1, _BLOCK_ELEMENTS // max(n, 1))
    for start in range(0, c, step):
        out[start:start + step] = _ranked_ap(s[:, start:start + step], t[:, start:start + step])
    return out


def _prf(predicted: np.ndarray, t: np.ndarray, scored: np.ndarray) -> dict[str, float | None]:
    """CP, CR, CF1, OP, OR, OF1 (fractions) of a boolean prediction matrix (N, C).

    Per label k: Nc = correct predictions, Np = predictions, Ng = positives (ignored entries
    excluded from all three). CP/CR average over the labels in ``scored`` (those with a
    positive); a label never predicted has precision 0 (ML-GCN sets Np = 0 to 1: also 0).
    OP/OR pool the counts of all labels. CF1/OF1 are the F1 of the averaged P and R.
    """
    valid = t >= 0
    pos = t == 1
    nc = (predicted & pos).sum(axis=0).astype(np.float64)  # (C,)
    np_ = (predicted & valid).sum(axis=0).astype(np.float64)  # (C,)
    ng = pos.sum(axis=0).astype(np.float64)  # (C,)
    precision = np.divide(nc, np_, out=np.zeros_like(nc), where=np_ > 0)
    recall = np.divide(nc, ng, out=np.zeros_like(nc), where=ng > 0)
    cp = float(precision[scored].mean()) if scored.any() else None
    cr = float(recall[scored].mean()) if scored.any() else None
    op = float(nc.sum() / np_.sum()) if np_.sum() > 0 else 0.0
    or_ = float(nc.sum() / ng.sum()) if ng.sum() > 0 else None
    return {"CP": cp, "CR": cr, "CF1": _f1(cp, cr), "OP": op, "OR": or_, "OF1": _f1(op, or_)}


def _f1(p: float | None, r: float | None) -> float | None:
    if p is None or r is None:
        return None
    return 2.0 * p * r / (p + r) if p + r > 0 else 0.0


def _pct(value: float | None) -> float | None:
    return None if value is None or np.isnan(value) else 100.0 * float(value)


def multilabel_metrics(scores: np.ndarray, targets: np.ndarray, *, threshold: float | Sequence[float] = 0.5,
                       label_names: Sequence[str] | None = None, topk: int = 3) -> dict[str, Any]:
    """The standard multi-label report, on the 0-100 scale (docs/metrics.md).

    scores (N, C): probabilities in [0, 1] (:func:`sigmoid` of logits). targets (N, C):
    1 / 0 / -1 (ignore). A label is predicted when its score >= ``threshold`` (one value, or one
    per label in column order: tuned thresholds, core/evaluation/thresholds.py); the
    ``top{topk}`` variants also require it to be among the image's ``topk`` highest scores
    (ranked over all labels, ignored ones included; equal scores keep label order).

    Keys: mAP (mean AP over labels with at least one positive), CP, CR, CF1, OP, OR, OF1,
    ``top{topk}`` (dict of the same six), per_label_ap (name -> AP, None without positives),
    labels_without_positives ({"count", "names"}: left out of mAP, CP and CR), num_images,
    num_labels, threshold (a float, or the list of per-label thresholds), topk. A value that cannot be defined (no positives at all) is None.
    """
    s, t = _check(scores, targets, probabilities=True)
    n, c = s.shape
    names = [str(i) for i in range(c)] if label_names is None else [str(x) for x in label_names]
    if len(names) != c:
        raise ValueError(f"{len(names)} label names for {c} score columns")
    if topk < 1:
        raise ValueError(f"topk must be at least 1, got {topk}")
    cut = np.asarray(threshold, dtype=np.float64)
    if cut.ndim > 1 or (cut.ndim == 1 and len(cut) != c):
        raise ValueError(f"{cut.size} thresholds for {c} score columns")
    ap = average_precision(s, t)  # (C,), NaN without positives
    scored = ~np.isnan(ap)  # labels with at least one positive
    predicted = s >= cut  # (N, C); a (C,) cut applies per column
    top = np.zeros_like(predicted)
    ranks = np.argsort(-s, axis=1, kind="stable")[:, :topk]  # (N, k) label indices, best first
    np.put_along_axis(top, ranks, True, axis=1)
    report: dict[str, Any] = {"mAP": _pct(float(ap[scored].mean())) if scored.any() else None}
    report.update({k: _pct(v) for k, v in _prf(predicted, t, scored).items()})
    report[f"top{topk}"] = {k: _pct(v) for k, v in _prf(predicted & top, t, scored).items()}
    report["per_label_ap"] = {name: _pct(v) for name, v in zip(names, ap.tolist())}
    missing = [name for name, ok in zip(names, scored) if not ok]
    report["labels_without_positives"] = {"count": len(missing), "names": missing}
    report.update(num_images=int(n), num_labels=int(c), threshold=float(cut) if cut.ndim == 0 else cut.tolist(), topk=int(topk))
    return report


def threshold_comparison(scores: np.ndarray, targets: np.ndarray, *, fixed: float,
                         tuned: Sequence[float] | None, topk: int = 3) -> dict[str, Any]:
    """CP, CR, CF1, OP, OR, OF1 (0-100) and their ``top{topk}`` variants at one global threshold
    and at per-label thresholds, side by side: ``{"fixed": {...}, "tuned": {...} or None}``.

    scores (N, C) probabilities, targets (N, C) 1 / 0 / -1; ``tuned`` (C,) in column order
    (core/evaluation/thresholds.py), or None when the run has none. Same definitions as
    :func:`multilabel_metrics`; the "tuned" block also lists its ``thresholds``."""
    s, t = _check(scores, targets, probabilities=True)
    scored = (t == 1).any(axis=0)  # labels with a positive: the ones CP / CR average over
    top = np.zeros(s.shape, dtype=bool)
    np.put_along_axis(top, np.argsort(-s, axis=1, kind="stable")[:, :topk], True, axis=1)

    def block(cut: np.ndarray) -> dict[str, Any]:
        predicted = s >= cut
        out: dict[str, Any] = {k: _pct(v) for k, v in _prf(predicted, t, scored).items()}
        out[f"top{topk}"] = {k: _pct(v) for k, v in _prf(predicted & top, t, scored).items()}
        return out

    report: dict[str, Any] = {"fixed": {"threshold": float(fixed), **block(np.float64(fixed))}, "tuned": None}
    if tuned is not None:
        cut = np.asarray(tuned, dtype=np.float64)
        if cut.shape != (s.shape[1],):
            raise ValueError(f"{cut.size} tuned thresholds for {s.shape[1]} score columns")
        report["tuned"] = {"thresholds": cut.tolist(), **block(cut)}
    return report


def gap_at_k(scores: np.ndarray, targets: np.ndarray, k: int = 20) -> float:
    """YouTube-8M global average precision (GAP@k) in [0, 1].

    Keep each video's k highest-scoring (label, score) pairs, pool them over all videos, rank
    the pool by score and compute one non-interpolated AP whose denominator is the number of
    positive (video, label) pairs in ``targets``, including those that missed a top k
    (google/youtube-8m eval_util.py ``calculate_gap``). An ignored (-1) entry may take one of
    a video's k slots but counts neither as a rank nor as a positive. Ties are scored as one block instead of the reference's seeded
    shuffle. NaN when there is no positive at all.
    """
    s, t = _check(scores, targets)
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    kk = min(k, s.shape[1])
    # which k, not their order, matters (the pool is ranked again); a tie at the k-th place
    # is broken arbitrarily, as the reference's argpartition does
    top = np.argpartition(-s, kk - 1, axis=1)[:, :kk]  # (N, k) best labels per video
    pool_s = np.take_along_axis(s, top, axis=1).ravel()  # (N * k,)
    pool_t = np.take_along_axis(t, top, axis=1).ravel()  # (N * k,)
    total = int((t == 1).sum())
    return float(_ranked_ap(pool_s[:, None], pool_t[:, None], np.array([total]))[0])  # (N * k, 1) -> AP
