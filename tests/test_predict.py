"""`mlgraph predict`: formats, thresholds, explanations, skipped files, defaults and user mistakes.

One trained run is shared by the module: 16 generated 64 px images of coloured shapes, features
from a randomly initialised resnet18 (`--weights none`), a cma head trained for one epoch.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import trainkit
from conftest import one_line_error
from mlgraph_cli.core.inference.explain import CAPTION

LABELS = sorted(trainkit.SHAPES)


def _invoke(*args):
    from mlgraph_cli.cli.app import app

    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "100"})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("predict")
    ann = trainkit.make_images(root / "images", 16)
    feats = root / "features.h5"
    r = _invoke("extract", root / "images", "--annotations", ann, "-o", feats, "--backbone", "resnet18",
                "--weights", "none", "--image-size", "64", "--workers", "0", "--device", "cpu")
    assert r.exit_code == 0, r.output
    emb = trainkit.write_embeddings(root / "emb.h5", labels=LABELS)
    run = root / "runs" / "train" / "exp"
    r = _invoke("train", "--features", feats, "--embeddings", emb, "--epochs", "1", "--batch-size", "8",
                "--val-fraction", "0.25", "-o", run, "--device", "cpu")
    assert r.exit_code == 0, r.output
    r = _invoke("train", "--features", feats, "--head", "gap", "--epochs", "1", "--batch-size", "8",
                "--val-fraction", "0", "-o", root / "gap", "--device", "cpu")
    assert r.exit_code == 0, r.output
    yield {"root": root, "images": root / "images", "ann": ann, "features": feats, "run": run, "gap": root / "gap"}
    torch.set_num_threads(before)


def test_jsonl_lists_every_image_with_scores_highest_first(cli, trained, tmp_path):
    out = tmp_path / "p.jsonl"
    result = cli("predict", trained["images"], "--model", trained["run"], "--topk", "2", "--threshold", "0",
                 "-o", out)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [Path(r["image"]).name for r in rows] == [f"scene{i:03d}.png" for i in range(16)]
    for row in rows:
        assert len(row["labels"]) == 2
        scores = [item["score"] for item in row["labels"]]
        assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
        assert {item["label"] for item in row["labels"]} <= set(LABELS)


def test_scores_equal_the_head_on_cached_features(cli, trained, tmp_path):
    """Image -> backbone rebuilt from the run -> head gives what the head gives on the features file."""
    import torch

    from mlgraph_cli.core.features.file import open_features
    from mlgraph_cli.core.inference.run import load_run

    result = cli("predict", trained["images"], "--model", trained["run"], "--threshold", "0", "--format", "jsonl")
    assert result.exit_code == 0, result.output
    by_image = {Path(r["image"]).name: {i["label"]: i["score"] for i in r["labels"]}
                for r in map(json.loads, result.stdout.splitlines())}
    ff = open_features(trained["features"])
    run = load_run(trained["run"])
    with torch.no_grad():
        probs = torch.sigmoid(run.model(torch.from_numpy(ff.read(slice(None))))).numpy()
    for i, name in enumerate(ff.files):
        got = np.array([by_image[Path(name).name][label] for label in run.label_names])
        assert np.allclose(got, probs[i], atol=2e-3), name  # features are stored as float16


def test_threshold_and_topk_must_both_pass(cli, trained):
    result = cli("predict", trained["images"] / "scene000.png", "--model", trained["run"], "--threshold", "0.999",
                 "--format", "jsonl")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["labels"] == []
    result = cli("predict", trained["images"] / "scene000.png", "--model", trained["run"], "--topk", "1",
                 "--threshold", "0", "--format", "jsonl")
    assert len(json.loads(result.stdout)["labels"]) == 1


def test_csv_and_table(cli, trained):
    result = cli("predict", trained["images"], "--model", trained["run"], "--format", "csv", "--topk", "3",
                 "--threshold", "0")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 16 * 3
    assert rows[0].keys() == {"image", "rank", "label", "score"}
    assert [r["rank"] for r in rows[:3]] == ["1", "2", "3"]
    result = cli("predict", trained["images"], "--model", trained["run"], "--topk", "1", "--threshold", "0")
    assert result.exit_code == 0, result.output
    assert "scene015.png" in result.stdout and "labels (score)" in result.stdout


def test_explain_writes_one_png_per_image_with_a_panel_per_label(cli, trained, tmp_path):
    from PIL import Image

    out = tmp_path / "explain"
    result = cli("predict", trained["images"], "--model", trained["run"], "--topk", "2", "--threshold", "0",
                 "--explain", out)
    assert result.exit_code == 0, result.output
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) == 16
    assert pngs[0].name == "scene000.png.png"  # the source's suffix kept
    with Image.open(pngs[0]) as im:
        assert im.size == (2 * 256, 256 + CAPTION)  # two panels of the 64 px image scaled to 256, caption strip


def test_explain_falls_back_to_class_activation_maps(cli, trained, tmp_path):
    import torch

    from mlgraph_cli.core.inference.explain import explanation_maps
    from mlgraph_cli.core.inference.run import load_run

    out = tmp_path / "cam"
    result = cli("predict", trained["images"] / "scene001.png", "--model", trained["gap"], "--topk", "1",
                 "--threshold", "0", "--explain", out)
    assert result.exit_code == 0, result.output
    assert (out / "scene001.png.png").is_file()
    # for gap, the per-location logits average to the image logits (CAM is linear)
    head = load_run(trained["gap"]).model.head
    x = torch.randn(2, head.in_channels, 3, 3)
    with torch.no_grad():
        assert torch.allclose(explanation_maps(head, x).mean(dim=(2, 3)), head(x), atol=1e-5)


def test_unreadable_files_are_reported_and_skipped(cli, trained, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copy(trained["images"] / "scene000.png", folder / "good.png")
    (folder / "broken.jpg").write_bytes(b"not a jpeg at all")
    result = cli("predict", folder, "--model", trained["run"], "--format", "jsonl")
    assert result.exit_code == 0, result.output
    assert [Path(json.loads(x)["image"]).name for x in result.stdout.splitlines()] == ["good.png"]
    assert "Skipped 1 unreadable file(s)" in result.stderr and "broken.jpg" in result.stderr


def test_default_model_is_the_latest_run(cli, trained, monkeypatch):
    monkeypatch.chdir(trained["root"])  # holds runs/train/exp
    result = cli("predict", "images", "--topk", "5")
    assert result.exit_code == 0, result.output
    assert "runs/train/exp" in result.stderr


# ---------------------------------------------------------------------------------------------
# User mistakes

def test_empty_folder(cli, trained, tmp_path):
    (tmp_path / "empty").mkdir()
    line = one_line_error(cli("predict", tmp_path / "empty", "--model", trained["run"]))
    assert f"{tmp_path / 'empty'}: no images found" in line


def test_run_dir_without_config(cli, tmp_path):
    (tmp_path / "img").mkdir()
    trainkit.make_images(tmp_path / "img", 1)
    (tmp_path / "notarun").mkdir()
    line = one_line_error(cli("predict", tmp_path / "img", "--model", tmp_path / "notarun"))
    assert line == (f"Error: {tmp_path / 'notarun'}: no config.json in this folder, so it is not a finished or "
                    "started training run (make a run with `mlgraph train`)")


def test_no_run_anywhere(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    trainkit.make_images(tmp_path / "img", 1)
    line = one_line_error(cli("predict", "img"))
    assert "no trained run found" in line and "mlgraph train" in line


def test_weights_of_another_head(cli, trained, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained["run"], run)
    shutil.copy(trained["gap"] / "best.safetensors", run / "best.safetensors")
    line = one_line_error(cli("predict", trained["images"], "--model", run))
    assert f"{run / 'best.safetensors'}: these weights do not fit the 'cma' head" in line
    assert "mlgraph train" in line


def test_image_size_the_backbone_cannot_take(cli, trained):
    line = one_line_error(cli("predict", trained["images"], "--model", trained["run"], "--image-size", "8"))
    assert "--image-size 8" in line and "too small" in line


def test_bad_topk_and_format(cli, trained, tmp_path):
    line = one_line_error(cli("predict", trained["images"], "--model", trained["run"], "--topk", "0"))
    assert "--topk 0" in line
    line = one_line_error(cli("predict", trained["images"], "--model", trained["run"], "--format", "table",
                              "-o", tmp_path / "x.txt"))
    assert "--format table" in line


# ---------------------------------------------------------------------------------------------
# Settings: [predict] in mlgraph.toml, --threads, --threshold tuned

def test_predict_table_of_the_project_sets_defaults_and_flags_win(cli, trained, tmp_path, monkeypatch):
    (tmp_path / "mlgraph.toml").write_text("[predict]\ntopk = 1\nthreshold = 0.0\n")
    monkeypatch.chdir(tmp_path)
    args = ("predict", trained["images"] / "scene000.png", "--model", trained["run"], "--format", "jsonl")
    assert len(json.loads(cli(*args).stdout)["labels"]) == 1
    assert len(json.loads(cli(*args, "--topk", "2").stdout)["labels"]) == 2
    (tmp_path / "mlgraph.toml").write_text("[predict]\ntopkk = 1\n")
    line = one_line_error(cli(*args))
    assert "unknown key(s) in [predict]: topkk" in line and "mlgraph.toml" in line


def test_threads_are_set_for_the_run_and_given_back():
    import torch

    from mlgraph_cli.core.inference.config import auto_threads
    from mlgraph_cli.stages.predict import torch_threads

    before = torch.get_num_threads()
    with torch_threads(3, 100) as n:
        assert n == 3 and torch.get_num_threads() == 3
    assert torch.get_num_threads() == before
    assert auto_threads(1, 16) == 1 and auto_threads(100, 2) == 2 and auto_threads(100, 64) == 4
    assert auto_threads(100, 2, load=6.0) == 1 and auto_threads(100, 8, load=5.2) == 3  # busy cores left alone


def test_predict_runs_no_probe_forward_pass(trained, monkeypatch):
    """The backbone's map shapes come from config.json: no blank image goes through it to learn them."""
    from mlgraph_cli.core.features.backbones import build
    from mlgraph_cli.core.inference.run import load_run

    def no_probe(*args, **kwargs):
        raise AssertionError("probe forward pass")

    monkeypatch.setattr(build, "_probe", no_probe)
    run = load_run(trained["run"], with_backbone=True)
    assert run.model.backbone.out_shapes["features"][0] == run.model.head.in_channels


