"""`mlgraph train` when things go wrong: SIGTERM, rows that are not numbers, a diverging loss, and
weights that do not belong to their config.json (issue 8)."""

from __future__ import annotations

import json
import os
import shutil
import signal

import numpy as np
import pytest

import trainkit
from conftest import one_line_error


@pytest.fixture
def data(tmp_path):
    return trainkit.toy_dataset(tmp_path / "data", n_train=48, n_val=24)


def _train(cli, data, out, *extra, features=None):
    return cli("train", "--features", features or data["features"], "--val-features", data["val"], "--embeddings",
               data["embeddings"], "--batch-size", "16", "--lr", "0.1", "-o", out, *extra)


def test_sigterm_is_ctrl_c_the_run_keeps_its_epoch_and_resumes(cli, data, tmp_path, monkeypatch):
    from mlgraph_cli.core.training import trainer as training

    real = training._epoch_line

    def terminate_after_first(row, epochs, label="epoch"):
        if row["epoch"] == 1:
            os.kill(os.getpid(), signal.SIGTERM)  # a scheduler stopping the job just after epoch 1 was saved
        return real(row, epochs, label)

    monkeypatch.setattr(training, "_epoch_line", terminate_after_first)
    run = tmp_path / "run"
    result = _train(cli, data, run, "--epochs", "3", "--probe-epochs", "0")  # the fault is timed by epoch 1
    assert result.exit_code == 130, result.output
    assert result.stderr.strip().splitlines()[-1] == (
        f"Interrupted: {run} keeps its last finished epoch; continue with `mlgraph train --resume {run}`")
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 1
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is put back
    monkeypatch.setattr(training, "_epoch_line", real)
    result = cli("train", "--resume", run)
    assert result.exit_code == 0, result.output
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 3


def test_nan_rows_stop_with_one_line_and_a_rerun_reuses_the_folder(cli, data, tmp_path):
    d = trainkit.planted(48, seed=0)
    d["x"][7, 2, 1, 1] = np.nan
    bad = trainkit.write_features(tmp_path / "bad.h5", d)
    run = tmp_path / "run"
    line = one_line_error(_train(cli, data, run, "--epochs", "2", features=bad))
    assert line == f"Error: {bad}: `features` holds NaN or infinite values (row 7; remake the file with `mlgraph extract`)"
    # the folder of a run that finished no epoch is reused by a plain re-run on good data
    result = _train(cli, data, run, "--epochs", "2")
    assert result.exit_code == 0, result.output
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2


def test_a_diverging_loss_is_one_line_naming_the_epoch(cli, data, tmp_path, monkeypatch):
    import torch

    from mlgraph_cli.core.training import losses

    real, calls = losses.masked_bce, []

    def diverge_in_epoch_two(logits, targets):
        calls.append(1) if torch.is_grad_enabled() else None  # training steps only, not validation
        loss = real(logits, targets)
        return loss * torch.inf if len(calls) > 3 else loss  # 3 batches of 16 per epoch

    monkeypatch.setattr(losses, "masked_bce", diverge_in_epoch_two)
    run = tmp_path / "run"
    result = _train(cli, data, run, "--epochs", "3", "--probe-epochs", "0", "-q")  # batches counted from epoch 1
    assert result.exit_code == 1 and "Traceback" not in result.output
    line = result.stderr.strip().splitlines()[-1]  # after the line of epoch 1
    assert line == (f"Error: {run}: the training loss became inf in epoch 2 (training diverged; the run keeps "
                    "epoch 1; start again with a lower --lr, e.g. `mlgraph train --lr 0.01 --force -o RUN`)")
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 1 and (run / "resume.pt").is_file()


@pytest.fixture
def two_runs(cli, data, tmp_path):
    runs = []
    for name in ("a", "b"):
        result = _train(cli, data, tmp_path / name, "--epochs", "1", "--seed", str(len(runs)))
        assert result.exit_code == 0, result.output
        runs.append(tmp_path / name)
    return runs


