"""`mlgraph make-dataset fashion-scenes`: files, COCO validity, determinism, structure, errors."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import one_line_error
from mlgraph_cli.core.datasets import fashion_mnist as fm
from mlgraph_cli.core.datasets.fashion_mnist import LABELS, load_source, read_idx, write_idx
from mlgraph_cli.core.datasets.outfits import DEFAULT_OUTFITS, LabelSetConfig, cooccurrence_stats, sample_label_sets
from mlgraph_cli.core.datasets.scenes import SceneConfig, compose, render_background
from mlgraph_cli.errors import InputError, MlgraphError

SMALL = ("--train", "20", "--val", "5", "--test", "5")


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """One small dataset made through the CLI, shared by the read-only checks."""
    from typer.testing import CliRunner

    from mlgraph_cli.cli.app import app

    out = tmp_path_factory.mktemp("made") / "fashion"
    result = CliRunner().invoke(app, ["make-dataset", "fashion-scenes", str(out), *SMALL, "--seed", "3"])
    assert result.exit_code == 0, result.output
    return out, result


# ---------------------------------------------------------------------------------------------
# the made folder

def test_layout_and_summary(made):
    out, result = made
    for split, n in (("train", 20), ("val", 5), ("test", 5)):
        images = sorted((out / "images" / split).glob("*.jpg"))
        assert [p.name for p in images] == [f"{i:06d}.jpg" for i in range(1, n + 1)]
        assert (out / "annotations" / f"{split}.json").is_file()
    assert (out / "fashion-scenes.json").is_file()
    assert "MIT" in (out / "LICENSE-fashion-mnist.txt").read_text()
    said = " ".join(result.stderr.split())  # rich wraps the summary to the terminal
    assert "train 20, val 5, test 5 scenes" in said
    assert "Labels (10): t-shirt, trouser, pullover, dress, coat, sandal, shirt, sneaker, bag, ankle boot." in said
    assert "mlgraph build-graph" in said


def test_coco_json_is_valid(made):
    out, _ = made
    for split, n in (("train", 20), ("val", 5), ("test", 5)):
        doc = json.loads((out / "annotations" / f"{split}.json").read_text())
        assert set(doc) >= {"info", "licenses", "images", "annotations", "categories"}
        assert [c["name"] for c in doc["categories"]] == list(LABELS)
        assert [c["id"] for c in doc["categories"]] == list(range(1, 11))
        assert len(doc["images"]) == n
        ids = {im["id"] for im in doc["images"]}
        per_image: dict[int, list[int]] = {}
        for ann in doc["annotations"]:
            assert ann["image_id"] in ids and 1 <= ann["category_id"] <= 10
            per_image.setdefault(ann["image_id"], []).append(ann["category_id"])
        # every scene has 1-4 items, each label at most once
        assert set(per_image) == ids
        assert all(1 <= len(c) <= 4 and len(set(c)) == len(c) for c in per_image.values())
        for im in doc["images"]:
            with Image.open(out / "images" / split / im["file_name"]) as img:
                assert img.format == "JPEG" and img.mode == "RGB"
                assert img.size == (im["width"], im["height"]) == (224, 224)


def test_every_box_within_canvas(made):
    out, _ = made
    for split in ("train", "val", "test"):
        doc = json.loads((out / "annotations" / f"{split}.json").read_text())
        size = {im["id"]: (im["width"], im["height"]) for im in doc["images"]}
        for ann in doc["annotations"]:
            x, y, w, h = ann["bbox"]
            width, height = size[ann["image_id"]]
            assert x >= 0 and y >= 0 and w > 0 and h > 0
            assert x + w <= width and y + h <= height
            assert 0 < ann["area"] <= w * h


def test_project_file_names_every_split(made):
    from mlgraph_cli.core.project import load_project

    out, _ = made
    project = load_project(out / "mlgraph.toml")
    assert project.dataset["format"] == "coco"
    for key in ("annotations", "val_annotations", "test_annotations", "images", "val_images", "test_images"):
        assert project.dataset_path(key).exists(), key


def test_annotations_load_with_the_coco_reader(made):
    annotations = pytest.importorskip("mlgraph_cli.core.annotations")
    if not hasattr(annotations, "load_annotations"):
        pytest.skip("core.annotations.load_annotations not written yet")
    out, _ = made
    loaded = annotations.load_annotations(out / "annotations" / "train.json")
    doc = json.loads((out / "annotations" / "train.json").read_text())
    assert sorted(getattr(loaded, "labels", LABELS)) == sorted(LABELS)
    assert len(getattr(loaded, "ids", doc["images"])) == len(doc["images"])


# ---------------------------------------------------------------------------------------------
# determinism

def test_same_seed_same_bytes_other_seed_other_images(cli, tmp_path):
    args = ("--train", "4", "--val", "2", "--test", "2", "--size", "96")
    for name, seed in (("a", "7"), ("b", "7"), ("c", "8")):
        assert cli("make-dataset", "fashion-scenes", tmp_path / name, *args, "--seed", seed).exit_code == 0
    a, b, c = (files_of(tmp_path / n) for n in "abc")
    assert a == b
    assert a.keys() == c.keys()
    assert all(a[k] != c[k] for k in a if k.endswith(".jpg"))


def test_val_and_test_scenes_do_not_depend_on_train_count(cli, tmp_path):
    args = ("--val", "2", "--test", "2", "--size", "96")
    assert cli("make-dataset", "fashion-scenes", tmp_path / "a", "--train", "2", *args).exit_code == 0
    assert cli("make-dataset", "fashion-scenes", tmp_path / "b", "--train", "5", *args).exit_code == 0
    a, b = files_of(tmp_path / "a"), files_of(tmp_path / "b")
    held_out = [k for k in a if k.startswith(("images/val", "images/test"))]
    assert len(held_out) == 4 and all(a[k] == b[k] for k in held_out)


# ---------------------------------------------------------------------------------------------
# label sets and composition, without writing files

def test_outfit_partners_cooccur_more_than_chance():
    sets = sample_label_sets(3000, LABELS, LabelSetConfig(), seed=0)
    assert all(1 <= len(s) <= 4 and len(set(s)) == len(s) for s in sets)
    marginal, conditional = cooccurrence_stats(sets, len(LABELS))
    index = {name: i for i, name in enumerate(LABELS)}
    for outfit in DEFAULT_OUTFITS:
        members = [index[m] for m in outfit.items]
        for i in members:
            for j in members:
                if i != j:
                    assert conditional[i, j] > marginal[j] + 0.03, (outfit.name, LABELS[i], LABELS[j])
    # labels that never share an outfit co-occur less than chance
    assert conditional[index["t-shirt"], index["coat"]] < marginal[index["coat"]]
    assert conditional[index["dress"], index["sneaker"]] < marginal[index["sneaker"]]


def test_boxes_match_what_was_painted():
    source = load_source(None)
    config = SceneConfig()
    for seed in range(6):
        rng = np.random.default_rng(seed)
        background = render_background(rng, 224, config)
        items = [source.images[seed * 97 + k * 11] for k in range(1 + seed % 4)]
        scene, placed = compose(rng, background, items, config)
        changed = (scene != background).any(axis=2)
        inside = np.zeros_like(changed)
        for p in placed:
            x, y, w, h = p.box
            assert 0 <= x and 0 <= y and x + w <= 224 and y + h <= 224
            assert changed[y:y + h, x:x + w].any()
            inside[y:y + h, x:x + w] = True
        assert not (changed & ~inside).any()  # nothing painted outside the boxes
        if len(placed) == 1:  # alone, the box is exactly the painted region
            ys, xs = np.nonzero(changed)
            assert placed[0].box == (xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)


def test_bundled_subset_is_balanced_and_split():
    source = load_source(None)
    assert source.images.shape[1:] == (28, 28) and source.images.dtype == np.uint8
    assert np.bincount(source.labels, minlength=10).tolist() == [400] * 10
    assert np.bincount(source.part).tolist() == [2800, 1200]
    assert fm.BUNDLED.stat().st_size < 3_000_000
    assert fm.BUNDLED_LICENSE.is_file()


# ---------------------------------------------------------------------------------------------
# idx files and --source

def idx_bytes(array: np.ndarray, code: int) -> bytes:
    """An idx file written by hand (not by write_idx), so the reader is checked independently."""
    return bytes([0, 0, code, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape) + array.tobytes()


def test_read_idx_plain_and_gzip(tmp_path):
    images = np.arange(3 * 28 * 28, dtype=np.uint8).reshape(3, 28, 28)
    (tmp_path / "plain").write_bytes(idx_bytes(images, 0x08))
    (tmp_path / "packed.gz").write_bytes(gzip.compress(idx_bytes(images, 0x08)))
    ints = np.array([1, -2, 70000], dtype=">i4")
    (tmp_path / "ints").write_bytes(idx_bytes(ints, 0x0C))
    assert np.array_equal(read_idx(tmp_path / "plain"), images)
    assert np.array_equal(read_idx(tmp_path / "packed.gz"), images)
    assert read_idx(tmp_path / "ints").tolist() == [1, -2, 70000]
    write_idx(tmp_path / "again", images, compress=True)
    assert np.array_equal(read_idx(tmp_path / "again"), images)


@pytest.mark.parametrize("content, what", [
    (b"\x00\x00\x08", "not an idx file (magic bytes 000008)"),
    (b"PK\x03\x04rest", "not an idx file (magic bytes 504b0304)"),
    (bytes([0, 0, 8, 3]) + (2).to_bytes(4, "big"), "truncated idx header (8 bytes for 3 dimensions)"),
    (bytes([0, 0, 8, 1]) + (5).to_bytes(4, "big") + b"abc",
     "idx size mismatch: shape (5,) needs 13 bytes, found 11"),
    (gzip.compress(b"\x00" * 100)[:20], "corrupt gzip data"),
])
def test_corrupt_idx_is_one_line_error(tmp_path, content, what):
    bad = tmp_path / "bad-idx"
    bad.write_bytes(content)
    with pytest.raises(InputError) as info:
        read_idx(bad)
    message = str(info.value)
    assert message.startswith(f"{bad}: {what}")
    assert "apt-get install --reinstall dataset-fashion-mnist" in message and "\n" not in message


def tiny_release(folder: Path, per_class: int = 2, *, gz: bool = True) -> Path:
    """A miniature Fashion-MNIST: ``per_class`` random photographs per class in each part."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for part in ("train", "t10k"):
        labels = np.repeat(np.arange(10, dtype=np.uint8), per_class)
        images = np.zeros((len(labels), 28, 28), dtype=np.uint8)
        images[:, 6:22, 8:20] = rng.integers(60, 256, size=(len(labels), 16, 12), dtype=np.uint8)
        write_idx(folder / (fm.IDX_FILES[(part, "images")] + (".gz" if gz else "")), images, compress=gz)
        write_idx(folder / fm.IDX_FILES[(part, "labels")], labels)
    return folder