def _with_thresholds(run: Path, dest: Path, thresholds) -> Path:
    """A copy of ``run`` whose config.json holds these per-label thresholds (None: none chosen)."""
    shutil.copytree(run, dest)
    config = json.loads((dest / "config.json").read_text())
    config["thresholds"] = thresholds
    (dest / "config.json").write_text(json.dumps(config))
    return dest


def test_threshold_tuned_uses_the_runs_per_label_thresholds(cli, trained, tmp_path, monkeypatch):
    base = cli("predict", trained["images"], "--model", trained["run"], "--threshold", "0", "--format", "jsonl")
    scores = [{i["label"]: i["score"] for i in json.loads(line)["labels"]} for line in base.stdout.splitlines()]
    names = sorted(scores[0])
    config = json.loads((trained["run"] / "config.json").read_text())
    # per label: the median score over the images, so each label is kept for some images and not others
    cuts = [float(np.median([s[n] for s in scores])) for n in config["labels"]]
    run = _with_thresholds(trained["run"], tmp_path / "tuned", cuts)
    result = cli("predict", trained["images"], "--model", run, "--threshold", "tuned", "--format", "jsonl")
    assert result.exit_code == 0, result.output
    cut = dict(zip(config["labels"], cuts))
    for line, s in zip(result.stdout.splitlines(), scores):
        expected = {n for n in names if s[n] >= cut[n]}
        assert {i["label"] for i in json.loads(line)["labels"]} == expected
    assert "threshold tuned" in result.stderr