def test_reversed_labels_in_config_json_are_refused(cli, data, two_runs):
    run = two_runs[0]
    config = json.loads((run / "config.json").read_text())
    config["labels"] = config["labels"][::-1]
    (run / "config.json").write_text(json.dumps(config))
    line = one_line_error(cli("evaluate", run, "--features", data["val"], "-o", "-"))
    assert line.startswith(f"Error: {run / 'best.safetensors'}: these weights belong to another config than "
                           f"{run / 'config.json'}")


def test_another_runs_weights_are_refused(cli, data, two_runs):
    a, b = two_runs
    shutil.copy(b / "best.safetensors", a / "best.safetensors")  # same labels, same head: only the run differs
    line = one_line_error(cli("evaluate", a, "--features", data["val"], "-o", "-"))
    assert "these weights belong to another config" in line and "use the run's own files" in line
    assert cli("evaluate", b, "--features", data["val"], "-o", "-").exit_code == 0


@pytest.mark.parametrize("key,value,says", [
    ("threshold", "high", '"threshold" must be a probability between 0 and 1, not \'high\''),
    ("threshold", 1.5, '"threshold" must be a probability between 0 and 1, not 1.5'),
    ("labels", ["cat", "cat", "dog", "fish"], '"labels" repeats a label name'),
    ("modality", "audio", '"modality" must be one of image, video, not \'audio\''),
    ("head", "cma", '"head" must be the head\'s config with its "name"'),
])
def test_hand_edited_config_values_are_one_line(cli, data, two_runs, key, value, says):
    run = two_runs[0]
    config = json.loads((run / "config.json").read_text())
    config[key] = value
    (run / "config.json").write_text(json.dumps(config))
    line = one_line_error(cli("evaluate", run, "--features", data["val"], "-o", "-"))
    assert line == (f"Error: {run / 'config.json'}: {says} (re-train with `mlgraph train`, or restore the run's "
                    "own config.json)")


def test_a_video_head_on_image_features_is_one_line(cli, data, tmp_path):
    line = one_line_error(_train(cli, data, tmp_path / "run", "--head", "frame-max"))
    assert line == (f"Error: --head frame-max: a head for video features from `mlgraph import-yt8m`, not for images "
                    f"({data['features']} holds image features) (choose one of: cma, ms-cma, gap, gmp, mlgcn, query, "
                    "probe)")


def test_label_values_outside_minus_one_zero_one_are_refused(cli, data, tmp_path):
    d = trainkit.planted(48, seed=0)
    d["y"][5, 2] = 7  # a scrambled byte in the labels
    bad = trainkit.write_features(tmp_path / "bad.h5", d)
    line = one_line_error(_train(cli, data, tmp_path / "run", features=bad))
    assert line == (f"Error: {bad}: labels must be -1, 0 or 1, but row 5 holds 7 (1 row(s) affected; remake the file "
                    "with `mlgraph extract`)")


def test_ctrl_c_during_the_probe_start_is_exit_130_and_the_folder_is_reused(cli, data, tmp_path, monkeypatch):
    let_runs_go_on = trainkit.interrupt_the_probe(monkeypatch)
    run = tmp_path / "run"
    result = _train(cli, data, run, "--epochs", "2", "--probe-epochs", "2")
    assert result.exit_code == 130 and "Traceback" not in result.output
    assert result.stderr.strip().splitlines()[-1].startswith("Interrupted")
    assert not (run / "metrics.jsonl").exists() or not (run / "metrics.jsonl").read_text().strip()
    let_runs_go_on()
    result = _train(cli, data, run, "--epochs", "2", "--probe-epochs", "2")  # no --force: no epoch was kept
    assert result.exit_code == 0, result.output
    assert json.loads((run / "config.json").read_text())["probe"]["epochs"] == 2