def test_source_folder_of_idx_files(cli, tmp_path):
    source = tiny_release(tmp_path / "release")
    out = tmp_path / "out"
    result = cli("make-dataset", "fashion-scenes", out, "--train", "3", "--val", "2", "--test", "2",
                 "--size", "96", "--source", source)
    assert result.exit_code == 0, result.output
    assert f"Fashion-MNIST idx files in {source}" in " ".join(result.stderr.split())
    doc = json.loads((out / "annotations" / "test.json").read_text())
    # test scenes use only the second half of each class's t10k photographs
    assert {a["fashion_mnist"]["part"] for a in doc["annotations"]} == {"t10k"}
    assert {a["fashion_mnist"]["index"] % 2 for a in doc["annotations"]} == {1}


def test_source_with_missing_idx_file(cli, tmp_path):
    source = tiny_release(tmp_path / "release")
    (source / "t10k-labels-idx1-ubyte").unlink()
    line = one_line_error(cli("make-dataset", "fashion-scenes", tmp_path / "out", "--source", source))
    assert line == (f"Error: {source / 't10k-labels-idx1-ubyte'}: no such file (nor .gz) (pass --source a folder "
                    "holding the four Fashion-MNIST idx files, or `--source debian`)")


def test_source_with_corrupt_idx_file(cli, tmp_path):
    source = tiny_release(tmp_path / "release")
    target = source / "train-images-idx3-ubyte.gz"
    target.write_bytes(target.read_bytes()[:40])
    line = one_line_error(cli("make-dataset", "fashion-scenes", tmp_path / "out", "--source", source))
    assert line.startswith(f"Error: {target}: corrupt gzip data")
    assert not (tmp_path / "out").exists()


