"""`mlgraph train`: which epoch is best (--select-by, ties to the lower validation loss), extending a
finished run (--resume --epochs N), a run stopped during its probe start, and the TensorBoard log
(issue 20, items 4 and 8)."""

from __future__ import annotations

import json
import math

import pytest

import trainkit
from conftest import one_line_error


@pytest.fixture
def data(tmp_path):
    return trainkit.toy_dataset(tmp_path / "data", n_train=48, n_val=24)


@pytest.fixture
def easy(tmp_path):
    """Planted prototypes so strong that every epoch ranks the validation images perfectly (mAP ties
    at 100) while the validation loss keeps falling: only the tie-break can tell the epochs apart."""
    folder = tmp_path / "easy"
    folder.mkdir()
    return {"features": trainkit.write_features(folder / "train.h5", trainkit.planted(48, seed=0, strength=12.0)),
            "val": trainkit.write_features(folder / "val.h5", trainkit.planted(24, seed=1, strength=12.0)),
            "embeddings": trainkit.write_embeddings(folder / "emb.h5")}


def _train(cli, data, out, *extra):
    return cli("train", "--features", data["features"], "--val-features", data["val"], "--embeddings",
               data["embeddings"], "--batch-size", "16", "--lr", "0.1", "-o", out, *extra)


