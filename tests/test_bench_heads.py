"""benchmarks/heads.py: the paired statistics and the rule that picks a recommendation (no training)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import heads  # noqa: E402
from studykit import paired  # noqa: E402


def _runs(row, values):
    return [{"row": row, "data_seed": i // 3, "seed": i % 3, "val_mAP": v, "test": {"mAP": v},
             "train_seconds": 1.0} for i, v in enumerate(values)]


def test_paired_difference_mean_se_and_two_se_flag():
    ref = _runs("cma/bce", [70, 71, 72, 70, 71, 72, 70, 71, 72])
    better = _runs("query-graph/bce", [71, 72, 73, 71, 72, 73, 71, 72, 73.9])
    d = paired(better, ref, lambda r: r["val_mAP"])
    assert d["n"] == 9 and d["mean"] == pytest.approx(1.1) and d["se"] == pytest.approx(0.1)
    assert d["beyond_2se"]
    assert paired(better[:1], ref, lambda r: r["val_mAP"])["se"] is None  # one pair: no standard error
    assert paired(_runs("gap/bce", []), ref, lambda r: r["val_mAP"])["n"] == 0


def test_the_rule_keeps_the_default_unless_a_row_wins_by_two_se_over_nine_runs():
    ref = _runs("cma/bce", [70, 71, 72, 70, 71, 72, 70, 71, 72])
    noisy = _runs("query-graph/bce", [75, 68, 74, 69, 76, 67, 73, 70, 75])  # higher mean, inside the noise
    clear = _runs("cma/asl", [71.5, 72.4, 73.6, 71.5, 72.5, 73.5, 71.4, 72.6, 73.5])
    rows = heads.summary(ref + noisy, "cma/bce")
    assert rows[0]["row"] == "query-graph/bce" and heads.recommend(rows, "cma/bce", ref + noisy)[0] == "cma/bce"
    rows = heads.summary(ref + noisy + clear, "cma/bce")
    assert heads.recommend(rows, "cma/bce", ref + noisy + clear)[0] == "cma/asl"
    few = ref[:3] + clear[:3]
    assert heads.recommend(heads.summary(few, "cma/bce"), "cma/bce", few)[0] == "cma/bce"  # 3 runs
    assert "| 1 | cma / asl | graph |" in heads.table(heads.summary(ref + clear, "cma/bce"), "cma/bce")


def test_asl_must_also_beat_its_bce_twin_or_the_twin_is_picked():
    ref = _runs("cma/bce", [70, 71, 72, 70, 71, 72, 70, 71, 72])
    bce = _runs("ms-cma/bce", [72, 73, 74, 72, 73, 74, 72, 73, 74])
    asl = _runs("ms-cma/asl", [72.5, 72.6, 74.6, 71.5, 73.3, 73.8, 72.4, 72.4, 74.2])  # a tie with bce
    runs = ref + bce + asl
    choice, why = heads.recommend(heads.summary(runs, "cma/bce"), "cma/bce", runs)
    assert choice == "ms-cma/bce" and "the paper's loss stays" in why


def test_every_head_and_loss_has_a_row_and_the_probe_only_its_own_loss():
    assert "cma/bce" in heads.ROWS and "query-random/asl" in heads.ROWS and "probe-gapgmp/bce" in heads.ROWS
    assert not any(r.startswith("probe") and r.endswith("/asl") for r in heads.ROWS)
    assert len(heads.ROWS) == 3 + 10 * 2


def test_a_query_head_default_starts_from_the_graph():
    """Random or word-vector queries may win the table but not the default (issue 19); the next
    row that beats the reference by the rule is picked instead."""
    ref = _runs("cma/bce", [70, 71, 72, 70, 71, 72, 70, 71, 72])
    free = _runs("query-random/bce", [73, 74, 75, 73, 74, 75, 73, 74, 75])
    multi = _runs("ms-cma/bce", [72, 73, 74, 72, 73, 74, 72, 73, 74])
    runs = ref + free + multi
    rows = heads.summary(runs, "cma/bce")
    assert rows[0]["row"] == "query-random/bce" and heads.recommend(rows, "cma/bce", runs)[0] == "ms-cma/bce"
    assert heads.may_be_default("query-graph/bce") and not heads.may_be_default("query-word/bce")