def test_threshold_tuned_without_tuned_thresholds(cli, trained, tmp_path):
    run = _with_thresholds(trained["run"], tmp_path / "untuned", None)  # a run that had no validation split
    line = one_line_error(cli("predict", trained["images"], "--model", run, "--threshold", "tuned"))
    assert line == (f"Error: {run / 'config.json'}: no tuned thresholds (the run had no validation split, or was "
                    "trained before they existed) (re-train with a validation split, e.g. `mlgraph train "
                    "--val-features F.h5`, or pass --threshold 0.5)")


def test_threshold_that_is_neither_a_probability_nor_tuned(cli, trained):
    line = one_line_error(cli("predict", trained["images"], "--model", trained["run"], "--threshold", "high"))
    assert line == "Error: --threshold high: must be a probability between 0 and 1, or 'tuned'"


# ---------------------------------------------------------------------------------------------
# Outputs never destroy inputs; nothing readable is an error

def test_explain_into_the_input_folder_keeps_every_input(cli, trained, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    src = trained["images"] / "scene000.png"
    from PIL import Image

    with Image.open(src) as im:
        im.convert("RGB").save(folder / "photo.jpg")
        im.save(folder / "anim.gif")
        im.save(folder / "anim.webp")
    shutil.copy(trained["images"] / "scene001.png", folder / "photo.png")
    shutil.copy(trained["images"] / "scene002.png", folder / "photo.jpg.png")  # where photo.jpg's sheet would go
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    result = cli("predict", folder, "--model", trained["run"], "--explain", folder, "--threshold", "0", "--topk", "1")
    assert result.exit_code == 0, result.output
    assert all((folder / name).read_bytes() == data for name, data in before.items())  # no input touched
    made = sorted(set(p.name for p in folder.iterdir()) - set(before))
    # photo.jpg.png is itself an input, so its sheet is photo.jpg.png.png; photo.jpg's goes to photo.jpg-2.png
    assert made == ["anim.gif.png", "anim.webp.png", "photo.jpg-2.png", "photo.jpg.png.png", "photo.png.png"]
    assert "5 explanation PNG(s)" in result.stderr


def test_explain_target_that_is_a_file(cli, trained, tmp_path):
    target = tmp_path / "sheet.png"
    target.write_bytes(b"x")
    line = one_line_error(cli("predict", trained["images"], "--model", trained["run"], "--explain", target))
    assert line == (f"Error: {target}: is a file, and --explain writes one PNG per image into a folder (pass a "
                    "folder name to --explain)")


def test_output_that_is_an_input(cli, trained, tmp_path):
    image = tmp_path / "a.png"
    shutil.copy(trained["images"] / "scene000.png", image)
    before = image.read_bytes()
    line = one_line_error(cli("predict", image, "--model", trained["run"], "-o", image, "--format", "jsonl"))
    assert f"{image}: is also an input of this command" in line and "-o" in line
    assert image.read_bytes() == before


def test_nothing_readable_is_an_error(cli, trained, tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(b"not a jpeg")
    (folder / "b.png").write_bytes(b"not a png either")
    line = one_line_error(cli("predict", folder, "--model", trained["run"], "--format", "jsonl"))
    assert line.startswith(f"Error: {folder / 'a.jpg'}: no readable image among the inputs (")
    assert "1 more skipped" in line


def test_predict_on_images_imports_nothing_it_does_not_need(trained, tmp_path):
    """Start-up is most of a one-image predict: annotation readers (and scipy behind them) stay out."""
    import subprocess
    import sys

    code = ("import sys\nfrom mlgraph_cli.cli.app import main\nsys.argv = ['mlgraph', 'predict', sys.argv[1], "
            "'--model', sys.argv[2], '--format', 'jsonl', '-q']\ntry:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('scipy', 'mlgraph_cli.core.annotations', 'h5py') if m in sys.modules))")
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code, str(trained["images"] / "scene000.png"), str(trained["run"])],
                         capture_output=True, text=True, cwd=root, env={"PYTHONPATH": str(root), "PATH": ""})
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "[]"
