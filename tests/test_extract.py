"""`mlgraph extract`: features files, labels, projects, skipped images, kill-and-resume, user mistakes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from conftest import one_line_error
from mlgraph_cli.core.features.backbones.build import backbone_from_config
from mlgraph_cli.core.features.file import open_features, partial_path
from mlgraph_cli.core.media.images import load_image
from mlgraph_cli.core.features.extraction import PAUSE_FILE_ENV, PAUSE_ROWS_ENV

# A small random-weight backbone keeps every run to a second or two on a CPU.
FAST = ["--backbone", "resnet18", "--weights", "none", "--image-size", "64", "--batch-size", "4", "--workers", "0"]
LABELS = ["cat", "dog", "person"]


def make_images(folder: Path, n: int = 6, seed: int = 0) -> list[str]:
    """``n`` small noise images (PNG and JPEG, one in a subfolder); returns names relative to ``folder``."""
    rng = np.random.default_rng(seed)
    names = []
    for i in range(n):
        name = f"{'sub/' if i == 2 else ''}img{i:02d}.{'png' if i % 2 else 'jpg'}"
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((rng.random((40 + i, 48, 3)) * 255).astype(np.uint8)).save(folder / name)
        names.append(name)
    return names


def write_coco(path: Path, files: list[str]) -> np.ndarray:
    """A COCO instances file over ``files``; returns the expected (N, 3) labels in name order."""
    y = np.zeros((len(files), len(LABELS)), np.int8)
    anns = []
    for i in range(len(files)):
        for c in {i % 3, (i * 2) % 3}:
            y[i, c] = 1
            anns.append({"id": len(anns) + 1, "image_id": 100 + i, "category_id": 10 + c, "bbox": [0, 0, 1, 1],
                         "area": 1, "iscrowd": 0})
    path.write_text(json.dumps({
        "images": [{"id": 100 + i, "file_name": f, "width": 48, "height": 40} for i, f in enumerate(files)],
        "annotations": anns,
        "categories": [{"id": 10 + c, "name": name} for c, name in enumerate(LABELS)],
    }))
    return y


def flat(text: str) -> str:
    return " ".join(text.split())


def read(path: Path):
    f = open_features(path)
    with h5py.File(path, "r") as h:
        feats = h["features"][:]
    return f, feats


def test_folder_without_labels(tmp_path, cli):
    names = make_images(tmp_path / "imgs")
    out = tmp_path / "f.h5"
    result = cli("extract", tmp_path / "imgs", "-o", out, *FAST)
    assert result.exit_code == 0, result.output
    f, feats = read(out)
    assert f.ids == sorted(names) == f.files  # without annotations the id is the relative path
    assert f.labels is None and f.label_names is None and f.skipped == []
    assert feats.shape == (6, 512, 2, 2) and feats.dtype == np.float16 and np.isfinite(feats).all()
    a = f.attrs
    assert a["schema"] == "mlgraph/features@1" and a["complete"] is True
    assert (a["backbone"], a["weights"], a["image_size"], a["layers"]) == ("resnet18", "none", 64, ["layer4"])
    assert a["preprocessing"] == {"size": 64, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
                                  "resize": "stretch", "interpolation": "bilinear", "scale": 1 / 255,
                                  "color": "RGB", "exif_transpose": True}
    assert a["images_root"] == str((tmp_path / "imgs").resolve()) and a["annotations"] == ""
    assert a["provenance"]["command"] == "mlgraph extract" and a["provenance"]["params"]["backbone"] == "resnet18"
    assert "Wrote " in result.stderr and "6 images, no labels; features 512x2x2" in flat(result.stderr)
    assert not (tmp_path / "f.h5.skipped.txt").exists() and not partial_path(out).exists()


def test_annotations_store_labels_and_skip_missing_files(tmp_path, cli):
    names = make_images(tmp_path / "imgs")
    y = write_coco(tmp_path / "ann.json", names + ["gone.jpg"])
    out = tmp_path / "f.h5"
    result = cli("extract", tmp_path / "imgs", "--annotations", tmp_path / "ann.json", "-o", out, *FAST)
    assert result.exit_code == 0, result.output
    f, feats = read(out)
    assert f.ids == [str(100 + i) for i in range(6)] and f.files == names
    assert f.label_names == LABELS and f.labels.dtype == np.int8
    assert np.array_equal(f.labels, y[:6])
    assert f.skipped == ["gone.jpg\tfile not found"]
    assert f.attrs["annotations"] == str((tmp_path / "ann.json").resolve()) and f.attrs["annotations_format"] == "coco"
    assert (tmp_path / "f.h5.skipped.txt").read_text() == "gone.jpg\tfile not found\n"
    assert "6 images, 3 labels" in flat(result.stderr)
    assert "Skipped 1 unreadable image(s), listed in" in flat(result.stderr)


def test_two_layers_and_workers_give_the_same_rows(tmp_path, cli):
    make_images(tmp_path / "imgs", n=5)
    out0, out2 = tmp_path / "w0.h5", tmp_path / "w2.h5"
    assert cli("extract", tmp_path / "imgs", "-o", out0, *FAST, "--layer", "layer4", "--layer", "layer3").exit_code == 0
    args = [a if a != "0" else "2" for a in FAST]  # --workers 2: decoding in DataLoader processes
    assert cli("extract", tmp_path / "imgs", "-o", out2, *args, "--layer", "layer3", "--layer", "layer4").exit_code == 0
    with h5py.File(out0, "r") as a, h5py.File(out2, "r") as b:
        assert a["features"].shape == (5, 512, 2, 2) and a["features_aux"].shape == (5, 256, 4, 4)
        assert np.allclose(a["features"][:], b["features"][:], atol=1e-2)
        assert np.allclose(a["features_aux"][:], b["features_aux"][:], atol=1e-2)
    assert open_features(out0).attrs["outputs"] == {"features": "layer4", "features_aux": "layer3"}


def test_preprocessing_is_reproducible_from_the_file(tmp_path, cli):
    names = make_images(tmp_path / "imgs", n=3)
    out = tmp_path / "f.h5"
    assert cli("extract", tmp_path / "imgs", "-o", out, *FAST).exit_code == 0
    f, feats = read(out)
    backbone = backbone_from_config(f.attrs["backbone_config"])
    x = torch.stack([backbone.preprocess(load_image(tmp_path / "imgs" / n)) for n in f.files])
    with torch.no_grad():
        again = backbone(x)["features"].numpy()
    assert sorted(names) == f.files
    assert np.allclose(again, feats.astype(np.float32), rtol=2e-3, atol=2e-3)


def test_unreadable_images_are_skipped_and_reported(tmp_path, cli):
    from test_images import png_header_only

    names = make_images(tmp_path / "imgs", n=4)
    (tmp_path / "imgs" / "broken.jpg").write_bytes(b"this is not a jpeg")
    data = (tmp_path / "imgs" / names[1]).read_bytes()
    (tmp_path / "imgs" / "half.png").write_bytes(data[: len(data) // 2])
    png_header_only(tmp_path / "imgs" / "bomb.png", 20000, 20000)
    out = tmp_path / "f.h5"
    result = cli("extract", tmp_path / "imgs", "-o", out, *FAST, "--verbose")
    assert result.exit_code == 0, result.output
    f, feats = read(out)
    assert f.ids == sorted(names) and feats.shape[0] == 4
    reasons = dict(line.split("\t") for line in f.skipped)
    assert set(reasons) == {"bomb.png", "broken.jpg", "half.png"}
    assert reasons["broken.jpg"] == "not an image (or a format PIL cannot read)"
    assert reasons["half.png"].startswith("corrupt or truncated")
    assert reasons["bomb.png"].startswith("refused")
    assert f.attrs["skipped_count"] == 3
    report = (tmp_path / "f.h5.skipped.txt").read_text().splitlines()
    assert sorted(report) == sorted(f.skipped)
    err = flat(result.stderr)
    assert "skipped broken.jpg: not an image" in err and "Skipped 3 unreadable image(s)" in err


def test_project_folder_runs_without_paths(tmp_path, cli, monkeypatch):
    names = make_images(tmp_path / "imgs")
    y = write_coco(tmp_path / "ann.json", names)
    make_images(tmp_path / "val", n=3, seed=1)
    (tmp_path / "mlgraph.toml").write_text(
        '[dataset]\nimages = "imgs"\nannotations = "ann.json"\nval_images = "val"\n\n'
        '[extract]\nbackbone = "resnet18"\nweights = "none"\nimage_size = 64\nworkers = 0\nbatch_size = 4\n')
    monkeypatch.chdir(tmp_path)
    result = cli("extract")
    assert result.exit_code == 0, result.output
    f, _ = read(tmp_path / "artifacts" / "features.h5")
    assert np.array_equal(f.labels, y) and f.label_names == LABELS
    result = cli("extract", "--split", "val", "--image-size", "32")  # a flag beats [extract]
    assert result.exit_code == 0, result.output
    f, feats = read(tmp_path / "artifacts" / "val-features.h5")
    assert f.labels is None and len(f) == 3 and feats.shape == (3, 512, 1, 1)
    line = one_line_error(cli("extract", "--split", "test"))
    assert line == (f"Error: {tmp_path.resolve() / 'mlgraph.toml'}: no test_images folder set in [dataset] "
                    "(add `test_images = ...` or pass the path)")


def test_default_output_is_features_h5_in_cwd(tmp_path, cli, monkeypatch):
    make_images(tmp_path / "imgs", n=2)
    monkeypatch.chdir(tmp_path)
    assert cli("extract", "imgs", *FAST).exit_code == 0
    assert len(open_features(tmp_path / "features.h5")) == 2


# ---------------------------------------------------------------------------------------------
# Stopping and resuming

def run_until_killed(tmp_path: Path, images: Path, out: Path, pause_rows: int, *extra: str, while_paused=None) -> None:
    """Start a real `mlgraph extract` process, SIGKILL it once ``pause_rows`` rows are on disk
    (after calling ``while_paused(pid)``, if given)."""
    marker = tmp_path / "paused"
    env = dict(os.environ, **{PAUSE_ROWS_ENV: str(pause_rows), PAUSE_FILE_ENV: str(marker), "OMP_NUM_THREADS": "1"})
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parents[1]), env.get("PYTHONPATH", "")])
    proc = subprocess.Popen([sys.executable, "-m", "mlgraph_cli", "extract", str(images), "-o", str(out), *FAST, *extra],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    while not marker.exists():
        if proc.poll() is not None:
            pytest.fail(f"extract ended before the pause: {proc.stderr.read().decode()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("extract did not reach the pause point")
        time.sleep(0.05)
    try:
        if while_paused is not None:
            while_paused(proc.pid)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    proc.stderr.close()
    if "--shard" not in extra:  # a shard's partial file is named after the shard (tests/test_extract_shards.py)
        assert not out.exists() and partial_path(out).exists()


@pytest.fixture
def resumable(tmp_path, cli):
    """Ten images with a corrupt one among them, and an uninterrupted reference run."""
    names = make_images(tmp_path / "imgs", n=10)
    (tmp_path / "imgs" / "img03b.jpg").write_bytes(b"corrupt")  # sorts among the first batch
    ref = tmp_path / "ref.h5"
    assert cli("extract", tmp_path / "imgs", "-o", ref, *FAST).exit_code == 0
    return names, ref


def assert_same_file(out: Path, ref: Path) -> None:
    (f, feats), (g, ref_feats) = read(out), read(ref)
    assert f.ids == g.ids and f.files == g.files and f.skipped == g.skipped
    assert np.allclose(feats.astype(np.float32), ref_feats.astype(np.float32), rtol=1e-2, atol=1e-2)


def test_killed_run_resumes_without_duplicates_or_torn_rows(tmp_path, cli, resumable):
    _, ref = resumable
    out = tmp_path / "out.h5"
    run_until_killed(tmp_path, tmp_path / "imgs", out, pause_rows=3)
    with h5py.File(partial_path(out), "a") as h:
        assert int(h.attrs["rows_done"]) == 3 and int(h.attrs["inputs_done"]) == 4  # one corrupt input skipped
        # Also play a kill in the middle of the next batch: rows on disk past the counters.
        for name in ("features", "ids", "files"):
            h[name].resize(5, axis=0)
        h["features"][3:5] = 7.0
        h["ids"][3:5] = ["junk", "junk"]
    # A different batch size does not change the output, so the run still resumes.
    result = cli("extract", tmp_path / "imgs", "-o", out, *FAST[:-4], "--batch-size", "3", "--workers", "0")
    assert result.exit_code == 0, result.output
    assert "4 of 11 images were done by an interrupted run" in flat(result.stderr)
    assert "resumed after 4" in flat(result.stderr)
    assert_same_file(out, ref)
    assert not partial_path(out).exists()


def test_changed_settings_start_over(tmp_path, cli, resumable):
    from mlgraph_cli.core.features.file import FeatureWriter

    out = tmp_path / "out.h5"
    # An interrupted run of another plan: one row written, never finished.
    w = FeatureWriter(out, shapes={"features": (512, 1, 1)}, plan="another-plan", attrs={})
    w.append({"features": np.ones((1, 512, 1, 1))}, ["x"], ["x.png"], None, inputs_consumed=1)
    w.close()
    result = cli("extract", tmp_path / "imgs", "-o", out, *FAST, "--image-size", "32")
    assert result.exit_code == 0, result.output
    assert "other images or settings was found; starting over" in flat(result.stderr)
    assert "Resuming" not in result.stderr
    f, feats = read(out)
    assert len(f) == 10 and feats.shape == (10, 512, 1, 1) and f.attrs["image_size"] == 32 and "x" not in f.ids


# ---------------------------------------------------------------------------------------------
# User mistakes: one line, exit code 1

def test_empty_folder(tmp_path, cli):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no pictures here")
    line = one_line_error(cli("extract", tmp_path / "empty", *FAST))
    assert line == (f"Error: {tmp_path / 'empty'}: no images found (looked for .jpg, .jpeg, .png, .bmp, .gif, .webp, "
                    ".tif, .ppm) (pass a folder of images, image files, a glob or a .txt list)")


def test_missing_images_path(tmp_path, cli):
    line = one_line_error(cli("extract", tmp_path / "nope", *FAST))
    assert line == f"Error: {tmp_path / 'nope'}: no such file or folder (pass an image file, a folder, a glob or a .txt list)"


def test_annotations_whose_files_are_all_missing(tmp_path, cli):
    names = make_images(tmp_path / "imgs", n=3)
    write_coco(tmp_path / "ann.json", names)
    (tmp_path / "other").mkdir()
    line = one_line_error(cli("extract", tmp_path / "other", "-a", tmp_path / "ann.json", *FAST))
    assert line == (f"Error: {tmp_path / 'other'}: none of the 3 images named in {tmp_path / 'ann.json'} is in this "
                    f"folder (e.g. {names[0]}) (pass the folder they are relative to as IMAGES or --images, "
                    "or fix [dataset] images)")


def test_images_given_twice(tmp_path, cli):
    line = one_line_error(cli("extract", tmp_path, "--images", tmp_path, *FAST))
    assert line == "Error: give the images folder once: as IMAGES or as --images, not both"


def test_no_images_outside_a_project(tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = one_line_error(cli("extract", *FAST))
    assert line == "Error: no images given (pass a folder, files, a glob or a .txt list as IMAGES)"


@pytest.mark.parametrize("args,expected", [
    (["--backbone", "resnt50"], "Error: --backbone resnt50: unknown backbone (did you mean resnet50, "
                                "resnet152, resnet101, resnet34, resnet18?)"),
    (["--layer", "layer9"], "Error: --layer layer9: not a layer of resnet18 (choose from conv1, bn1, relu, maxpool, "
                            "layer1, layer2, layer3, layer4)"),
    (["--image-size", "16"], "Error: --image-size 16: too small for resnet18 layer4 (its feature map would be empty; "
                             "use --image-size 32 or more)"),
    (["--device", "tpu"], "Error: --device tpu: not a device (use auto, cpu, cuda, cuda:N or mps)"),
])
def test_bad_settings(tmp_path, cli, args, expected):
    make_images(tmp_path / "imgs", n=1)
    assert one_line_error(cli("extract", tmp_path / "imgs", *FAST, *args)) == expected
    assert not (tmp_path / "features.h5").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu(tmp_path, cli):
    make_images(tmp_path / "imgs", n=1)
    line = one_line_error(cli("extract", tmp_path / "imgs", *FAST, "--device", "cuda"))
    assert line == "Error: --device cuda: CUDA is not available on this machine (use --device cpu or auto)"


def test_weights_not_in_the_hub_cache(tmp_path, cli, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    make_images(tmp_path / "imgs", n=1)
    line = one_line_error(cli("extract", tmp_path / "imgs", *FAST, "--weights", "IMAGENET1K_V1"))
    assert line.startswith(f"Error: {tmp_path / 'th' / 'hub' / 'checkpoints' / 'resnet18-f37072fd.pth'}: weights "
                           "ResNet18_Weights.IMAGENET1K_V1 are not in the torch hub cache")
    assert "$TORCH_HOME/hub/checkpoints/resnet18-f37072fd.pth" in line and "--weights PATH" in line


def test_bad_project_setting(tmp_path, cli, monkeypatch):
    make_images(tmp_path / "imgs", n=1)
    (tmp_path / "mlgraph.toml").write_text('[dataset]\nimages = "imgs"\n\n[extract]\nbackbon = "resnet18"\n')
    monkeypatch.chdir(tmp_path)
    line = one_line_error(cli("extract"))
    assert line.startswith(f"Error: {tmp_path.resolve() / 'mlgraph.toml'}: unknown key(s) in [extract]: backbon (known keys: ")


def test_every_image_unreadable(tmp_path, cli):
    (tmp_path / "imgs").mkdir()
    for name in ("a.jpg", "b.png"):
        (tmp_path / "imgs" / name).write_bytes(b"garbage")
    out = tmp_path / "f.h5"
    line = one_line_error(cli("extract", tmp_path / "imgs", "-o", out, *FAST))
    report = tmp_path / "f.h5.skipped.txt"
    assert line == (f"Error: {tmp_path / 'imgs'}: none of the 2 images could be read (reasons in {report}; "
                    "check the images, or pass the right folder)")
    assert not out.exists() and not partial_path(out).exists()
    assert report.read_text().splitlines() == ["a.jpg\tnot an image (or a format PIL cannot read)",
                                               "b.png\tnot an image (or a format PIL cannot read)"]