def _rows(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _best_epoch_in_weights(run) -> int:
    from safetensors import safe_open

    with safe_open(str(run / "best.safetensors"), "pt") as f:
        return int(f.metadata()["epoch"])


# ---------------------------------------------------------------------------------------------
# --select-by

def test_ties_go_to_the_lower_validation_loss_then_the_earlier_epoch():
    from mlgraph_cli.core.training.selection import is_better

    first = {"val_mAP": 100.0, "val_loss": 0.3165, "val_CF1": 90.0}
    later = {"val_mAP": 100.0, "val_loss": 0.105, "val_CF1": 90.0}
    assert is_better(later, first, "mAP")  # the run: epoch 1 at mAP 100 no longer wins on the tie
    assert not is_better(first, later, "mAP")
    assert not is_better(dict(later), later, "mAP")  # equal on everything: the earlier epoch stays
    lower_map = {**later, "val_mAP": 99.0}
    assert is_better(lower_map, first, "loss") and not is_better(lower_map, first, "mAP")
    assert is_better({**first, "val_CF1": 95.0}, later, "CF1")
    assert is_better({**first, "val_mAP": None}, None, "mAP")  # the first epoch is kept whatever it holds
    assert is_better(later, {**first, "val_mAP": None}, "mAP")  # a missing figure ranks below a real one
    assert is_better({"val_mAP": None, "val_loss": 0.2}, {"val_mAP": None, "val_loss": 0.3}, "mAP")


@pytest.mark.parametrize("select_by", ["mAP", "loss", "CF1"])
def test_select_by_keeps_the_epoch_it_names(cli, easy, tmp_path, select_by):
    run = tmp_path / select_by
    result = _train(cli, easy, run, "--epochs", "5", "--select-by", select_by, "--no-tensorboard")
    assert result.exit_code == 0, result.output
    rows = _rows(run)
    if select_by == "mAP":  # the planted toy makes the mAP tie, so the test is about the tie-break
        assert sum(r["val_mAP"] == max(x["val_mAP"] for x in rows) for r in rows) >= 2, rows
    key = {"mAP": "val_mAP", "loss": "val_loss", "CF1": "val_CF1"}[select_by]
    sign = -1 if select_by == "loss" else 1
    # the highest metric, then the lowest loss, then the highest mAP, then the first epoch
    expected = max(rows, key=lambda r: (sign * r[key], -r["val_loss"], r["val_mAP"], -r["epoch"]))["epoch"]
    assert _best_epoch_in_weights(run) == expected
    assert rows[-1]["best_epoch"] == expected and all(r["select_by"] == select_by for r in rows)
    config = json.loads((run / "config.json").read_text())
    assert config["selection"]["select_by"] == select_by and config["selection"]["epoch"] == expected
    assert config["selection"]["val_loss"] == pytest.approx(rows[expected - 1]["val_loss"])
    assert f"at epoch {expected}" in result.stderr


def test_a_tie_on_map_is_not_won_by_the_first_epoch(cli, easy, tmp_path):
    run = tmp_path / "run"
    assert _train(cli, easy, run, "--epochs", "5", "--no-tensorboard").exit_code == 0
    rows = _rows(run)
    tied = [r for r in rows if r["val_mAP"] == max(x["val_mAP"] for x in rows)]
    assert len(tied) >= 2 and tied[0]["val_loss"] > min(r["val_loss"] for r in tied)
    assert _best_epoch_in_weights(run) == min(tied, key=lambda r: r["val_loss"])["epoch"] != tied[0]["epoch"]


def test_select_by_is_a_setting_of_the_run(cli, data, tmp_path):
    run = tmp_path / "run"
    assert _train(cli, data, run, "--epochs", "2", "--no-tensorboard").exit_code == 0
    line = one_line_error(cli("train", "--resume", run, "--epochs", "3", "--select-by", "loss"))
    assert "select_by = 'mAP', not 'loss'" in line


# ---------------------------------------------------------------------------------------------
# --resume RUN --epochs N

def test_resume_with_more_epochs_extends_a_finished_run(cli, data, tmp_path):
    straight, run = tmp_path / "straight", tmp_path / "run"
    assert _train(cli, data, straight, "--epochs", "4", "--no-tensorboard").exit_code == 0
    assert _train(cli, data, run, "--epochs", "2", "--no-tensorboard").exit_code == 0
    result = cli("train", "--resume", run, "--epochs", "4")
    assert result.exit_code == 0, result.output
    assert "resumed after epoch 2" in result.stderr
    rows, full = _rows(run), _rows(straight)
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    # epochs 3 and 4 follow the schedule of a 4-epoch run (timm's choice), not the 2-epoch one's floor
    assert rows[1]["lr"] < full[1]["lr"]
    assert [r["lr"] for r in rows[2:]] == pytest.approx([r["lr"] for r in full[2:]])
    args = json.loads((run / "args.json").read_text())
    assert args["config"]["epochs"] == 4 and args["extended"] == [{"from": 2, "to": 4}]
    # the extension is a run like any other: finished at 4, extended again, or resumed
    line = one_line_error(cli("train", "--resume", run))
    assert line == (f"Error: {run}: the run already finished its 4 epochs (evaluate it with `mlgraph evaluate "
                    f"{run}`, or extend it with `mlgraph train --resume {run} --epochs N`, N > 4)")


def test_resume_with_fewer_epochs_is_one_line(cli, data, tmp_path):
    run = tmp_path / "run"
    assert _train(cli, data, run, "--epochs", "3", "--no-tensorboard").exit_code == 0
    line = one_line_error(cli("train", "--resume", run, "--epochs", "2"))
    assert line == (f"Error: {run / 'args.json'}: this run was started with 3 epochs; --resume with --epochs only "
                    "extends a run (pass more than 3, or start a new run with `mlgraph train -o NEW_RUN`)")
    line = one_line_error(cli("train", "--resume", run, "--epochs", "3"))
    assert "already finished its 3 epochs" in line and f"--resume {run} --epochs N" in line


def test_an_interrupted_extension_resumes_on_the_extended_schedule(cli, data, tmp_path, monkeypatch):
    from mlgraph_cli.core.training import trainer as training

    straight, run = tmp_path / "straight", tmp_path / "run"
    assert _train(cli, data, straight, "--epochs", "5", "--schedule", "onecycle", "--no-tensorboard").exit_code == 0
    assert _train(cli, data, run, "--epochs", "2", "--schedule", "onecycle", "--no-tensorboard").exit_code == 0
    real = training._epoch_line

    def stop_after_three(row, epochs, label="epoch"):
        if row["epoch"] == 3:
            raise KeyboardInterrupt
        return real(row, epochs, label)

    monkeypatch.setattr(training, "_epoch_line", stop_after_three)
    assert cli("train", "--resume", run, "--epochs", "5").exit_code == 130
    monkeypatch.setattr(training, "_epoch_line", real)
    result = cli("train", "--resume", run)  # args.json now says 5: a plain resume goes on to 5
    assert result.exit_code == 0, result.output
    rows, full = _rows(run), _rows(straight)
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4, 5]
    assert [r["lr"] for r in rows[2:]] == pytest.approx([r["lr"] for r in full[2:]])


