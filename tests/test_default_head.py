"""The default head follows what the features hold (docs/benchmarks.md, "Defaults by a rule").

`mlgraph extract` with its defaults (EfficientNet-Lite0) stores the last map and the finer map of
stage 5; `mlgraph train` without `--head` then trains multi-scale CMA on them, and CMA on files of
one map (another backbone, or `--layer` given once). Video frames keep one stage.
"""

from __future__ import annotations

import json

import h5py
import pytest

import trainkit
from mlgraph_cli.core.features.config import default_layers
from mlgraph_cli.core.features.file import open_features
from mlgraph_cli.core.training.config import default_head


def test_extract_stores_two_maps_of_lite0_by_default(cli, tmp_path):
    trainkit.make_images(tmp_path / "imgs", n=4)
    out = tmp_path / "f.h5"
    result = cli("extract", tmp_path / "imgs", "-o", out, "--weights", "none", "--image-size", "64",
                 "--workers", "0", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert open_features(out).attrs["layers"] == ["stage5", "head"]
    with h5py.File(out, "r") as f:
        assert f["features"].shape[1:] == (1280, 2, 2) and f["features_aux"].shape[1:] == (112, 4, 4)
    one = tmp_path / "one.h5"
    result = cli("extract", tmp_path / "imgs", "-o", one, "--weights", "none", "--image-size", "64",
                 "--workers", "0", "--device", "cpu", "--layer", "head")
    assert result.exit_code == 0, result.output
    with h5py.File(one, "r") as f:
        assert "features_aux" not in f and f["features"].shape[1:] == (1280, 2, 2)


def test_the_stages_stored_by_default():
    assert default_layers("efficientnet-lite0") == ["stage5", "head"]
    assert default_layers("efficientnet-lite0", video=True) == []  # frames: the last stage alone
    assert default_layers("resnet50") == []  # other backbones: their last stage


@pytest.mark.parametrize("aux, head", [(True, "ms-cma"), (False, "cma")])
def test_train_without_head_picks_by_the_maps_the_features_hold(cli, tmp_path, aux, head):
    data = trainkit.toy_dataset(tmp_path / "data", n_train=32, n_val=16, aux=aux)
    run = tmp_path / "run"
    result = cli("train", "--features", data["features"], "--val-features", data["val"], "--embeddings",
                 data["embeddings"], "--epochs", "1", "--probe-epochs", "1", "--batch-size", "16", "--device", "cpu",
                 "-o", run)
    assert result.exit_code == 0, result.output
    assert json.loads((run / "config.json").read_text())["head"]["name"] == head
    assert json.loads((run / "args.json").read_text())["config"]["head"] == head  # --resume keeps it


def test_default_head_table():
    assert default_head("image", two_maps=True) == "ms-cma"
    assert default_head("image", two_maps=False) == "cma"
    assert default_head("video", two_maps=False) == default_head("video", two_maps=True) == "cma"