def test_source_that_does_not_exist(cli, tmp_path):
    line = one_line_error(cli("make-dataset", "fashion-scenes", tmp_path / "out", "--source", tmp_path / "nope"))
    assert line == (f"Error: {tmp_path / 'nope'}: no such folder (pass --source debian, a folder of the four "
                    "Fashion-MNIST idx files, or leave it out)")


def test_source_debian_not_installed(monkeypatch):
    monkeypatch.setattr(fm.shutil, "which", lambda name: "/usr/bin/dpkg")
    monkeypatch.setattr(fm.subprocess, "run",
                        lambda *a, **k: subprocess.CompletedProcess(a, 1, "", "not installed"))
    with pytest.raises(MlgraphError) as info:
        load_source("debian")
    assert str(info.value) == ("--source debian: the dataset-fashion-mnist package is not installed (run "
                               "`apt-get install dataset-fashion-mnist`, or leave out --source to use the "
                               "bundled subset)")


def test_source_debian_found_through_dpkg(monkeypatch, tmp_path):
    release = tiny_release(tmp_path / "usr" / "share" / "datasets" / "fashion-mnist")
    listing = "\n".join(["/.", str(release), *(str(p) for p in sorted(release.iterdir()))])
    monkeypatch.setattr(fm.shutil, "which", lambda name: "/usr/bin/dpkg")
    monkeypatch.setattr(fm.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 0, listing, ""))
    source = load_source("debian")
    assert source.images.shape == (40, 28, 28) and np.bincount(source.part).tolist() == [20, 20]