# ---------------------------------------------------------------------------------------------
# Ctrl-C during the probe start

def test_a_run_stopped_during_its_probe_start_resumes(cli, data, tmp_path, monkeypatch):
    let_runs_go_on = trainkit.interrupt_the_probe(monkeypatch)
    run = tmp_path / "run"
    result = _train(cli, data, run, "--epochs", "2", "--probe-epochs", "2", "--no-tensorboard")
    assert result.exit_code == 130 and "Traceback" not in result.output
    assert result.stderr.strip().splitlines()[-1] == (
        f"Interrupted: {run} has no finished epoch yet; start it again with `mlgraph train --resume {run}`")
    let_runs_go_on()
    result = cli("train", "--resume", run)
    assert result.exit_code == 0, result.output
    assert "no finished epoch to continue from; starting the run again with its saved settings" in result.stderr
    config = json.loads((run / "config.json").read_text())
    assert config["probe"]["epochs"] == 2 and [r["epoch"] for r in _rows(run)] == [1, 2]
    # the same as a run never interrupted
    again = tmp_path / "again"
    assert _train(cli, data, again, "--epochs", "2", "--probe-epochs", "2", "--no-tensorboard").exit_code == 0
    assert [r["val_mAP"] for r in _rows(again)] == pytest.approx([r["val_mAP"] for r in _rows(run)])


# ---------------------------------------------------------------------------------------------
# TensorBoard

def _scalars(run) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_tensorboard_event_files_hold_each_epoch(cli, data, tmp_path):
    pytest.importorskip("tensorboard")
    run = tmp_path / "runs" / "run"
    result = _train(cli, data, run, "--epochs", "2", "--tensorboard")
    assert result.exit_code == 0, result.output
    assert list(run.glob("events.out.tfevents.*"))
    assert f"TensorBoard log in {run}: open it with `tensorboard --logdir {run.parent}`" in result.stderr
    scalars, rows = _scalars(run), _rows(run)
    assert set(scalars) == {"loss/train", "loss/val", "val/mAP", "val/CF1", "val/OF1", "lr"}
    for tag, key in (("loss/train", "train_loss"), ("loss/val", "val_loss"), ("val/mAP", "val_mAP"), ("lr", "lr")):
        assert [s for s, _ in scalars[tag]] == [1, 2]
        assert [v for _, v in scalars[tag]] == pytest.approx([r[key] for r in rows], rel=1e-6)


def test_a_resumed_run_logs_each_epoch_once(cli, data, tmp_path):
    pytest.importorskip("tensorboard")
    run = tmp_path / "run"
    assert _train(cli, data, run, "--epochs", "2").exit_code == 0  # on by default when installed
    assert cli("train", "--resume", run, "--epochs", "3").exit_code == 0
    steps = [s for s, _ in _scalars(run)["val/mAP"]]
    assert steps == [1, 2, 3]
    assert math.isfinite(_scalars(run)["lr"][-1][1])


def test_without_the_package_nothing_changes_and_the_flag_says_what_to_install(cli, data, tmp_path, monkeypatch):
    from mlgraph_cli.core.training import eventlog

    monkeypatch.setattr(eventlog, "tensorboard_installed", lambda: False)
    line = one_line_error(_train(cli, data, tmp_path / "a", "--epochs", "1", "--tensorboard"))
    assert line == ("Error: --tensorboard: the tensorboard package is not installed (`pip install "
                    "'mlgraph[tensorboard]'`, or drop --tensorboard)")
    run = tmp_path / "b"
    result = _train(cli, data, run, "--epochs", "1")
    assert result.exit_code == 0 and "TensorBoard" not in result.stderr
    assert not list(run.glob("events.out.tfevents.*"))
