"""Per-label decision thresholds chosen on the validation split (docs/metrics.md, "Tuned thresholds").

One probability threshold per label, the one that gives that label the best F1 on the validation
scores; ``train`` stores them in ``config.json`` (``thresholds``, label order) and
``evaluate --threshold tuned`` uses them. How a label's threshold is chosen:

- the candidates are the cuts between the label's distinct validation scores, sorted high to low:
  predicting the top j score blocks puts the cut half-way between the j-th and the (j+1)-th
  distinct score (below the lowest score: half of it), so a test score equal to a validation
  score falls on the same side as it did there;
- F1 at each cut is 2 TP / (predicted + positives), computed over the known entries (target -1
  is left out), and the cut with the highest F1 wins; among equal F1 the cut nearest the global
  threshold wins, so a flat optimum moves the threshold as little as possible;
- a label whose validation split has no positive, or no negative, keeps the global threshold:
  F1 says nothing there (without negatives the best cut would predict everything);
- every threshold is kept inside (0, 1) (``[1e-6, 1 - 1e-6]``), as config.json requires.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EDGE = 1e-6  # thresholds stay in [EDGE, 1 - EDGE]


@dataclass
class TunedThresholds:
    """Thresholds (C,) in label order, and which labels fell back to the global threshold."""

    thresholds: list[float]
    fallback: list[int]  # label indices that kept ``global_threshold``
    global_threshold: float


def best_f1_threshold(scores: np.ndarray, targets: np.ndarray, default: float = 0.5) -> float | None:
    """The threshold of one label: scores (N,) probabilities, targets (N,) in {1, 0, -1 = ignore}.
    None when the label has no positive or no negative among its known entries."""
    known = targets >= 0
    s = np.asarray(scores, dtype=np.float64)[known]
    t = np.asarray(targets)[known] == 1
    npos = int(t.sum())
    if npos == 0 or npos == len(t):
        return None
    order = np.argsort(-s, kind="stable")
    s, t = s[order], t[order]
    ends = np.r_[np.flatnonzero(s[:-1] != s[1:]), len(s) - 1]  # last index of each block of equal scores
    tp = np.cumsum(t)[ends]  # true positives when predicting down to each block
    f1 = 2.0 * tp / (ends + 1 + npos)
    distinct = s[ends]  # high to low
    below = np.r_[distinct[1:], 0.0]
    cuts = np.clip((distinct + below) / 2.0, EDGE, 1.0 - EDGE)
    best = np.flatnonzero(f1 >= f1.max() - 1e-12)
    return float(cuts[best[np.argmin(np.abs(cuts[best] - default))]])


def tune_thresholds(scores: np.ndarray, targets: np.ndarray, default: float = 0.5) -> TunedThresholds:
    """Best-F1 threshold of every label: scores (N, C) probabilities, targets (N, C) 1 / 0 / -1;
    ``default`` (the run's global threshold) for labels without positives or negatives."""
    s, t = np.asarray(scores), np.asarray(targets)
    if s.ndim != 2 or s.shape != t.shape:
        raise ValueError(f"scores {s.shape} and targets {t.shape} must both be (images, labels)")
    out, fallback = [], []
    for k in range(s.shape[1]):
        cut = best_f1_threshold(s[:, k], t[:, k], default)
        if cut is None:
            fallback.append(k)
            cut = float(default)
        out.append(cut)
    return TunedThresholds(thresholds=out, fallback=fallback, global_threshold=float(default))
