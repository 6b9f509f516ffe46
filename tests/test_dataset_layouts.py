"""Datasets as practitioners hold them, laid out as their tools write them: ultralytics YOLO folders
(data.yaml + images/ + labels/) and Hugging Face imagefolder (metadata.jsonl inside the images
folder), through load_annotations, build-graph and extract; and the user mistakes, one line each."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import one_line_error
from mlgraph_cli.core.annotations import detect_format, load_annotations
from mlgraph_cli.core.features.file import open_features
from mlgraph_cli.errors import InputError

FAST = ["--backbone", "resnet18", "--weights", "none", "--image-size", "32", "--batch-size", "4", "--workers", "0"]
NAMES = ["person", "car", "dog"]  # class 0, 1, 2

# image -> label file text (None: no label file). b is a segment line, c an empty file, d has no file.
TRAIN = {"a.jpg": "0 0.5 0.5 0.2 0.3\n2 0.1 0.1 0.05 0.05\n0 0.7 0.7 0.1 0.1\n",
         "b.jpg": "1 0.1 0.1 0.4 0.1 0.4 0.4 0.1 0.4\n",
         "c.png": "",
         "d.jpg": None}
VAL = {"e.jpg": "2 0.5 0.5 0.5 0.5\n", "f.jpg": "0 0.2 0.2 0.1 0.1\n1 0.6 0.6 0.2 0.2\n"}


def write_split(root: Path, split: str, images: dict[str, str | None]) -> None:
    for k, (name, label) in enumerate(images.items()):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (40, 32), (40 * k, 90, 0)).save(root / "images" / split / name)
        if label is not None:
            (root / "labels" / split).mkdir(parents=True, exist_ok=True)
            (root / "labels" / split / name).with_suffix(".txt").write_text(label)


def make_dataset(root: Path, names_text: str | None = None, **yaml_extra: str) -> Path:
    """The tiny dataset: images/{train,val}, labels/{train,val}, data.yaml (names as a list by default)."""
    write_split(root, "train", TRAIN)
    write_split(root, "val", VAL)
    (root / "labels" / "train.cache").write_bytes(b"\x80\x04not read")  # ultralytics' cache: never opened
    keys = {"path": ".", "train": "images/train", "val": "images/val", **yaml_extra}
    text = "".join(f"{k}: {v}\n" for k, v in keys.items())
    text += names_text if names_text is not None else "names: [person, car, dog]\n"
    (root / "data.yaml").write_text("# written the way ultralytics documents it\n" + text)
    return root / "data.yaml"


def rows(ann) -> dict[str, set[str]]:
    y = ann.positives.toarray()
    return {f: {ann.labels[k] for k in np.flatnonzero(y[i])} for i, f in enumerate(ann.files)}


def test_train_split_is_the_set_of_object_classes(tmp_path):
    yaml_path = make_dataset(tmp_path / "ds")
    ann = load_annotations(yaml_path)
    assert ann.format == "yolo" and ann.labels == ["car", "dog", "person"]  # sorted by name, as every format
    assert rows(ann) == {"images/train/a.jpg": {"person", "dog"}, "images/train/b.jpg": {"car"},
                         "images/train/c.png": set(), "images/train/d.jpg": set()}
    assert ann.image_ids == ann.files and ann.meta["image_root"] == str(tmp_path / "ds")
    assert ann.meta["split"] == "train"
    assert "1 train image(s) have no label file and are read as having no objects" in ann.notes


@pytest.mark.parametrize("names_text", ["names:\n  0: person\n  1: car\n  2: dog\n",
                                        "names: {2: dog, 0: person, 1: car}\nnc: 3\n"])
def test_names_as_a_mapping_and_the_val_split(tmp_path, names_text):
    yaml_path = make_dataset(tmp_path / "ds", names_text)
    ann = load_annotations(yaml_path, split="val", label_order="id")
    assert ann.labels == NAMES  # class-index order
    assert rows(ann) == {"images/val/e.jpg": {"dog"}, "images/val/f.jpg": {"person", "car"}}


def test_detected_from_the_yaml_or_its_folder(tmp_path):
    yaml_path = make_dataset(tmp_path / "ds")
    assert detect_format(yaml_path) == "yolo" and detect_format(tmp_path / "ds") == "yolo"
    assert rows(load_annotations(tmp_path / "ds", split="val")) == rows(load_annotations(yaml_path, split="val"))


def test_lists_of_images_and_lists_of_folders(tmp_path):
    root = tmp_path / "ds"
    make_dataset(root)
    (root / "train.txt").write_text("./images/train/a.jpg\n./images/train/b.jpg\n")
    yaml_path = tmp_path / "elsewhere" / "coco.yml"  # the yaml apart from the data: `path` is the root
    yaml_path.parent.mkdir()
    yaml_path.write_text(f"path: ../ds\ntrain: train.txt\nval: [images/val, images/train]\nnames: [person, car, dog]\n")
    assert list(rows(load_annotations(yaml_path))) == ["images/train/a.jpg", "images/train/b.jpg"]
    assert len(load_annotations(yaml_path, split="val").files) == 6


def test_roboflow_layout(tmp_path):
    """Roboflow writes `train: ../train/images` beside the yaml, ultralytics reads it as `train/images`."""
    root = tmp_path / "export"
    for split, images in (("train", TRAIN), ("valid", VAL)):
        (root / split / "images").mkdir(parents=True)
        (root / split / "labels").mkdir(parents=True)
        for name, label in images.items():
            Image.new("RGB", (8, 8)).save(root / split / "images" / name)
            if label is not None:
                (root / split / "labels" / name).with_suffix(".txt").write_text(label)
    (root / "data.yaml").write_text("train: ../train/images\nval: ../valid/images\nnc: 3\n"
                                    "names: ['person', 'car', 'dog']\n")
    assert rows(load_annotations(root / "data.yaml", split="val")) == {"valid/images/e.jpg": {"dog"},
                                                                      "valid/images/f.jpg": {"person", "car"}}


def test_build_graph_reads_the_train_split(cli, tmp_path):
    yaml_path = make_dataset(tmp_path / "ds")
    out = tmp_path / "graph.json"
    result = cli("build-graph", yaml_path, "-o", out)
    assert result.exit_code == 0, result.output
    assert "Label graph (yolo): 3 labels, 4 images, 1 edge; 2 unlabeled images" in " ".join(result.stderr.split())
    graph = json.loads(out.read_text())
    assert graph["graph"]["format"] == "yolo" and graph["graph"]["split"] == "train"
    assert [n["id"] for n in graph["nodes"]] == ["car", "dog", "person"]


def test_extract_a_split_of_the_yaml(cli, tmp_path):
    yaml_path = make_dataset(tmp_path / "ds")
    out = tmp_path / "val.h5"
    result = cli("extract", yaml_path, "--split", "val", "-o", out, *FAST)
    assert result.exit_code == 0, result.output
    f = open_features(out)
    assert f.files == ["images/val/e.jpg", "images/val/f.jpg"]
    assert f.label_names == ["car", "dog", "person"]  # every class of names, even one no val image has
    assert f.labels.tolist() == [[0, 1, 0], [1, 0, 1]]
    train = tmp_path / "train.h5"  # the default split is train; -a works as for any annotations
    assert cli("extract", "-a", yaml_path, "-o", train, *FAST).exit_code == 0
    assert open_features(train).files == [f"images/train/{n}" for n in TRAIN]
    assert cli("extract", "-a", yaml_path, "--image-set", "val", "-o", tmp_path / "v2.h5", *FAST).exit_code == 0
    assert open_features(tmp_path / "v2.h5").files == f.files


def test_a_project_on_a_yolo_dataset(cli, tmp_path, monkeypatch):
    make_dataset(tmp_path / "ds")
    monkeypatch.chdir(tmp_path)
    assert cli("init", "--annotations", "ds/data.yaml").exit_code == 0
    assert cli("build-graph").exit_code == 0
    for split in ("train", "val"):
        result = cli("extract", "--split", split, *FAST)
        assert result.exit_code == 0, result.output
    assert open_features(tmp_path / "artifacts" / "val-features.h5").files == ["images/val/e.jpg", "images/val/f.jpg"]
    assert len(open_features(tmp_path / "artifacts" / "features.h5").files) == 4


@pytest.mark.parametrize("edit,expected", [
    (lambda root: (root / "labels/train/a.txt").write_text("0 0.5 0.5 0.2 0.3\n3 0.1 0.1 0.1 0.1\n"),
     "{root}/labels/train/a.txt:2: class 3 is not an index into the 3 names of data.yaml (write one "
     "`class x_center y_center width height` line per object, class an index into names)"),
    (lambda root: (root / "labels/train/b.txt").write_text("car 0.5 0.5 0.2 0.3\n"),
     "{root}/labels/train/b.txt:1: class car is not an index into the 3 names of data.yaml (write one "
     "`class x_center y_center width height` line per object, class an index into names)"),
    (lambda root: (root / "labels/train/b.txt").write_text("1\n"),
     "{root}/labels/train/b.txt:1: expected a class and at least 4 numbers, found '1' (write one "
     "`class x_center y_center width height` line per object, class an index into names)"),
    (lambda root: (root / "data.yaml").write_text("train: images/train\n"),
     "{root}/data.yaml: no class names (names:) (write `names: [cat, dog]` or `names: {{0: cat, 1: dog}}`)"),
    (lambda root: (root / "data.yaml").write_text("train: images/train\nnames: {0: a, 2: b}\n"),
     "{root}/data.yaml: names: the indices must be 0 to 1 (write `names: [cat, dog]` or `names: {{0: cat, 1: dog}}`)"),
    (lambda root: (root / "data.yaml").write_text("train: images/train\nnames: [a, b, a]\n"),
     "{root}/data.yaml: names: 'a' is given twice (give each class its own name)"),
    (lambda root: (root / "data.yaml").write_text("train: images/train\nnc: 2\nnames: [a, b, c]\n"),
     "{root}/data.yaml: nc is 2 but names has 3 classes (make nc match names, or drop nc)"),
    (lambda root: (root / "data.yaml").write_text("val: images/val\nnames: [person, car, dog]\n"),
     "{root}/data.yaml: names no train images (pass --split val)"),
    (lambda root: (root / "data.yaml").write_text("train: images/tran\nnames: [person, car, dog]\n"),
     "{root}/data.yaml: train: images/tran is not there (looked for {root}/images/tran) (fix the path in "
     "data.yaml (relative to `path`, or to the yaml's folder))"),
    (lambda root: (root / "data.yaml").write_text("train: [images/train\nnames: [a]\n"),
     "{root}/data.yaml:2: malformed YAML: expected ',' or ']', but got ':' (fix the file)"),
    (lambda root: (root / "data.yaml").write_text("train: !!python/object/apply:os.system [echo hi]\nnames: [a]\n"),
     "{root}/data.yaml:1: malformed YAML: could not determine a constructor for the tag "
     "'tag:yaml.org,2002:python/object/apply:os.system' (fix the file)"),
    (lambda root: [p.unlink() for p in (root / "labels/train").glob("*.txt")],
     "{root}/labels/train/a.txt: no label file for any of the 4 train images (put one .txt per image under "
     "labels/, beside images/, as ultralytics does)"),
])
def test_user_mistakes(cli, tmp_path, edit, expected):
    root = tmp_path / "ds"
    make_dataset(root)
    edit(root)
    line = one_line_error(cli("build-graph", root / "data.yaml", "-o", tmp_path / "g.json"))
    assert line == "Error: " + expected.format(root=root)


def test_yaml_never_builds_objects(tmp_path):
    """safe_load only: a python tag is a parse error, not a call."""
    root = tmp_path / "ds"
    make_dataset(root)
    marker = tmp_path / "ran"
    (root / "data.yaml").write_text(f"train: !!python/object/apply:os.system ['touch {marker}']\nnames: [a]\n")
    with pytest.raises(InputError):
        load_annotations(root / "data.yaml")
    assert not marker.exists()


# ---------------------------------------------------------------------------------------------
# Hugging Face imagefolder: <split>/metadata.jsonl beside the images, `file_name` relative to it

def make_imagefolder(root: Path) -> Path:
    """train/ with images (one in a subfolder) and metadata.jsonl, as `datasets` documents it."""
    rows = [("0001.jpg", ["cat", "dog"]), ("0002.jpg", ["dog"]), ("more/0003.png", ["cat", "bird"]),
            ("0004.jpg", [])]
    for k, (name, _) in enumerate(rows):
        (root / "train" / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (32, 24), (60 * k, 20, 90)).save(root / "train" / name)
    meta = root / "train" / "metadata.jsonl"
    meta.write_text("".join(json.dumps({"file_name": name, "labels": labels, "caption": f"photo {k}"}) + "\n"
                            for k, (name, labels) in enumerate(rows)))
    return meta


def test_imagefolder_metadata_through_build_graph_and_extract(cli, tmp_path):
    meta = make_imagefolder(tmp_path / "ds")
    graph = tmp_path / "graph.json"
    result = cli("build-graph", meta, "-o", graph)
    assert result.exit_code == 0, result.output
    assert "Label graph (jsonl): 3 labels, 4 images, 2 edges; 1 unlabeled image" in " ".join(result.stderr.split())
    out = tmp_path / "f.h5"
    result = cli("extract", tmp_path / "ds" / "train", "-a", meta, "-o", out, *FAST)
    assert result.exit_code == 0, result.output
    f = open_features(out)
    assert f.files == ["0001.jpg", "0002.jpg", "more/0003.png", "0004.jpg"]
    assert f.label_names == ["bird", "cat", "dog"]
    assert f.labels.tolist() == [[0, 1, 1], [0, 0, 1], [1, 1, 0], [0, 0, 0]]
    # file_name is relative to the metadata file's folder: the images folder may be left out
    assert cli("extract", "-a", meta, "-o", tmp_path / "g.h5", *FAST).exit_code == 0
    assert open_features(tmp_path / "g.h5").files == f.files


def test_imagefolder_label_column_by_another_name(tmp_path):
    meta = tmp_path / "metadata.jsonl"
    meta.write_text('{"file_name": "a.jpg", "tags": ["cat", "dog"]}\n{"file_name": "b.jpg", "tags": ["dog"]}\n')
    ann = load_annotations(meta)
    assert ann.files == ["a.jpg", "b.jpg"] and rows(ann) == {"a.jpg": {"cat", "dog"}, "b.jpg": {"dog"}}
    assert ann.meta["image_root"] == str(tmp_path)
    meta.write_text('{"file_name": "a.jpg", "label": "cat"}\n{"file_name": "b.jpg", "label": "dog"}\n')
    assert rows(load_annotations(meta)) == {"a.jpg": {"cat"}, "b.jpg": {"dog"}}  # single-label: one name
    meta.write_text('{"file_name": "a.jpg", "labels": "cat;dog"}\n')
    with pytest.raises(InputError, match=r'metadata\.jsonl:1: "labels" must be a list of names'):
        load_annotations(meta)
