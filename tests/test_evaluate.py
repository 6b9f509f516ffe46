"""`mlgraph evaluate`: the metrics JSON (schema, values consistent with core.metrics), tables,
defaults in a project, and user mistakes."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import trainkit
from conftest import one_line_error


@pytest.fixture
def run(cli, tmp_path):
    data = trainkit.toy_dataset(tmp_path / "data", n_train=64, n_val=32)
    out = tmp_path / "run"
    result = cli("train", "--features", data["features"], "--val-features", data["val"], "--embeddings",
                 data["embeddings"], "--epochs", "3", "--batch-size", "16", "--lr", "0.1", "-o", out)
    assert result.exit_code == 0, result.output
    return {**data, "run": out}


def _expected(run_dir, features, which="best", threshold=0.5):
    import torch

    from mlgraph_cli.core.features import open_features
    from mlgraph_cli.core.metrics import multilabel_metrics
    from mlgraph_cli.core.predict import load_run

    loaded = load_run(run_dir, which)
    ff = open_features(features)
    with torch.no_grad():
        scores = torch.sigmoid(loaded.model(torch.from_numpy(ff.read(slice(None))))).numpy()
    return multilabel_metrics(scores, ff.labels, threshold=threshold, label_names=loaded.label_names)


def test_metrics_json_matches_core_metrics(cli, run):
    result = cli("evaluate", run["run"], "--features", run["val"])
    assert result.exit_code == 0, result.output
    doc = json.loads((run["run"] / "eval-val.json").read_text())
    assert doc["schema"] == "mlgraph/metrics@1"
    assert doc["provenance"]["command"] == "mlgraph evaluate"
    for key in ("mAP", "CP", "CR", "CF1", "OP", "OR", "OF1", "top3", "per_label_ap"):
        assert key in doc
    assert set(doc["top3"]) == {"CP", "CR", "CF1", "OP", "OR", "OF1"}
    assert list(doc["per_label_ap"]) == trainkit.LABELS
    expected = _expected(run["run"], run["val"])
    for key in ("mAP", "CP", "CR", "CF1", "OP", "OR", "OF1"):
        assert doc[key] == pytest.approx(expected[key], abs=1e-6), key
    assert 0 <= doc["mAP"] <= 100 and doc["num_images"] == 32
    # the best checkpoint's mAP is the best val mAP of training (same data, same code path)
    rows = [json.loads(x) for x in (run["run"] / "metrics.jsonl").read_text().splitlines()]
    assert doc["mAP"] == pytest.approx(max(r["val_mAP"] for r in rows), abs=1e-6)
    assert "mAP" in result.stdout and "top-3" in result.stdout  # the table


def test_stdout_json_threshold_last_checkpoint_and_per_label(cli, run):
    result = cli("evaluate", run["run"], "--features", run["val"], "-o", "-", "--threshold", "0.3",
                 "--checkpoint", "last", "--per-label")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)  # stdout holds the JSON alone; tables go to stderr
    assert doc["threshold"] == 0.3 and doc["checkpoint"] == "last"
    expected = _expected(run["run"], run["val"], "last", 0.3)
    assert doc["CP"] == pytest.approx(expected["CP"]) and doc["OF1"] == pytest.approx(expected["OF1"])
    assert "per label" in result.stderr and "fish" in result.stderr and "positives" in result.stderr


def test_project_defaults_run_and_features(cli, run, tmp_path, monkeypatch):
    project = tmp_path / "proj"
    (project / "artifacts").mkdir(parents=True)
    (project / "mlgraph.toml").write_text("[dataset]\n")
    os.link(run["val"], project / "artifacts" / "val-features.h5")
    runs = project / "runs" / "train"
    runs.mkdir(parents=True)
    import shutil

    shutil.copytree(run["run"], runs / "exp")
    monkeypatch.chdir(project)
    result = cli("evaluate")
    assert result.exit_code == 0, result.output
    assert (runs / "exp" / "eval-val-features.json").is_file()


# ---------------------------------------------------------------------------------------------
# User mistakes

def test_features_from_another_backbone(cli, run, tmp_path):
    other = trainkit.write_features(tmp_path / "other.h5", trainkit.planted(8),
                                    backbone_config={"name": "resnet50", "weights": "IMAGENET1K_V2",
                                                     "image_size": 448, "layers": ["layer4"]})
    line = one_line_error(cli("evaluate", run["run"], "--features", other))
    assert f"{other}: extracted with name 'resnet50'" in line and "image_size 448" in line
    assert str(run["run"] / "config.json") in line and "mlgraph extract --backbone toy" in line


def test_features_with_other_labels_or_none(cli, run, tmp_path):
    labels = ["ant", "bee", "cat", "dog"]
    other = trainkit.write_features(tmp_path / "o.h5", trainkit.planted(8, labels=labels), labels=labels)
    line = one_line_error(cli("evaluate", run["run"], "--features", other))
    assert "different label sets" in line and str(other) in line and "'ant'" in line
    bare = trainkit.write_features(tmp_path / "b.h5", trainkit.planted(8), with_labels=False)
    line = one_line_error(cli("evaluate", run["run"], "--features", bare))
    assert f"{bare}: no labels to evaluate against" in line and "--annotations" in line


def test_not_a_run(cli, run, tmp_path):
    (tmp_path / "empty").mkdir()
    line = one_line_error(cli("evaluate", tmp_path / "empty", "--features", run["val"]))
    assert "no config.json" in line and "mlgraph train" in line


def test_no_data(cli, run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = one_line_error(cli("evaluate", run["run"]))
    assert "no evaluation data given" in line and "--features" in line


def test_reordered_labels_are_aligned(cli, run, tmp_path):
    """Same label set in another column order: columns are matched by name."""
    data = trainkit.planted(32, seed=1)  # the validation data, columns reversed
    rev = list(reversed(trainkit.LABELS))
    flipped = {**data, "y": np.ascontiguousarray(data["y"][:, ::-1])}
    path = trainkit.write_features(tmp_path / "rev.h5", flipped, labels=rev)
    result = cli("evaluate", run["run"], "--features", path, "-o", "-")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["mAP"] == pytest.approx(_expected(run["run"], run["val"])["mAP"])
