"""core/evaluation/plots.py: each figure is a valid PNG of a sensible size, written atomically, and labels
without positives (or runs without validation) are drawn, not refused."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from mlgraph_cli.core.evaluation import plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_size(path) -> tuple[int, int]:
    from PIL import Image

    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        return im.size


def _data(n=60, c=5, seed=0):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, c)) < 0.3).astype(np.int8)
    y[:, 0] = 0  # a label without positives
    y[:3, 1] = -1  # a few ignored entries
    s = np.clip(0.4 * y + 0.6 * rng.random((n, c)), 0, 1)
    return s, y, [f"label-{k}" for k in range(c)]


def _no_temp_files(folder):
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")] == []


def test_training_curves(tmp_path):
    rows = [{"epoch": e, "train_loss": 1 / e, "val_loss": 1.1 / e, "val_mAP": 40 + e, "val_CF1": 30.0,
             "lr": 1e-3 * 0.5 ** e, "seconds": 0.1} for e in range(1, 9)]
    out = plots.training_curves(rows, tmp_path / "curves.png")
    assert out == tmp_path / "curves.png"
    w, h = _png_size(out)
    assert 600 <= w <= 2000 and 200 <= h <= 1000
    assert _no_temp_files(tmp_path)


def test_training_curves_without_validation_or_epoch_numbers(tmp_path):
    rows = [{"train_loss": 0.7, "val_loss": None, "val_mAP": None, "lr": 1e-5},
            {"train_loss": 0.6, "val_loss": None, "val_mAP": None, "lr": 1e-5}]
    w, h = _png_size(plots.training_curves(rows, tmp_path / "c.png"))
    assert w > 0 and h > 0


def test_precision_recall_curves_accept_a_label_without_positives(tmp_path):
    s, y, labels = _data()
    w, h = _png_size(plots.precision_recall_curves(s, y, labels, tmp_path / "pr.png"))
    assert 600 <= w <= 2500 and 200 <= h <= 1500


def test_precision_recall_curves_of_many_labels_stay_a_readable_grid(tmp_path):
    s, y, labels = _data(n=80, c=120)
    w, h = _png_size(plots.precision_recall_curves(s, y, labels, tmp_path / "pr.png", max_labels=12))
    assert w <= 2500 and h <= 1500  # 13 panels, not 121


def test_precision_recall_curves_reject_mismatched_labels(tmp_path):
    s, y, labels = _data()
    with pytest.raises(ValueError, match="do not agree"):
        plots.precision_recall_curves(s, y, labels[:-1], tmp_path / "pr.png")
    assert list(tmp_path.iterdir()) == []


def test_pr_curve_area_is_the_average_precision_of_metrics():
    from mlgraph_cli.core.evaluation.metrics import average_precision

    s, y, _ = _data(n=50, c=4, seed=3)
    for k in range(1, 4):
        rec, prec = plots.pr_curve(s[:, k], y[:, k])
        assert rec[-1] == pytest.approx(1.0)
        area = float(np.sum(np.diff(np.r_[0.0, rec]) * prec))  # sum of precision x recall step
        assert area == pytest.approx(average_precision(s[:, k:k + 1], y[:, k:k + 1])[0])
    assert len(plots.pr_curve(s[:, 0], y[:, 0])[0]) == 0


def test_per_label_rows():
    s = np.array([[0.9, 0.1], [0.8, 0.2], [0.2, 0.7]])
    y = np.array([[1, 0], [0, 0], [1, 0]], dtype=np.int8)
    a, b = plots.per_label_rows(s, y, ["a", "b"], threshold=0.5)
    assert a["positives"] == 2 and a["precision"] == pytest.approx(50.0) and a["recall"] == pytest.approx(50.0)
    assert a["f1"] == pytest.approx(50.0) and a["ap"] == pytest.approx(100 * (1 + 2 / 3) / 2)
    assert b == {"label": "b", "ap": None, "precision": 0.0, "recall": None, "f1": None, "positives": 0}
    tuned = plots.per_label_rows(s, y, ["a", "b"], threshold=[0.1, 0.9])[0]  # one threshold per label
    assert tuned["recall"] == pytest.approx(100.0)


@pytest.mark.parametrize("c", [4, 100])
def test_per_label_chart_grows_with_the_labels(tmp_path, c):
    s, y, labels = _data(n=50, c=c)
    w, h = _png_size(plots.per_label_chart(plots.per_label_rows(s, y, labels), tmp_path / "chart.png"))
    assert 800 <= w <= 2000
    assert h >= 20 * c  # every label keeps a readable row
    assert h <= 4000


def test_importing_the_cli_does_not_import_matplotlib():
    code = "import sys, mlgraph_cli.cli.app, mlgraph_cli.core.evaluation.plots; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_label_chart_names_its_threshold(tmp_path):
    rows = [{"label": "a", "ap": 50.0, "precision": 40.0, "recall": 30.0, "f1": 34.3, "positives": 3, "threshold": 0.5},
            {"label": "b", "ap": None, "precision": None, "recall": None, "f1": None, "positives": 0, "threshold": 0.5}]
    assert plots.threshold_caption(rows) == "AP over all thresholds; precision, recall and F1 at threshold 0.5"
    rows[1]["threshold"] = 0.25
    assert plots.threshold_caption(rows) == ("AP over all thresholds; precision, recall and F1 at each label's own "
                                             "threshold (0.25-0.50)")
    assert plots.per_label_chart(rows, tmp_path / "c.png").is_file()
