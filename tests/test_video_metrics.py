"""Video metrics on hand-computed examples: GAP@k, AP@k, segment MAP@K over rated segments only."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlgraph_cli.core.evaluation.video_metrics import ap_at_k, segment_map, video_metrics


def test_ap_at_k_by_hand():
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    positive = np.array([True, False, True, False])
    # ranks 1 and 3 are positive: (1/1 + 2/3) / 2
    assert ap_at_k(scores, positive, k=10) == pytest.approx((1 + 2 / 3) / 2)
    # top 2 only: the positive at rank 3 is cut, denominator min(P, k) = 2
    assert ap_at_k(scores, positive, k=2) == pytest.approx(1 / 2)
    # k = 1: one positive in the top 1, denominator min(2, 1) = 1
    assert ap_at_k(scores, positive, k=1) == pytest.approx(1.0)
    assert math.isnan(ap_at_k(scores, np.zeros(4, bool), k=3))


def test_ap_at_k_ties_are_one_block():
    # a positive and a negative tied at the top: both get precision 1/2 regardless of input order
    a = ap_at_k(np.array([0.5, 0.5, 0.1]), np.array([True, False, False]), k=10)
    b = ap_at_k(np.array([0.5, 0.5, 0.1]), np.array([False, True, False]), k=10)
    assert a == b == pytest.approx(0.5)


def test_segment_map_by_hand():
    # class 0: rated segments scored 0.9 (pos), 0.4 (neg), 0.3 (pos) -> AP = (1 + 2/3) / 2
    # class 1: rated segments scored 0.2 (neg), 0.8 (pos) -> AP = 1
    # class 2: rated only negatively -> left out of the mean
    scores = np.array([0.9, 0.4, 0.3, 0.2, 0.8, 0.7])
    labels = np.array([0, 0, 0, 1, 1, 2])
    positive = np.array([True, False, True, False, True, False])
    report = segment_map(scores, labels, positive, k=100, label_names=["a", "b", "c"])
    assert report["MAP@100"] == pytest.approx(100 * ((1 + 2 / 3) / 2 + 1) / 2)
    assert report["per_label_ap"] == {"a": pytest.approx(100 * (1 + 2 / 3) / 2), "b": pytest.approx(100.0), "c": None}
    assert report["classes"] == 2 and report["classes_without_positives"] == 1
    # K = 1: class 0's top segment is positive (AP 1), class 1's top (0.8) too
    assert segment_map(scores, labels, positive, k=1)["MAP@1"] == pytest.approx(100.0)


def test_segment_map_only_counts_rated_segments():
    """Adding unrated segments is impossible by construction: only the given ratings are ranked, so a
    high-scoring segment of another class never enters class 0's list."""
    base = segment_map(np.array([0.5, 0.1]), np.array([0, 0]), np.array([True, False]), k=10)
    more = segment_map(np.array([0.5, 0.1, 0.99]), np.array([0, 0, 1]), np.array([True, False, False]), k=10)
    assert base["MAP@10"] == more["MAP@10"] == pytest.approx(100.0)


def test_video_metrics_gap_by_hand():
    # two videos, three labels, top-2 per video -> pool (0.9 +), (0.8 -), (0.7 +), (0.1 -)
    # one positive (video 1, label 2, score 0.05) never enters the pool: denominator 3
    scores = np.array([[0.9, 0.8, 0.0], [0.7, 0.1, 0.05]])
    targets = np.array([[1, 0, 0], [1, 0, 1]])
    report = video_metrics(scores, targets, k=2)
    assert report["GAP@2"] == pytest.approx(100 * (1 / 1 + 2 / 3) / 3)
    # mAP: label 0 AP 1; label 2: scores (0.0 -, 0.05 +) -> AP 1; label 1 has no positive
    assert report["mAP"] == pytest.approx(100.0)
    assert report["labels_without_positives"] == 1
