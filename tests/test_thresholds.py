"""Per-label thresholds: the best-F1 choice (core/evaluation/thresholds.py), their place in config.json
(RunConfig), and what `mlgraph train` does around the Trainer (thresholds, curves.png, the
validation note)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import trainkit
from conftest import one_line_error


def _f1(scores, targets, cut):
    pred = scores >= cut
    tp = (pred & (targets == 1)).sum()
    return 2 * tp / (pred.sum() + (targets == 1).sum())


def test_best_f1_threshold_is_the_best_cut_and_sits_between_scores():
    from mlgraph_cli.core.evaluation.thresholds import best_f1_threshold

    rng = np.random.default_rng(0)
    t = (rng.random(200) < 0.3).astype(np.int8)
    s = np.clip(0.25 + 0.3 * t + rng.normal(scale=0.15, size=200), 0.001, 0.999)
    cut = best_f1_threshold(s, t)
    assert 0 < cut < 1 and not np.isin(cut, s)  # half-way between two scores
    best = max(_f1(s, t, c) for c in np.unique(s))  # every possible prediction set
    assert _f1(s, t, cut) == pytest.approx(best)
    assert _f1(s, t, cut) > _f1(s, t, 0.5)  # the scores sit low: 0.5 is a poor cut here


def test_ties_take_the_cut_nearest_the_global_threshold():
    from mlgraph_cli.core.evaluation.thresholds import best_f1_threshold

    # positives at 0.9 and 0.1, negatives at 0.6 and 0.2: predicting {0.9} and predicting all
    # both give F1 = 2/3; the first (cut 0.75) is nearer 0.5, the second (cut 0.05) nearer 0.1
    s = np.array([0.9, 0.6, 0.2, 0.1])
    t = np.array([1, 0, 0, 1])
    assert best_f1_threshold(s, t, default=0.5) == pytest.approx(0.75)
    assert best_f1_threshold(s, t, default=0.1) == pytest.approx(0.05)


def test_labels_without_positives_or_negatives_keep_the_global_threshold_and_ignored_entries_count_not():
    from mlgraph_cli.core.evaluation.thresholds import tune_thresholds

    s = np.array([[0.9, 0.3, 0.8, 0.7], [0.2, 0.4, 0.7, 0.1], [0.6, 0.2, 0.9, 0.65]])
    t = np.array([[1, 0, 1, 1], [0, 0, 1, 0], [1, 0, 1, -1]])
    tuned = tune_thresholds(s, t, default=0.4)
    assert tuned.fallback == [1, 2]  # label 1: no positive; label 2: no negative
    assert tuned.thresholds[1] == tuned.thresholds[2] == 0.4
    assert tuned.thresholds[0] == pytest.approx(0.4)  # between 0.6 and 0.2
    assert tuned.thresholds[3] == pytest.approx(0.4)  # 0.65 is ignored: between 0.7 and 0.1
    assert all(0 < x < 1 for x in tune_thresholds(np.zeros((3, 1)) + [[0], [0], [1]], np.array([[1], [0], [1]])
                                                  ).thresholds)


def _config(tmp_path, **kw):
    from mlgraph_cli.core.training.run_config import RunConfig

    cfg = RunConfig(labels=["a", "b", "c"], head={"name": "cma"}, **kw)
    cfg.write(tmp_path)
    return RunConfig


def test_thresholds_round_trip_through_config_json(tmp_path):
    RunConfig = _config(tmp_path, thresholds=[0.2, 0.5, 0.8125])
    back = RunConfig.read(tmp_path)
    assert back.thresholds == [0.2, 0.5, 0.8125]
    assert back.label_thresholds(tmp_path) == [0.2, 0.5, 0.8125]
    assert json.loads((tmp_path / "config.json").read_text())["thresholds"] == [0.2, 0.5, 0.8125]
    RunConfig = _config(tmp_path)
    assert RunConfig.read(tmp_path).thresholds is None


@pytest.mark.parametrize("value, what", [
    ([0.5, 0.5], "must be null or a list of 3 numbers, one per label"),
    ([0.5, "x", 0.5], "must be null or a list of 3 numbers, one per label"),
    ([0.5, 1.0, 0.5], "must be probabilities between 0 and 1, not 1.0"),
    ([0.5, 0.0, 0.5], "must be probabilities between 0 and 1, not 0.0"),
])
def test_bad_thresholds_in_config_json_are_one_line(tmp_path, value, what):
    from mlgraph_cli.core.training.run_config import RunConfig
    from mlgraph_cli.errors import MlgraphError

    _config(tmp_path)
    doc = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**doc, "thresholds": value}))
    with pytest.raises(MlgraphError) as exc:
        RunConfig.read(tmp_path)
    assert f'"thresholds" {what}' in str(exc.value) and str(tmp_path / "config.json") in str(exc.value)


# ---------------------------------------------------------------------------------------------
# train: thresholds, curves.png, the validation note

def _is_png(path):
    from PIL import Image

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as img:
        img.verify()
        return img.size


def test_train_tunes_thresholds_on_validation_and_draws_curves(cli, tmp_path):
    from mlgraph_cli.core.evaluation.thresholds import tune_thresholds

    data = trainkit.toy_dataset(tmp_path / "data", n_train=64, n_val=32)
    out = tmp_path / "run"
    result = cli("train", "--features", data["features"], "--val-features", data["val"], "--embeddings",
                 data["embeddings"], "--epochs", "2", "--batch-size", "16", "--lr", "0.1", "-o", out)
    assert result.exit_code == 0, result.output
    assert "validation: 32 image(s) from the validation file" in result.stderr
    assert "per-label thresholds" in result.stderr and "curves.png" in result.stderr
    width, height = _is_png(out / "curves.png")
    assert width > 600 and height > 200
    thresholds = json.loads((out / "config.json").read_text())["thresholds"]
    # the same choice from the best weights' validation scores
    import torch

    from mlgraph_cli.core.features.file import open_features
    from mlgraph_cli.core.inference.run import load_run

    run = load_run(out, "best")
    ff = open_features(data["val"])
    with torch.no_grad():
        scores = torch.sigmoid(run.model(torch.from_numpy(ff.read(slice(None))))).numpy()
    assert thresholds == pytest.approx(tune_thresholds(scores, ff.labels).thresholds, abs=1e-6)


def test_tiny_automatic_split_is_named_with_its_labels_without_positives(cli, tmp_path):
    data = trainkit.toy_dataset(tmp_path / "data", n_train=20, n_val=4)
    result = cli("train", "--features", data["features"], "--embeddings", data["embeddings"], "--epochs", "1",
                 "--val-fraction", "0.1", "-o", tmp_path / "run")
    assert result.exit_code == 0, result.output
    note = [line for line in result.stderr.splitlines() if line.startswith("validation:")]
    assert len(note) == 1, result.stderr
    assert "validation: 2 image(s) held out of the training file" in note[0]
    assert "have no positive there" in note[0] and "too few images" in note[0]
    assert json.loads((tmp_path / "run" / "config.json").read_text())["thresholds"] is not None


def test_no_validation_split_no_thresholds_and_evaluate_tuned_says_why(cli, tmp_path):
    data = trainkit.toy_dataset(tmp_path / "data", n_train=32, n_val=16)
    out = tmp_path / "run"
    result = cli("train", "--features", data["features"], "--embeddings", data["embeddings"], "--epochs", "1",
                 "--val-fraction", "0", "-o", out)
    assert result.exit_code == 0, result.output
    assert "validation: none" in result.stderr
    assert json.loads((out / "config.json").read_text())["thresholds"] is None
    line = one_line_error(cli("evaluate", out, "--features", data["val"], "--threshold", "tuned"))
    assert f"{out / 'config.json'}: no tuned thresholds" in line and "--val-features" in line


def test_a_plotting_failure_does_not_lose_the_run(cli, tmp_path, monkeypatch):
    from mlgraph_cli.core.evaluation import plots

    def broken(rows, path):
        raise RuntimeError("no canvas")

    monkeypatch.setattr(plots, "training_curves", broken)
    data = trainkit.toy_dataset(tmp_path / "data", n_train=32, n_val=16)
    out = tmp_path / "run"
    result = cli("train", "--features", data["features"], "--val-features", data["val"], "--embeddings",
                 data["embeddings"], "--epochs", "1", "-o", out)
    assert result.exit_code == 0, result.output
    assert f"warning: {out / 'curves.png'} not written (RuntimeError: no canvas)" in result.stderr
    assert not (out / "curves.png").exists() and (out / "best.safetensors").is_file()
    assert json.loads((out / "config.json").read_text())["thresholds"] is not None
