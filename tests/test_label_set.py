"""A declared label set (`--labels FILE`, or the project's graph) for extract and train: splits that
lack a label align; a label with positives on one side only stays an error, in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import trainkit
from conftest import one_line_error
from mlgraph_cli.core.features.file import open_features

FAST = ["--backbone", "resnet18", "--weights", "none", "--image-size", "32", "--workers", "0"]
TRAIN_CSV = "path,labels\n0.png,cat;dog\n1.png,dog\n2.png,cat;cross\n3.png,cross\n"
VAL_CSV = "path,labels\n4.png,cat\n5.png,dog;cat\n"  # no 'cross': a few validation images rarely hold every label


@pytest.fixture
def photos(tmp_path):
    (tmp_path / "img").mkdir()
    for k in range(6):
        Image.new("RGB", (32, 32), (40 * k, 30, 90)).save(tmp_path / "img" / f"{k}.png")
    (tmp_path / "train.csv").write_text(TRAIN_CSV)
    (tmp_path / "val.csv").write_text(VAL_CSV)
    return tmp_path


def test_extract_stores_the_declared_columns(cli, photos):
    labels = photos / "labels.txt"
    labels.write_text("dog\ncross\ncat\n")  # its order is kept
    result = cli("extract", photos / "img", "-a", photos / "val.csv", "-o", photos / "val.h5", "--labels", labels,
                 *FAST)
    assert result.exit_code == 0, result.output
    f = open_features(photos / "val.h5")
    assert f.label_names == ["dog", "cross", "cat"] and f.labels.tolist() == [[0, 0, 1], [1, 0, 1]]
    assert (f"1 declared label(s) of {labels} are on no image of {photos / 'val.csv'} and are stored as all-zero "
            "columns: 'cross'") in result.stderr.splitlines()


def test_extract_refuses_a_label_that_is_not_declared(cli, photos):
    labels = photos / "labels.txt"
    labels.write_text("cat\ndog\n")
    line = one_line_error(cli("extract", photos / "img", "-a", photos / "train.csv", "-o", photos / "f.h5",
                              "--labels", labels, *FAST))
    assert line == (f"Error: {photos / 'train.csv'}: 1 label(s) are not in the declared label set of {labels}: 'cross' "
                    f"(add them to {labels})")
    assert not (photos / "f.h5").exists()


def test_extract_takes_the_labels_of_a_graph_and_leaves_out_what_it_dropped(cli, photos):
    graph = photos / "graph.json"
    assert cli("build-graph", photos / "train.csv", "-o", graph, "--min-count", "2").exit_code == 0
    assert [n["id"] for n in json.loads(graph.read_text())["nodes"]] == ["cat", "cross", "dog"]
    (photos / "more.csv").write_text(TRAIN_CSV + "5.png,bird\n")  # 'bird' is in no graph
    line = one_line_error(cli("extract", photos / "img", "-a", photos / "more.csv", "-o", photos / "f.h5",
                              "--labels", graph, *FAST))
    assert line == (f"Error: {photos / 'more.csv'}: 1 label(s) are not in the declared label set of {graph}: 'bird' "
                    f"(build {graph} from annotations that hold every label with `mlgraph build-graph`, or pass "
                    "--labels FILE listing them)")
    small = photos / "small.json"  # the graph leaves out 'bird' (one image) under --min-count 2
    (photos / "wide.csv").write_text(TRAIN_CSV + "4.png,cat;dog;cross\n5.png,cat;bird\n")
    assert cli("build-graph", photos / "wide.csv", "-o", small, "--min-count", "2").exit_code == 0
    result = cli("extract", photos / "img", "-a", photos / "wide.csv", "-o", photos / "f.h5", "--labels", small, *FAST)
    assert result.exit_code == 0, result.output
    assert open_features(photos / "f.h5").label_names == ["cat", "cross", "dog"]
    assert f"1 label(s) that {small} dropped under --min-count are left out: 'bird'" in result.stderr.splitlines()


def test_a_project_gives_every_split_the_graph_labels(cli, photos, monkeypatch):
    monkeypatch.chdir(photos)
    assert cli("init", "--annotations", "train.csv", "--images", "img", "--val-annotations", "val.csv",
               "--val-images", "img").exit_code == 0
    assert cli("build-graph").exit_code == 0
    assert cli("extract", *FAST).exit_code == 0
    result = cli("extract", "--split", "val", *FAST)
    assert result.exit_code == 0, result.output
    val = open_features(photos / "artifacts" / "val-features.h5")
    assert val.label_names == ["cat", "cross", "dog"] and val.labels[:, 1].tolist() == [0, 0]
    assert "stored as all-zero columns: 'cross'" in result.stderr


# ---------------------------------------------------------------------------------------------
# train

def _files(tmp: Path, train_labels: list[str], val_labels: list[str], *, val_zero: str | None = None):
    data = trainkit.planted(48, labels=train_labels, seed=0)
    val = trainkit.planted(24, labels=val_labels, seed=1)
    if val_zero is not None:  # a declared column no validation image carries
        val["y"][:, val_labels.index(val_zero)] = 0
    tmp.mkdir(parents=True, exist_ok=True)
    return (trainkit.write_features(tmp / "features.h5", data, labels=train_labels),
            trainkit.write_features(tmp / "val.h5", val, labels=val_labels))


def _train(cli, features, val, out, *extra):
    return cli("train", "--features", features, "--val-features", val, "--head", "gap", "--epochs", "1",
               "--batch-size", "16", "-o", out, *extra)


def test_train_aligns_a_validation_file_that_lacks_a_label(cli, tmp_path):
    features, val = _files(tmp_path, ["bird", "cat", "cross", "dog"], ["bird", "cat", "dog"])
    result = _train(cli, features, val, tmp_path / "run")
    assert result.exit_code == 0, result.output
    said = result.stderr.splitlines()
    assert (f"{val} lacks 1 label(s) of {features}, read as having no positive there: 'cross'") in said
    assert any("1 of 4 labels have no positive there (cross)" in line for line in said)  # reported, not fatal
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["labels"] == ["bird", "cat", "cross", "dog"]


def test_train_leaves_out_an_empty_label_of_the_validation_file(cli, tmp_path):
    features, val = _files(tmp_path, ["bird", "cat", "dog"], ["bird", "cat", "cross", "dog"], val_zero="cross")
    result = _train(cli, features, val, tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert f"{val}: 1 label(s) not in {features} and without positives are left out: 'cross'" in result.stderr


def test_train_refuses_a_label_with_positives_on_one_side_only(cli, tmp_path):
    features, val = _files(tmp_path, ["bird", "cat", "dog"], ["bird", "cat", "cross", "dog"])
    line = one_line_error(_train(cli, features, val, tmp_path / "run"))
    assert line == (f"Error: {val} and {features} have different label sets (1 only in {val}, with positives there: "
                    "'cross') (extract both with the same declared labels: `mlgraph extract ... --labels graph.json`)")


def test_train_with_declared_labels(cli, tmp_path):
    features, val = _files(tmp_path, ["bird", "cat", "dog"], ["bird", "cat", "dog"])
    labels = tmp_path / "labels.txt"
    labels.write_text("dog\ncat\nbird\nfish\n")
    result = _train(cli, features, val, tmp_path / "run", "--labels", labels)
    assert result.exit_code == 0, result.output
    assert f"{features} lacks 1 label(s) of {labels}, read as having no positive there: 'fish'" in result.stderr
    assert json.loads((tmp_path / "run" / "config.json").read_text())["labels"] == ["dog", "cat", "bird", "fish"]
    labels.write_text("dog\ncat\n")
    line = one_line_error(_train(cli, features, val, tmp_path / "run2", "--labels", labels))
    assert line == (f"Error: {features} and {labels} have different label sets (1 only in {features}, with positives "
                    f"there: 'bird') (add them to {labels})")
