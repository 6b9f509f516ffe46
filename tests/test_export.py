"""`mlgraph export`: the ONNX graph gives `mlgraph predict`'s scores, its card, and user mistakes.

One run is shared by the module: 8 generated 64 px images of coloured shapes, features from a
randomly initialised resnet18 (`--weights none`), a cma head trained for one epoch, exported once.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import trainkit
from conftest import one_line_error

LABELS = sorted(trainkit.SHAPES)


def _invoke(*args):
    from mlgraph_cli.cli.app import app

    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})


def _digests(folder: Path) -> dict[str, str]:
    from mlgraph_cli.core.io.artifacts import file_digest

    return {p.name: file_digest(p) for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    ann = trainkit.make_images(root / "images", 8)
    feats = root / "features.h5"
    r = _invoke("extract", root / "images", "--annotations", ann, "-o", feats, "--backbone", "resnet18",
                "--weights", "none", "--image-size", "64", "--workers", "0", "--device", "cpu")
    assert r.exit_code == 0, r.output
    emb = trainkit.write_embeddings(root / "emb.h5", labels=LABELS)
    run = root / "run"
    r = _invoke("train", "--features", feats, "--embeddings", emb, "--epochs", "1", "--batch-size", "8",
                "--val-fraction", "0", "-o", run, "--device", "cpu")
    assert r.exit_code == 0, r.output
    before = _digests(run)
    onnx_path = run / "model.onnx"  # inside the run: the run's own files must stay as they were
    r = _invoke("export", run, "-o", onnx_path)
    assert r.exit_code == 0, r.output
    return {"root": root, "images": root / "images", "run": run, "onnx": onnx_path, "before": before,
            "output": r.output}


def _session(path):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_onnxruntime_gives_the_scores_of_mlgraph_predict(cli, exported):
    from mlgraph_cli.core.inference.export import onnx_input

    result = cli("predict", exported["images"], "--model", exported["run"], "--threshold", "0", "--format", "jsonl")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    card = json.loads(exported["onnx"].with_suffix(".json").read_text())
    size = card["image_size"]
    pixels = np.stack([onnx_input(row["image"], size) for row in rows])  # (N, 3, S, S) RGB 0-255
    assert pixels.dtype == np.float32 and pixels.shape == (len(rows), 3, size, size) and pixels.max() > 1
    probs = _session(exported["onnx"]).run(["probabilities"], {"images": pixels})[0]  # (N, C)
    assert probs.shape == (len(rows), len(card["labels"]))
    for row, got in zip(rows, probs):
        expected = {item["label"]: item["score"] for item in row["labels"]}
        assert np.abs(got - np.array([expected[name] for name in card["labels"]])).max() <= 1e-3, row["image"]


def test_the_batch_axis_is_dynamic(exported):
    from mlgraph_cli.core.inference.export import onnx_input

    images = sorted(exported["images"].glob("*.png"))
    pixels = np.stack([onnx_input(p, 64) for p in images])
    session = _session(exported["onnx"])
    assert session.get_inputs()[0].shape[0] == "batch"
    whole = session.run(None, {"images": pixels})[0]
    one = session.run(None, {"images": pixels[:1]})[0]
    assert whole.shape == (len(images), 3) and one.shape == (1, 3)
    assert np.allclose(one[0], whole[0], atol=1e-5)


def test_card_describes_labels_size_thresholds_and_the_run(exported):
    from mlgraph_cli import __version__
    from mlgraph_cli.core.io.artifacts import file_digest

    card = json.loads(exported["onnx"].with_suffix(".json").read_text())
    run = exported["run"]
    config = json.loads((run / "config.json").read_text())
    assert card["schema"] == "mlgraph/onnx-model@1" and card["mlgraph_version"] == __version__
    assert card["labels"] == config["labels"] == LABELS
    assert card["image_size"] == 64 and card["threshold"] == config["threshold"]
    assert card["thresholds"] is None  # this run has no per-label thresholds
    assert card["preprocessing"]["in_graph"]["mean"] == config["backbone"]["preprocessing"]["mean"]
    assert card["preprocessing"]["before_graph"]["resize"] == "stretch"
    assert card["run"]["config_sha256"] == file_digest(run / "config.json")
    assert card["model_sha256"] == file_digest(exported["onnx"])
    assert card["check"]["onnxruntime_max_abs_diff"] < 1e-4
    assert "onnxruntime matches torch" in exported["output"]


def test_graph_carries_the_card_as_metadata(exported):
    meta = _session(exported["onnx"]).get_modelmeta().custom_metadata_map
    assert json.loads(meta["mlgraph"])["labels"] == LABELS


def test_export_never_touches_the_run_files(exported):
    after = _digests(exported["run"])
    assert {k: after[k] for k in exported["before"]} == exported["before"]
    assert set(after) - set(exported["before"]) == {"model.onnx", "model.json"}


def test_per_label_thresholds_go_on_the_card_by_label():
    from mlgraph_cli.core.inference.export import per_label_thresholds

    labels = ["a", "b"]
    assert per_label_thresholds({"thresholds": [0.2, 0.6]}, labels) == {"a": 0.2, "b": 0.6}
    assert per_label_thresholds({"thresholds": None, "threshold": 0.5}, labels) is None


@pytest.mark.parametrize("mean,std", [((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)), ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
def test_in_graph_normalisation_equals_the_runs_preprocessing(mean, std):
    """TF-Lite's (x/255 - 0.5)/0.5 (EfficientNet-Lite0) and ImageNet mean/std (torchvision)."""
    import torch
    from PIL import Image

    from mlgraph_cli.core.features.backbones.preprocess import Preprocess
    from mlgraph_cli.core.inference.export import PixelsToProbabilities, onnx_input

    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8))
    pre = Preprocess(size=16, mean=mean, std=std)
    seen = []
    wrapper = PixelsToProbabilities(lambda x: seen.append(x) or x.mean(dim=(2, 3)), scale=pre.scale, mean=mean, std=std)
    wrapper(torch.from_numpy(onnx_input(image, 16))[None])
    assert torch.allclose(seen[0][0], pre(image), atol=1e-5)


