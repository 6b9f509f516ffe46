"""Which epoch a run keeps as ``best`` (``--select-by``, docs/train.md "Checkpoint selection").

An epoch's validation figures are compared by the selection metric (``mAP`` and ``CF1``: higher
is better; ``loss``: lower is better). Equal figures are common on a small validation split (a
run that ranks every validation image right reads mAP 100.00 for several epochs), so a tie goes
to the lower validation loss, then (a tie on the loss too, or ``--select-by loss``) to the higher
mAP, then to the earlier epoch. Early stopping (``--patience``) counts epochs since the last one
this comparison preferred.

Pure functions over the rows of ``metrics.jsonl``: no torch, so a test can plant rows.
"""

from __future__ import annotations

import math
from typing import Any

# --select-by value -> the metrics.jsonl key it reads
SELECT_KEYS = {"mAP": "val_mAP", "loss": "val_loss", "CF1": "val_CF1"}
SELECT_BY = tuple(SELECT_KEYS)
# Figures of an epoch that the comparison reads (and resume.pt keeps for the best one).
BEST_FIGURES = ("val_loss", "val_mAP", "val_CF1")


def _value(row: dict[str, Any], key: str, *, lower_is_better: bool) -> float:
    """The figure as "higher is better"; a missing one (None, NaN) ranks below every real one."""
    value = row.get(key)
    if value is None or not math.isfinite(float(value)):
        return -math.inf
    return -float(value) if lower_is_better else float(value)


def rank(row: dict[str, Any], select_by: str) -> tuple[float, float, float]:
    """The key an epoch is ranked by (higher is better): the selection metric, then the
    validation loss (lower first), then mAP. The earlier epoch wins what is left (strict ``>``)."""
    primary = SELECT_KEYS[select_by]
    return (_value(row, primary, lower_is_better=select_by == "loss"),
            _value(row, "val_loss", lower_is_better=True),
            _value(row, "val_mAP", lower_is_better=False))


def is_better(row: dict[str, Any], best: dict[str, Any] | None, select_by: str) -> bool:
    """Whether epoch ``row`` should replace ``best`` (None: no epoch kept yet)."""
    return best is None or rank(row, select_by) > rank(best, select_by)


def figures(row: dict[str, Any]) -> dict[str, float | None]:
    """The figures of ``row`` the comparison needs, as plain numbers (what resume.pt stores)."""
    return {k: (None if row.get(k) is None else float(row[k])) for k in BEST_FIGURES}


def resumed_best(state: dict[str, Any]) -> dict[str, Any] | None:
    """The best epoch's figures from a run's resume state; one from before ``--select-by`` kept only
    its mAP (``best_map``), so the loss of its best epoch ranks as missing."""
    if state.get("best_epoch") is None:
        return None
    if isinstance(state.get("best"), dict):
        return state["best"]
    value = state.get("best_map")
    known = value is not None and math.isfinite(float(value))
    return {"val_loss": None, "val_mAP": float(value) if known else None, "val_CF1": None}
