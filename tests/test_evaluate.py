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

    from mlgraph_cli.core.features.file import open_features
    from mlgraph_cli.core.evaluation.metrics import multilabel_metrics
    from mlgraph_cli.core.inference.run import load_run

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
    said = " ".join(result.stderr.split())  # the table's top-3 column names its threshold and says what it is
    assert "top-3 at 0.3" in said
    assert ("top-3: a label counts as predicted only when it is among the image's 3 highest scores and reaches the "
            "threshold 0.3") in said


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


# ---------------------------------------------------------------------------------------------
# Tuned thresholds, plots, the split, [evaluate]

def _is_png(path):
    from PIL import Image

    with Image.open(path) as img:
        img.verify()
        return img.format == "PNG"


def test_tuned_thresholds_are_used_and_both_figures_shown(cli, run):
    from mlgraph_cli.core.evaluation.metrics import multilabel_metrics

    config = json.loads((run["run"] / "config.json").read_text())
    result = cli("evaluate", run["run"], "--features", run["val"], "-o", "-", "--threshold", "tuned")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["threshold_mode"] == "tuned" and doc["threshold"] == pytest.approx(config["thresholds"])
    fixed, tuned = doc["thresholds"]["fixed"], doc["thresholds"]["tuned"]
    assert fixed["threshold"] == 0.5 and tuned["thresholds"] == pytest.approx(config["thresholds"])
    # the tuned block is the report at the per-label thresholds, the fixed one at 0.5
    import torch

    from mlgraph_cli.core.features.file import open_features
    from mlgraph_cli.core.inference.run import load_run

    loaded, ff = load_run(run["run"]), open_features(run["val"])
    with torch.no_grad():
        scores = torch.sigmoid(loaded.model(torch.from_numpy(ff.read(slice(None))))).numpy()
    at_tuned = multilabel_metrics(scores, ff.labels, threshold=config["thresholds"])
    for key in ("CP", "CR", "CF1", "OP", "OR", "OF1"):
        assert doc[key] == pytest.approx(at_tuned[key]) and tuned[key] == pytest.approx(at_tuned[key])
        assert fixed[key] == pytest.approx(_expected(run["run"], run["val"])[key])
    assert [r["threshold"] for r in doc["per_label"]] == pytest.approx(config["thresholds"])
    # on its own validation data, tuned CF1 is at least the 0.5 figure (it was chosen there)
    assert tuned["CF1"] >= fixed["CF1"]
    assert "tuned" in result.stderr and "at 0.5" in result.stderr


def test_per_label_rows_hold_p_r_f1_and_positives(cli, run):
    result = cli("evaluate", run["run"], "--features", run["val"], "-o", "-")
    doc = json.loads(result.stdout)
    y = json.loads(json.dumps(trainkit.planted(32, seed=1)["y"].tolist()))
    for k, row in enumerate(doc["per_label"]):
        assert row["label"] == trainkit.LABELS[k] and row["positives"] == sum(r[k] == 1 for r in y)
        assert row["ap"] == pytest.approx(doc["per_label_ap"][row["label"]])
        p, r = row["precision"], row["recall"]
        if p is not None and p + r > 0:
            assert row["f1"] == pytest.approx(2 * p * r / (p + r))


def test_plots_beside_the_json_and_none_for_stdout_unless_asked(cli, run, tmp_path):
    out = tmp_path / "m" / "metrics.json"
    out.parent.mkdir()
    result = cli("evaluate", run["run"], "--features", run["val"], "-o", out)
    assert result.exit_code == 0, result.output
    for name in ("metrics.pr.png", "metrics.labels.png"):
        assert _is_png(out.parent / name), name
    assert json.loads(out.read_text())["plots"]["pr"] == str((out.parent / "metrics.pr.png").resolve())
    result = cli("evaluate", run["run"], "--features", run["val"], "-o", "-")
    assert "plots" not in json.loads(result.stdout) and not list(run["run"].glob("eval-*.png"))
    result = cli("evaluate", run["run"], "--features", run["val"], "-o", "-", "--plots", tmp_path / "figs")
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == ["eval-val.labels.png", "eval-val.pr.png"]
    result = cli("evaluate", run["run"], "--features", run["val"], "-o", tmp_path / "n.json", "--no-plots")
    assert result.exit_code == 0 and not list(tmp_path.glob("n.*.png"))


def test_the_split_is_named_and_its_own_validation_is_called_optimistic(cli, run, tmp_path):
    result = cli("evaluate", run["run"], "--features", run["val"], "-o", "-")
    split = json.loads(result.stdout)["split"]
    assert split["name"] == "validation" and split["optimistic"]
    assert "note: val.h5: the validation split chose the best epoch" in result.stderr
    assert "(validation)" in result.stderr
    test = trainkit.write_features(tmp_path / "test.h5", trainkit.planted(24, seed=7))
    result = cli("evaluate", run["run"], "--features", test, "-o", "-")
    split = json.loads(result.stdout)["split"]
    assert split == {"name": "held-out", "optimistic": False, "note": None}
    assert "note:" not in result.stderr
    result = cli("evaluate", run["run"], "--features", run["features"], "-o", "-")
    assert json.loads(result.stdout)["split"]["name"] == "training"


def test_evaluate_table_in_the_project_file(cli, run, tmp_path, monkeypatch):
    project = tmp_path / "proj"
    project.mkdir()
    (project / "mlgraph.toml").write_text('[dataset]\n\n[evaluate]\nthreshold = "tuned"\nplots = false\n'
                                          'checkpoint = "last"\n')
    monkeypatch.chdir(project)
    result = cli("evaluate", run["run"], "--features", run["val"], "-o", tmp_path / "p.json")
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "p.json").read_text())
    assert doc["threshold_mode"] == "tuned" and doc["checkpoint"] == "last" and "plots" not in doc
    result = cli("evaluate", run["run"], "--features", run["val"], "-o", "-", "--threshold", "0.4")
    assert json.loads(result.stdout)["threshold"] == 0.4  # a flag wins over the file
    (project / "mlgraph.toml").write_text("[dataset]\n\n[evaluate]\nthreshods = 0.3\n")
    line = one_line_error(cli("evaluate", run["run"], "--features", run["val"]))
    assert "unknown key(s) in [evaluate]: threshods" in line


@pytest.mark.parametrize("value, message", [
    ("1.5", "--threshold 1.5: must be a probability between 0 and 1, or 'tuned'"),
    ("high", "--threshold high: not a number (pass a probability such as 0.5, or 'tuned'"),
])
def test_bad_threshold(cli, run, value, message):
    line = one_line_error(cli("evaluate", run["run"], "--features", run["val"], "--threshold", value))
    assert message in line


def test_library_call_gets_what_the_command_gets(run, tmp_path):
    from mlgraph_cli.core.evaluation.config import EvaluateConfig
    from mlgraph_cli.stages.evaluate import evaluate, run_evaluate

    a = run_evaluate(run["run"], features=run["val"], output=tmp_path / "a.json", overrides={"threshold": "tuned"})
    b = evaluate(run["run"], EvaluateConfig(threshold="tuned"), features=run["val"], output=tmp_path / "b.json")
    assert a.metrics["CF1"] == b.metrics["CF1"] and a.config == b.config
    assert [p.name for p in a.plots] == ["a.pr.png", "a.labels.png"]
