"""The query head, the converged probe and `--loss asl` through the commands users run: train,
evaluate, predict (with --explain), export (ONNX, checked with onnxruntime), on images and on video.

Images: 8 generated 64 px scenes through `mlgraph extract` (resnet18, random weights), as
tests/test_export.py does. Video: generated clips written in the layout of `mlgraph import-yt8m`.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import trainkit

LABELS = sorted(trainkit.SHAPES)
# (head, extra train flags): the query head with the asymmetric loss, the probe with its one fit
RUNS = [("query", ("--loss", "asl", "--asl-gamma-neg", "2")), ("probe", ())]


def _ok(*args) -> str:
    from mlgraph_cli.cli.app import app

    result = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("heads")
    ann = trainkit.make_images(root / "images", 8)
    _ok("extract", root / "images", "--annotations", ann, "-o", root / "features.h5", "--backbone", "resnet18",
        "--weights", "none", "--image-size", "64", "--workers", "0", "--device", "cpu", "-q")
    return {"root": root, "images": root / "images", "features": root / "features.h5",
            "embeddings": trainkit.write_embeddings(root / "emb.h5", labels=LABELS)}


@pytest.mark.parametrize("head, extra", RUNS, ids=[r[0] for r in RUNS])
def test_train_evaluate_predict_explain_export(images, head, extra, tmp_path):
    from mlgraph_cli.core.inference.export import onnx_input

    run = tmp_path / "run"
    out = _ok("train", "--features", images["features"], "--embeddings", images["embeddings"], "--head", head,
              "--epochs", "1", "--batch-size", "8", "--val-fraction", "0", "-o", run, "--device", "cpu", "-q", *extra)
    assert "Trained 1 epoch" in out
    config = json.loads((run / "config.json").read_text())
    assert config["head"]["name"] == head
    saved = json.loads((run / "args.json").read_text())["config"]
    assert saved["loss"] == ("asl" if extra else "bce") and saved["asl_gamma_neg"] == (2.0 if extra else 4.0)
    _ok("evaluate", run, "--features", images["features"], "-o", tmp_path / "eval.json")
    assert 0 <= json.loads((tmp_path / "eval.json").read_text())["mAP"] <= 100
    rows = [json.loads(line) for line in _ok("predict", images["images"], "--model", run, "--threshold", "0",
                                             "--format", "jsonl", "--explain", tmp_path / "explain").splitlines()
            if line.startswith("{")]
    assert len(rows) == 8 and len(list((tmp_path / "explain").glob("*.png"))) == 8
    onnx_path = tmp_path / "model.onnx"
    assert "onnxruntime matches torch" in _ok("export", run, "-o", onnx_path)
    import onnxruntime as ort

    card = json.loads(onnx_path.with_suffix(".json").read_text())
    pixels = np.stack([onnx_input(row["image"], card["image_size"]) for row in rows])
    probs = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).run(None, {"images": pixels})[0]
    for row, got in zip(rows, probs):
        expected = {item["label"]: item["score"] for item in row["labels"]}
        assert np.abs(got - np.array([expected[name] for name in card["labels"]])).max() <= 1e-3


def test_asl_on_a_fitted_head_is_one_line(images, tmp_path):
    from mlgraph_cli.cli.app import app

    result = CliRunner().invoke(app, ["train", "--features", str(images["features"]), "--head", "probe", "--loss",
                                      "asl", "-o", str(tmp_path / "run"), "--device", "cpu", "-q"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == (
        "Error: --loss asl: head probe is fitted by logistic regression, whose loss is the log loss (leave out "
        "--loss, or pick a head trained by SGD)")


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    """YouTube-8M frame records (tests/test_video_pipeline.py's generator) through `mlgraph import-yt8m`."""
    from test_video_pipeline import CLASSES, write_clips

    root = tmp_path_factory.mktemp("records")
    vocab = root / "vocabulary.csv"
    vocab.write_text("Index,TrainVideoCount,KnowledgeGraphId,Name\n"
                     + "".join(f"{i},9,/m/{i},{name}\n" for i, name in CLASSES.items()))
    val = write_clips(root / "val.tfrecord", 12, seed=2, rated=True)
    for name, source in (("train", write_clips(root / "train.tfrecord", 24, seed=0)), ("val", val)):
        _ok("import-yt8m", source, "-o", root / f"{name}.h5", "--vocabulary", vocab, "--max-frames", "10", "-q")
    return {"train": root / "train.h5", "val": root / "val.h5", "records": val,
            "embeddings": trainkit.write_embeddings(root / "emb.h5", labels=sorted(CLASSES.values()))}


@pytest.mark.parametrize("head, extra", RUNS, ids=[r[0] for r in RUNS])
def test_video_heads_train_evaluate_and_predict(records, head, extra, tmp_path):
    run = tmp_path / "run"
    _ok("train", "--features", records["train"], "--val-features", records["val"], "--embeddings",
        records["embeddings"], "--head", head, "--epochs", "2", "--batch-size", "8", "--lr", "0.003", "-o", run,
        "--device", "cpu", "-q", *extra)
    assert json.loads((run / "config.json").read_text())["head"]["name"] == f"video-{head}"
    _ok("evaluate", run, "--features", records["val"], "-o", tmp_path / "eval.json")
    assert 0 <= json.loads((tmp_path / "eval.json").read_text())["mAP"] <= 100
    out = tmp_path / "p.jsonl"
    _ok("predict", records["records"], "--model", run, "--segments", "--topk", "1", "--threshold", "0", "-o", out)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 12 and all(len(r["labels"]) == 1 and r["segments"] for r in rows)


# ---------------------------------------------------------------------------------------------
# --head-option KEY=VALUE and the TrainConfig settings that were mlgraph.toml-only

def test_head_option_values_read_as_toml_scalars():
    from mlgraph_cli.cli._options import key_values

    assert key_values(["groups=4", "init=random", "dropout=0.25", "gap_branch=false", 'name="a b"', "sizes=[1, 2]"],
                      "--head-option") == {"groups": 4, "init": "random", "dropout": 0.25, "gap_branch": False,
                                           "name": "a b", "sizes": [1, 2]}


def _error(*args) -> str:
    from conftest import one_line_error
    from mlgraph_cli.cli.app import app

    return one_line_error(CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"}))


@pytest.mark.parametrize("pair, expected", [
    ("nope=1", "Error: --head-option nope=1: head gap has no option 'nope' (valid keys: dropout; set with "
               "--head-option or [train] head_options)"),
    ("dropout", "Error: --head-option dropout: expected KEY=VALUE (e.g. --head-option hidden=512)"),
    ("dropout=2", "Error: --head-option: head 'gap': option dropout = 2 is not valid (a probability in [0, 1))"),
    ("dropout=abc", "Error: --head-option: head gap: a value of the wrong type in {'dropout': 'abc'} (could not "
                    "convert string to float: 'abc')"),
])
def test_a_bad_head_option_is_one_line(images, tmp_path, pair, expected):
    assert _error("train", "--features", images["features"], "--head", "gap", "--epochs", "1", "--head-option", pair,
                  "-o", tmp_path / "run", "--device", "cpu", "-q") == expected


def test_head_options_merge_over_the_project_and_more_settings_are_flags(images, tmp_path, monkeypatch):
    (tmp_path / "mlgraph.toml").write_text('[train]\nhead_options = { width = 16, dropout = 0.1 }\n')
    monkeypatch.chdir(tmp_path)
    _ok("train", "--features", images["features"], "--embeddings", images["embeddings"], "--head", "query",
        "--epochs", "1", "--batch-size", "8", "--val-fraction", "0", "-o", tmp_path / "run", "--device", "cpu", "-q",
        "--head-option", "dropout=0.2", "--head-option", "init=random", "--optimizer", "sgd", "--momentum", "0.5",
        "--min-lr-ratio", "0.1", "--no-shuffle")
    saved = json.loads((tmp_path / "run" / "args.json").read_text())["config"]
    assert saved["head_options"] == {"width": 16, "dropout": 0.2, "init": "random"}  # the flag wins key by key
    assert (saved["momentum"], saved["min_lr_ratio"], saved["shuffle"]) == (0.5, 0.1, False)
    head = json.loads((tmp_path / "run" / "config.json").read_text())["head"]
    assert (head["dropout"], head["init"]) == (0.2, "random")