@pytest.mark.parametrize("case,expected", [
    ("suffix", "{run}/best.safetensors: an ONNX file name must end in .onnx (pass e.g. -o {run}/best.onnx)"),
    ("card", "{run}/config.json: exists and is not a card of an earlier `mlgraph export`, and the card of "
             "config.onnx would replace it (pick another -o name)"),
    ("folder", "{tmp}: is a folder (pass a file name, e.g. -o {tmp}/model.onnx)"),
    ("stdout", "-o -: an ONNX graph is binary (pass a file name, e.g. -o model.onnx)"),
])
def test_destination_mistakes(cli, exported, tmp_path, case, expected):
    run = exported["run"]
    output = {"suffix": run / "best.safetensors", "card": run / "config.onnx", "folder": tmp_path, "stdout": "-"}[case]
    before = _digests(run)
    line = one_line_error(cli("export", run, "-o", output))
    assert line == "Error: " + expected.format(run=run, tmp=tmp_path)
    assert _digests(run) == before


def test_not_a_run(cli, tmp_path):
    line = one_line_error(cli("export", tmp_path / "nothing", "-o", tmp_path / "m.onnx"))
    assert line.startswith(f"Error: {tmp_path / 'nothing'}: no such run directory")


def test_without_the_export_extra_one_line_says_what_to_install(cli, exported, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # import onnxscript now raises ImportError
    line = one_line_error(cli("export", exported["run"], "-o", tmp_path / "m.onnx"))
    assert line == 'Error: exporting to ONNX needs onnxscript, which is not installed (pip install "mlgraph[export]")'
    assert list(tmp_path.iterdir()) == []


def test_a_failed_export_leaves_no_file_behind(cli, exported, tmp_path, monkeypatch):
    from mlgraph_cli.core.inference import export as core_export

    def broken(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(core_export, "export_onnx", broken)
    result = cli("export", exported["run"], "-o", tmp_path / "m.onnx")
    assert result.exit_code == 130
    assert list(tmp_path.iterdir()) == []