# ---------------------------------------------------------------------------------------------
# the output folder and user mistakes

def test_refuses_a_non_empty_folder(cli, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    line = one_line_error(cli("make-dataset", "fashion-scenes", out, *SMALL))
    assert line == f"Error: {out}: folder is not empty (use --force to replace it, or choose another OUT)"
    line = one_line_error(cli("make-dataset", "fashion-scenes", out, *SMALL, "--force"))
    assert line == (f"Error: {out}: not a folder made by `mlgraph make-dataset` (no fashion-scenes.json), so "
                    "--force will not replace it (choose a new OUT or empty it yourself)")
    assert (out / "notes.txt").read_text() == "mine"


def test_force_replaces_an_earlier_dataset_and_empty_folder_is_fine(cli, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    args = ("--train", "2", "--val", "1", "--test", "0", "--size", "64")
    assert cli("make-dataset", "fashion-scenes", out, *args).exit_code == 0
    from mlgraph_cli.core.project import load_project

    assert not (out / "images" / "test").exists()  # --test 0 leaves the split out, files and project alike
    assert "test_annotations" not in load_project(out / "mlgraph.toml").dataset
    assert cli("make-dataset", "fashion-scenes", out, *args).exit_code == 1
    assert cli("make-dataset", "fashion-scenes", out, *args, "--val", "2", "--force").exit_code == 0
    assert len(list((out / "images" / "val").glob("*.jpg"))) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary folders left beside it


TINY = ("--train", "2", "--val", "1", "--test", "0", "--size", "64")


def test_manifest_lists_every_file_made(cli, tmp_path):
    out = tmp_path / "out"
    assert cli("make-dataset", "fashion-scenes", out, *TINY).exit_code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["made_by"] == "mlgraph make-dataset"
    made = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} - {"manifest.json"}
    assert set(manifest["files"]) == made
    assert "mlgraph.toml" in made and "images/train/000001.jpg" in made


def test_force_keeps_what_it_did_not_make_unless_told(cli, tmp_path):
    """--force deletes only its own files; the user's (added or changed) are listed and kept."""
    out = tmp_path / "out"
    assert cli("make-dataset", "fashion-scenes", out, *TINY).exit_code == 0
    (out / "runs" / "train" / "mine").mkdir(parents=True)
    (out / "runs" / "train" / "mine" / "config.json").write_text("{}")
    (out / "runs" / "train" / "mine" / "best.safetensors").write_text("w")
    (out / "notes.md").write_text("my notes")
    with open(out / "mlgraph.toml", "a", encoding="utf-8") as fh:
        fh.write("[train]\nepochs = 3\n")
    line = one_line_error(cli("make-dataset", "fashion-scenes", out, *TINY, "--force"))
    assert line == (f"Error: {out}: --force would also delete 4 file(s) that make-dataset did not make or that "
                    "were changed since: mlgraph.toml (changed), notes.md, runs/ (2 files) (move them out of the "
                    "folder, or add --overwrite-all to delete them too)")
    assert (out / "notes.md").read_text() == "my notes" and "epochs = 3" in (out / "mlgraph.toml").read_text()
    assert (out / "runs" / "train" / "mine" / "config.json").is_file()
    assert cli("make-dataset", "fashion-scenes", out, *TINY, "--force", "--overwrite-all").exit_code == 0
    assert not (out / "notes.md").exists() and not (out / "runs").exists()
    assert "epochs = 3" not in (out / "mlgraph.toml").read_text()


def test_force_over_a_folder_without_manifest_knows_the_layout(cli, tmp_path):
    """A folder made before manifests existed: its own layout is replaced, anything else is listed."""
    out = tmp_path / "out"
    assert cli("make-dataset", "fashion-scenes", out, *TINY).exit_code == 0
    (out / "manifest.json").unlink()
    assert cli("make-dataset", "fashion-scenes", out, *TINY, "--force").exit_code == 0
    (out / "manifest.json").unlink()
    (out / "images" / "train" / "extra.png").write_bytes(b"png")
    line = one_line_error(cli("make-dataset", "fashion-scenes", out, *TINY, "--force"))
    assert "--force would also delete 1 file(s)" in line and ": images/train/extra.png (move them" in line
    assert (out / "images" / "train" / "extra.png").is_file()


def test_failure_leaves_nothing_behind(cli, tmp_path, monkeypatch):
    from mlgraph_cli.core.datasets import fashion_scenes

    def boom(*args, **kwargs):
        raise MlgraphError("simulated failure half way")

    monkeypatch.setattr(fashion_scenes, "make_scene", boom)
    line = one_line_error(cli("make-dataset", "fashion-scenes", tmp_path / "out", *SMALL))
    assert line == "Error: simulated failure half way"
    assert list(tmp_path.iterdir()) == []


def test_unknown_dataset_name(cli, tmp_path):
    line = one_line_error(cli("make-dataset", "cifar", tmp_path / "out"))
    assert line == "Error: unknown dataset 'cifar' (choices: fashion-scenes)"


@pytest.mark.parametrize("flags, message", [
    (("--train", "0"), "--train must be at least 1 (got 0)"),
    (("--val", "-1"), "--val must be 0 or more (got -1)"),
    (("--size", "32"), "--size must be between 64 and 4096 px (got 32)"),
])
def test_bad_numbers(cli, tmp_path, flags, message):
    line = one_line_error(cli("make-dataset", "fashion-scenes", tmp_path / "out", *flags))
    assert line == f"Error: {message}"
    assert not (tmp_path / "out").exists()


def test_out_is_a_file(cli, tmp_path):
    (tmp_path / "out").write_text("x")
    line = one_line_error(cli("make-dataset", "fashion-scenes", tmp_path / "out"))
    assert line == f"Error: {tmp_path / 'out'}: exists and is not a folder (choose another OUT)"


def test_help_has_a_runnable_example(cli):
    result = cli("make-dataset", "--help")
    assert result.exit_code == 0
    assert "Example: mlgraph make-dataset fashion-scenes fashion/" in result.output


def test_command_module_imports_no_numpy():
    code = "import sys, mlgraph_cli.cli.make_dataset; print(sorted({'numpy', 'torch', 'PIL'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_refuses_the_current_folder(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = one_line_error(cli("make-dataset", "fashion-scenes", "."))
    assert line == ("Error: .: is the folder you are working in (name a new folder, "
                    "e.g. `mlgraph make-dataset fashion-scenes fashion/`)")
    assert list(tmp_path.iterdir()) == []


def test_relative_out_in_current_folder(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    small = ("--train", "1", "--val", "1", "--test", "1", "--size", "64")
    result = cli("make-dataset", "fashion-scenes", "fashion/", *small)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fashion"]
    assert (tmp_path / "fashion" / "mlgraph.toml").is_file()


def test_help_defaults_match_the_config(cli):
    """The help states defaults by hand (the CLI may not import the config); keep them true."""
    from mlgraph_cli.core.datasets.fashion_scenes import FashionScenesConfig

    said = " ".join(cli("make-dataset", "--help").output.split())
    defaults = FashionScenesConfig()
    for name in ("train", "val", "test", "size", "seed"):
        assert said.split(f"--{name} ", 1)[1].split("[default: ", 1)[1].startswith(f"{getattr(defaults, name)}]"), name


def test_source_with_mismatched_labels(cli, tmp_path):
    source = tiny_release(tmp_path / "release")
    write_idx(source / "train-labels-idx1-ubyte", np.zeros(3, dtype=np.uint8))
    line = one_line_error(cli("make-dataset", "fashion-scenes", tmp_path / "out", "--source", source))
    assert line.startswith(f"Error: {source / 'train-labels-idx1-ubyte'}: expected 20 labels to match "
                           "train-images-idx3-ubyte.gz, found shape (3,)")
