"""core/evaluation/metrics.py: AP against scikit-learn, the F1 family and top-3 against hand arithmetic."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from mlgraph_cli.core.evaluation.metrics import average_precision, gap_at_k, multilabel_metrics, sigmoid

# A worked example: 3 images, 4 labels a b c d (threshold 0.5, top-3).
SCORES = np.array([
    [0.9, 0.8, 0.7, 0.6],   # img0: all four >= 0.5; its top 3 are a b c
    [0.2, 0.6, 0.4, 0.55],  # img1: b d >= 0.5; top 3 b d c
    [0.7, 0.1, 0.3, 0.2],   # img2: a >= 0.5; top 3 a c d
])
TARGETS = np.array([
    [1, 0, 1, 1],
    [0, 1, 0, 0],
    [1, 0, 0, 1],
])
NAMES = ["a", "b", "c", "d"]


def random_case(n=300, c=6, seed=0, ties=False):
    rng = np.random.default_rng(seed)
    scores = rng.random((n, c))
    if ties:
        scores = np.round(scores, 1)  # about 11 distinct values: many ties
    targets = (rng.random((n, c)) < 0.3).astype(int)
    targets[0] = 1  # every label has a positive
    return scores, targets


def test_ap_matches_sklearn_without_ties():
    scores, targets = random_case()
    assert len(np.unique(scores)) == scores.size  # no ties
    ours = average_precision(scores, targets)
    ref = np.array([average_precision_score(targets[:, k], scores[:, k]) for k in range(scores.shape[1])])
    np.testing.assert_allclose(ours, ref, atol=1e-12)
    assert multilabel_metrics(scores, targets)["mAP"] == pytest.approx(100 * ref.mean(), abs=1e-9)


def test_ap_with_ties_matches_sklearn_and_ignores_input_order():
    scores, targets = random_case(ties=True, seed=1)
    ours = average_precision(scores, targets)
    ref = np.array([average_precision_score(targets[:, k], scores[:, k]) for k in range(scores.shape[1])])
    np.testing.assert_allclose(ours, ref, atol=1e-12)
    perm = np.random.default_rng(2).permutation(len(scores))
    np.testing.assert_allclose(average_precision(scores[perm], targets[perm]), ours, atol=1e-12)


def test_ap_by_hand():
    # a: ranks img0(+) img2(+) img1 -> (1/1 + 2/2) / 2 = 1
    # b: img0(-) img1(+) img2 -> (1/2) / 1 = 0.5
    # c: img0(+) first -> 1
    # d: img0(+) img1(-) img2(+) -> (1/1 + 2/3) / 2 = 5/6
    np.testing.assert_allclose(average_precision(SCORES, TARGETS), [1.0, 0.5, 1.0, 5 / 6])


def test_ignored_entries_are_left_out_of_ap():
    scores, targets = random_case(seed=3)
    rng = np.random.default_rng(4)
    ignore = rng.random(targets.shape) < 0.2
    ignore[0] = False
    marked = np.where(ignore, -1, targets)
    ours = average_precision(scores, marked)
    ref = [average_precision_score(targets[~ignore[:, k], k], scores[~ignore[:, k], k]) for k in range(6)]
    np.testing.assert_allclose(ours, ref, atol=1e-12)
    assert not np.allclose(ours, average_precision(scores, targets))  # the mask did change something
    # moving an ignored entry to the top of the ranking changes nothing
    moved = scores.copy()
    moved[ignore] = 2.0
    np.testing.assert_allclose(average_precision(moved, marked), ours, atol=1e-12)


def test_labels_without_positives_are_nan_and_left_out():
    scores, targets = random_case(seed=5)
    targets[:, 2] = 0
    targets[:5, 4] = -1
    targets[5:, 4] = 0  # only ignored or negative entries: no positive either
    ap = average_precision(scores, targets)
    assert np.isnan(ap[2]) and np.isnan(ap[4])
    assert not np.isnan(ap[[0, 1, 3, 5]]).any()
    names = ["l0", "l1", "l2", "l3", "l4", "l5"]
    report = multilabel_metrics(scores, targets, label_names=names)
    assert report["labels_without_positives"] == {"count": 2, "names": ["l2", "l4"]}
    assert report["per_label_ap"]["l2"] is None and report["per_label_ap"]["l4"] is None
    assert report["mAP"] == pytest.approx(100 * np.mean(ap[[0, 1, 3, 5]]))


def test_f1_family_by_hand():
    r = multilabel_metrics(SCORES, TARGETS, label_names=NAMES)
    # predicted at 0.5: img0 a b c d; img1 b d; img2 a
    # a: Nc 2 Np 2 Ng 2 -> P 1,   R 1
    # b: Nc 1 Np 2 Ng 1 -> P 1/2, R 1
    # c: Nc 1 Np 1 Ng 1 -> P 1,   R 1
    # d: Nc 1 Np 2 Ng 2 -> P 1/2, R 1/2
    cp, cr = (1 + 0.5 + 1 + 0.5) / 4, (1 + 1 + 1 + 0.5) / 4  # 0.75, 0.875
    op, or_ = 5 / 7, 5 / 6  # sum Nc / sum Np, sum Nc / sum Ng
    assert r["CP"] == pytest.approx(100 * cp)
    assert r["CR"] == pytest.approx(100 * cr)
    assert r["CF1"] == pytest.approx(100 * 2 * cp * cr / (cp + cr))  # 80.769...
    assert r["OP"] == pytest.approx(100 * op)
    assert r["OR"] == pytest.approx(100 * or_)
    assert r["OF1"] == pytest.approx(100 * 10 / 13)  # 2 (5/7)(5/6) / (5/7 + 5/6)
    assert r["mAP"] == pytest.approx(100 * (1 + 0.5 + 1 + 5 / 6) / 4)
    assert r["per_label_ap"] == pytest.approx({"a": 100.0, "b": 50.0, "c": 100.0, "d": 500 / 6})
    assert (r["num_images"], r["num_labels"], r["threshold"], r["topk"]) == (3, 4, 0.5, 3)


def test_cf1_is_f1_of_averages_not_mean_of_f1():
    r = multilabel_metrics(SCORES, TARGETS)
    per_label_f1 = [1.0, 2 * 0.5 * 1 / 1.5, 1.0, 0.5]  # a b c d
    assert r["CF1"] == pytest.approx(100 * 0.807692307, abs=1e-6)
    assert r["CF1"] != pytest.approx(100 * np.mean(per_label_f1), abs=1e-3)  # 79.17 would be the wrong one


def test_top3_by_hand():
    t3 = multilabel_metrics(SCORES, TARGETS)["top3"]
    # in the top 3 and >= 0.5: img0 a b c (d 0.6 is 4th); img1 b d; img2 a
    # a: Nc 2 Np 2 Ng 2; b: Nc 1 Np 2 Ng 1; c: Nc 1 Np 1 Ng 1; d: Nc 0 Np 1 Ng 2 (P 0, R 0)
    cp, cr = (1 + 0.5 + 1 + 0) / 4, (1 + 1 + 1 + 0) / 4  # 0.625, 0.75
    assert set(t3) == {"CP", "CR", "CF1", "OP", "OR", "OF1"}
    assert t3["CP"] == pytest.approx(100 * cp)
    assert t3["CR"] == pytest.approx(100 * cr)
    assert t3["CF1"] == pytest.approx(100 * 2 * cp * cr / (cp + cr))  # 68.18...
    assert t3["OP"] == pytest.approx(100 * 4 / 6)  # sum Nc 4 / sum Np 6
    assert t3["OR"] == pytest.approx(100 * 4 / 6)  # sum Nc 4 / sum Ng 6
    assert t3["OF1"] == pytest.approx(100 * 4 / 6)


def test_difficult_entries_leave_every_count():
    targets = TARGETS.copy()
    targets[1, 3] = -1  # img1's d (0.55, predicted, negative) becomes "difficult"
    r = multilabel_metrics(SCORES, targets, label_names=NAMES)
    # d: Nc 1 Np 1 Ng 2 -> P 1, R 1/2; AP: img0(+) img2(+) -> 1
    cp = (1 + 0.5 + 1 + 1) / 4
    assert r["CP"] == pytest.approx(100 * cp)
    assert r["OP"] == pytest.approx(100 * 5 / 6)
    assert r["per_label_ap"]["d"] == pytest.approx(100.0)


def test_a_label_without_positives_still_costs_overall_precision():
    scores = np.hstack([SCORES, [[0.9], [0.1], [0.1]]])  # label e, predicted on img0
    targets = np.hstack([TARGETS, [[0], [0], [0]]])  # ... but never present
    r = multilabel_metrics(scores, targets, label_names=NAMES + ["e"], topk=5)
    assert r["CP"] == pytest.approx(75.0) and r["CR"] == pytest.approx(87.5)  # e left out of CP and CR
    assert r["OP"] == pytest.approx(100 * 5 / 8)  # its false positive counts: sum Np 7 -> 8
    assert r["labels_without_positives"] == {"count": 1, "names": ["e"]}
    assert "top5" in r and "top3" not in r


def test_never_predicted_label_has_precision_zero():
    scores = SCORES.copy()
    scores[:, 2] = 0.1  # c is never predicted: P_c = 0 (not 0/0), R_c = 0
    r = multilabel_metrics(scores, TARGETS)
    assert r["CP"] == pytest.approx(100 * (1 + 0.5 + 0 + 0.5) / 4)
    assert r["CR"] == pytest.approx(100 * (1 + 1 + 0 + 0.5) / 4)


def test_scores_must_be_probabilities():
    logits = np.log(SCORES / (1 - SCORES))
    with pytest.raises(ValueError, match="sigmoid"):
        multilabel_metrics(logits, TARGETS)
    r = multilabel_metrics(sigmoid(logits), TARGETS)
    assert r["OF1"] == pytest.approx(100 * 10 / 13)
    assert sigmoid(np.array([-1000.0, 0.0, 1000.0])).tolist() == [0.0, 0.5, 1.0]  # no overflow warning


def test_bad_targets_and_shapes():
    with pytest.raises(ValueError, match="targets must be"):
        average_precision(SCORES, TARGETS * 2)
    with pytest.raises(ValueError, match="targets must be"):
        average_precision(SCORES, TARGETS * 0.5)  # not silently rounded to 0
    np.testing.assert_allclose(average_precision(SCORES.astype(np.float32), TARGETS.astype(bool)),
                               [1.0, 0.5, 1.0, 5 / 6])  # float32 scores, bool targets
    with pytest.raises(ValueError, match="must both be"):
        average_precision(SCORES, TARGETS[:, :3])
    with pytest.raises(ValueError, match="NaN"):
        average_precision(np.full((3, 4), np.nan), TARGETS)


def test_nothing_positive_gives_none_not_nan():
    r = multilabel_metrics(SCORES, np.zeros_like(TARGETS))
    assert r["mAP"] is None and r["CP"] is None and r["CR"] is None and r["OR"] is None
    assert r["labels_without_positives"]["count"] == 4
    assert r["OP"] == 0.0  # every prediction was wrong


def _gap_reference(scores, targets, k):
    """GAP as google/youtube-8m computes it, written as a plain loop (no ties in the inputs)."""
    pool = []
    for s_row, t_row in zip(scores, targets):
        for j in np.argsort(-s_row)[:k]:
            pool.append((s_row[j], t_row[j]))
    pool.sort(key=lambda p: -p[0])
    total, hits, ap = targets.sum(), 0, 0.0
    for rank, (_, label) in enumerate(pool, start=1):
        if label:
            hits += 1
            ap += hits / rank / total
    return ap


def test_gap_at_k_matches_the_youtube8m_definition():
    scores, targets = random_case(n=50, c=30, seed=6)
    for k in (1, 5, 20, 100):
        assert gap_at_k(scores, targets, k) == pytest.approx(_gap_reference(scores, targets, k), abs=1e-12)


def test_gap_at_k_by_hand():
    scores = np.array([[0.9, 0.8, 0.1], [0.7, 0.2, 0.6]])
    targets = np.array([[0, 1, 1], [1, 0, 0]])
    # top 2 per video: (0.9, -) (0.8, +) | (0.7, +) (0.6, -); pooled: 0.9- 0.8+ 0.7+ 0.6-
    # positives in targets: 3 (video 0's label 2 at 0.1 never enters the pool)
    # GAP = (1/2 + 2/3) / 3
    assert gap_at_k(scores, targets, k=2) == pytest.approx((1 / 2 + 2 / 3) / 3)
    assert math.isnan(gap_at_k(scores, np.zeros_like(targets)))
