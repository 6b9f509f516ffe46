"""Annotation readers: every format on a tiny fixture written here, plus detection and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import one_line_error
from mlgraph_cli.core import annotations
from mlgraph_cli.core.annotations import tabular
from mlgraph_cli.core.annotations import Annotations, detect_format, load_annotations, load_label_stats
from mlgraph_cli.errors import InputError, MismatchError

DATA = Path(__file__).parent / "data"


# ---------------------------------------------------------------------------------------------
# Fixture writers (shared with test_build_graph.py)

def write_coco(path: Path, *, extra_annotations=(), extra_images=()) -> Path:
    """Three labelled images and one without annotations; category ids out of name order."""
    data = {
        "info": {"description": "tiny"},
        "images": [{"id": 10, "file_name": "a.jpg"}, {"id": 11, "file_name": "b.jpg"},
                   {"id": 12, "file_name": "c.jpg"}, {"id": 13, "file_name": "empty.jpg"}, *extra_images],
        "annotations": [
            {"id": 1, "image_id": 10, "category_id": 3},
            {"id": 2, "image_id": 10, "category_id": 1},
            {"id": 3, "image_id": 10, "category_id": 1, "iscrowd": 1},  # repeated category, crowd
            {"id": 4, "image_id": 11, "category_id": 2, "iscrowd": 1},  # crowd still counts
            {"id": 5, "image_id": 12, "category_id": 3},
            {"id": 6, "image_id": 12, "category_id": 2},
            *extra_annotations,
        ],
        "categories": [{"id": 1, "name": "person"}, {"id": 2, "name": "dog"}, {"id": 3, "name": "cat"}],
    }
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")
    return path


def write_voc(root: Path, split: str = "trainval") -> Path:
    """VOCdevkit/VOC2007 with 3 classes x 4 images; positives padded with an extra space."""
    voc = root / "VOCdevkit" / "VOC2007"
    main = voc / "ImageSets" / "Main"
    main.mkdir(parents=True)
    ids = ["000005", "000007", "000009", "000012"]
    (main / f"{split}.txt").write_text("\n".join(ids) + "\n")
    table = {"car": [1, -1, 0, 1], "dog": [-1, 1, 1, -1], "person": [1, 1, -1, 0]}
    for cls, values in table.items():
        lines = [f"{i}  {v}" if v == 1 else f"{i} {v}" for i, v in zip(ids, values)]
        (main / f"{cls}_{split}.txt").write_text("\n".join(lines) + "\n")
    return voc


def write_nuswide(root: Path, *, ragged: bool = False) -> Path:
    """Concepts81.txt (3 concepts), ImageList with Windows separators, AllLabels and TrainTestLabels."""
    (root / "ImageList").mkdir(parents=True)
    (root / "Groundtruth" / "AllLabels").mkdir(parents=True)
    (root / "Groundtruth" / "TrainTestLabels").mkdir(parents=True)
    (root / "Concepts81.txt").write_text("sky\nclouds\nwater\n")
    images = ["actor\\0001_1.jpg", "beach\\0002_2.jpg", "sea\\0003_3.jpg", "sky\\0004_4.jpg"]
    (root / "ImageList" / "Imagelist.txt").write_text("\r\n".join(images) + "\r\n")
    (root / "ImageList" / "TrainImagelist.txt").write_text("\n".join(images[:3]) + "\n")
    (root / "ImageList" / "TestImagelist.txt").write_text(images[3] + "\n")
    table = {"sky": [1, 1, 0, 1], "clouds": [1, 0, 0, 1], "water": [0, 1, 1, 0]}
    for concept, values in table.items():
        lines = [str(v) for v in values]
        all_lines = lines[:-1] if ragged and concept == "water" else lines
        (root / "Groundtruth" / "AllLabels" / f"Labels_{concept}.txt").write_text("\n".join(all_lines) + "\n")
        train = root / "Groundtruth" / "TrainTestLabels" / f"Labels_{concept}_Train.txt"
        train.write_text("\n".join(lines[:3]) + "\n")
        (root / "Groundtruth" / "TrainTestLabels" / f"Labels_{concept}_Test.txt").write_text(lines[3] + "\n")
    return root


def write_openimages(folder: Path, *, descriptions: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = [
        "ImageID,Source,LabelName,Confidence",
        "000026e7ee790996,verification,/m/07j7r,1",
        "000026e7ee790996,verification,/m/04hgtk,0",
        "000026e7ee790996,machine,/m/0c9ph5,0.7",
        "000062a39995e348,crowdsource-verification,/m/07j7r,1",
        "000062a39995e348,machine,/m/04hgtk,0.3",
        "0000c64e1253d68f,machine,/m/0c9ph5,0.9",
        "0000c64e1253d68f,verification,/m/0c9ph5,0",  # a human "no" beats the machine "yes"
        "0000c64e1253d68f,verification,/m/07j7r,1",
    ]
    path = folder / "train-annotations-human-imagelabels.csv"
    path.write_text("\n".join(rows) + "\n")
    if descriptions:
        (folder / "class-descriptions.csv").write_text(
            '/m/07j7r,Tree\n/m/04hgtk,Human head\n/m/0c9ph5,"Flower, wild"\n')
    return path


# ---------------------------------------------------------------------------------------------
# Readers

def as_sets(ann: Annotations) -> dict[str, set[str]]:
    y = ann.positives.toarray()
    return {i: {ann.labels[j] for j in np.flatnonzero(row)} for i, row in zip(ann.image_ids, y)}


def test_coco_reader_name_order_keeps_unlabeled_images(tmp_path):
    ann = load_annotations(write_coco(tmp_path / "instances.json"))
    assert ann.format == "coco"
    assert ann.labels == ["cat", "dog", "person"]
    assert ann.files == ["a.jpg", "b.jpg", "c.jpg", "empty.jpg"]
    assert as_sets(ann) == {"10": {"cat", "person"}, "11": {"dog"}, "12": {"cat", "dog"}, "13": set()}
    assert ann.meta["unlabeled_images"] == 1 and ann.meta["label_order"] == "name"
    assert ann.meta["category_ids"] == [3, 2, 1]
    assert any("1 image(s) without labels" in n for n in ann.notes)
    assert ann.positives.dtype == np.uint8 and ann.positives.max() == 1  # repeated category is one label


def test_coco_reader_id_order(tmp_path):
    ann = load_annotations(write_coco(tmp_path / "instances.json"), label_order="id")
    assert ann.labels == ["person", "dog", "cat"]
    assert ann.meta["label_order"] == "id" and ann.meta["category_ids"] == [1, 2, 3]
    assert as_sets(ann)["10"] == {"cat", "person"}


def test_coco_unknown_category_and_image(tmp_path):
    bad = write_coco(tmp_path / "a.json", extra_annotations=[{"id": 77, "image_id": 10, "category_id": 91}])
    with pytest.raises(InputError, match=r"a\.json: annotation 77 has unknown category id 91"):
        load_annotations(bad)
    bad = write_coco(tmp_path / "b.json", extra_annotations=[{"id": 78, "image_id": 999, "category_id": 1}])
    with pytest.raises(InputError, match=r"b\.json: annotation 78 refers to unknown image id 999"):
        load_annotations(bad)


def test_voc_reader_last_token_and_difficult(tmp_path):
    voc = write_voc(tmp_path)
    for where in (tmp_path / "VOCdevkit", voc, voc / "ImageSets" / "Main"):
        ann = load_annotations(where)
        assert ann.format == "voc" and ann.labels == ["car", "dog", "person"]
    assert ann.image_ids == ["000005", "000007", "000009", "000012"]
    assert ann.files[0] == "JPEGImages/000005.jpg" and ann.meta["image_root"] == str(voc)
    dense = ann.dense()
    np.testing.assert_array_equal(dense, [[1, 0, 1], [0, 1, 1], [-1, 1, 0], [1, 0, -1]])
    # difficult (0) is not a positive for counting
    assert ann.positives.toarray()[2, 0] == 0 and ann.ignore.toarray()[2, 0] == 1
    assert ann.meta["difficult"] == 2


def test_voc_unknown_split_lists_the_splits(tmp_path):
    write_voc(tmp_path)
    with pytest.raises(InputError, match=r"no <class>_test\.txt files for split 'test' \(pass --split trainval\)"):
        load_annotations(tmp_path / "VOCdevkit", split="test")


def test_voc_bad_value_names_line(tmp_path):
    voc = write_voc(tmp_path)
    (voc / "ImageSets" / "Main" / "dog_trainval.txt").write_text("000005 -1\n000007 yes\n")
    with pytest.raises(InputError, match=r"dog_trainval\.txt:2: expected `<image id> <1\|-1\|0>`, found '000007 yes'"):
        load_annotations(voc)


def test_nuswide_all_train_test(tmp_path):
    root = write_nuswide(tmp_path / "NUS-WIDE")
    ann = load_annotations(root, split="all")
    assert ann.format == "nuswide" and ann.labels == ["clouds", "sky", "water"]
    assert ann.files == ["actor/0001_1.jpg", "beach/0002_2.jpg", "sea/0003_3.jpg", "sky/0004_4.jpg"]
    assert as_sets(ann)["beach/0002_2"] == {"sky", "water"}
    assert ann.meta["image_root"].endswith("Flickr")
    default = load_annotations(root)  # TrainTestLabels present: the training split
    assert default.meta["split"] == "train" and default.num_images == 3
    test = load_annotations(root, split="test", label_order="id")
    assert test.labels == ["sky", "clouds", "water"] and as_sets(test) == {"sky/0004_4": {"sky", "clouds"}}


def test_nuswide_ragged_files(tmp_path):
    root = write_nuswide(tmp_path / "NUS-WIDE", ragged=True)
    with pytest.raises(InputError, match=r"Labels_water\.txt: 3 lines but Imagelist\.txt lists 4 images"):
        load_annotations(root, split="all")


def test_openimages_reader(tmp_path):
    path = write_openimages(tmp_path / "oi")
    assert detect_format(path) == "openimages"
    ann = load_annotations(path)
    assert ann.labels == ["Flower, wild", "Human head", "Tree"]  # quoted name with a comma
    assert ann.files[0] == "000026e7ee790996.jpg"
    assert as_sets(ann) == {"000026e7ee790996": {"Tree", "Flower, wild"}, "000062a39995e348": {"Tree"},
                            "0000c64e1253d68f": {"Tree"}}
    assert ann.meta["verified_negatives"] == 2 and ann.negatives.nnz == 2
    assert ann.ignore is None  # unknown labels count as negatives
    assert any("0 < Confidence < 0.5" in n for n in ann.notes)


def test_openimages_without_descriptions_uses_mids(tmp_path):
    ann = load_annotations(write_openimages(tmp_path / "oi", descriptions=False), label_order="id")
    assert ann.labels == ["/m/04hgtk", "/m/07j7r", "/m/0c9ph5"]
    assert any("labels are MIDs" in n for n in ann.notes)


def test_csv_reader_header_delimiters_and_unlabeled(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("path,labels\nimg/a.jpg,cat;dog\nimg/b.jpg, dog \n\nimg/c.jpg,\nimg/d.jpg,dog;cat;dog\n")
    ann = load_annotations(path)
    assert ann.format == "csv" and ann.labels == ["cat", "dog"]
    assert ann.image_ids == ["img/a.jpg", "img/b.jpg", "img/c.jpg", "img/d.jpg"] and ann.files == ann.image_ids
    assert as_sets(ann) == {"img/a.jpg": {"cat", "dog"}, "img/b.jpg": {"dog"}, "img/c.jpg": set(),
                            "img/d.jpg": {"cat", "dog"}}
    assert ann.meta["header"] is True and ann.meta["unlabeled_images"] == 1


def test_csv_fast_and_slow_paths_agree(tmp_path, monkeypatch):
    rows = [f"p{i}.jpg,{'l' + str(i % 3)};{'l' + str(i % 5)}" for i in range(40)]
    fast = tmp_path / "fast.csv"
    fast.write_text("\n".join(rows) + "\n")
    slow = tmp_path / "slow.csv"  # quotes send it through the csv module
    slow.write_text("\n".join(f'"{r.split(",")[0]}",{r.split(",")[1]}' for r in rows) + "\n")
    b = load_annotations(slow)
    monkeypatch.setattr(tabular, "_csv_slow", None)  # the plain file must not need it
    a = load_annotations(fast)
    assert a.labels == b.labels and a.image_ids == b.image_ids
    assert (a.positives != b.positives).nnz == 0
    assert a.meta["header"] is False


def test_csv_other_delimiters(tmp_path):
    tsv = tmp_path / "a.tsv"
    tsv.write_text("x.jpg\tdining table|person\ny.jpg\tperson\n")
    ann = load_annotations(tsv, label_delimiter="|")
    assert ann.labels == ["dining table", "person"] and as_sets(ann)["x.jpg"] == {"dining table", "person"}
    spaced = tmp_path / "planet.csv"
    spaced.write_text("image_name tags\nx.jpg cloudy primary\ny.jpg clear\n")
    ann = load_annotations(spaced, delimiter=" ", label_delimiter=" ")
    assert as_sets(ann) == {"x.jpg": {"cloudy", "primary"}, "y.jpg": {"clear"}}


def test_csv_named_columns(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("split,labels,filename\ntrain,cat;dog,a.jpg\ntrain,dog,b.jpg\n")
    ann = load_annotations(path)
    assert ann.image_ids == ["a.jpg", "b.jpg"] and as_sets(ann)["a.jpg"] == {"cat", "dog"}


@pytest.mark.parametrize("text, message", [
    ("path,labels\n", "no rows of annotations after the header"),
    ("a.jpg,cat\nb.jpg,cat,dog\n", ":2: row has 3 columns, expected 2; labels are separated by ';'"),
    ("path,labels\na.jpg,cat\nb.jpg,cat,dog\n", ":3: row has 3 columns, expected 2"),
    ('a.jpg,cat\n"b.jpg\n', ":2: row has no labels column"),
    (b"a.jpg,caf\xe9\n", ":1: not UTF-8 text"),
])
def test_csv_errors(tmp_path, text, message):
    path = tmp_path / "t.csv"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(InputError) as info:
        load_annotations(path)
    assert str(info.value).startswith(str(path)) and message in str(info.value)


def test_coco_annotation_without_image_id(tmp_path):
    bad = write_coco(tmp_path / "a.json", extra_annotations=[{"id": 42, "category_id": 1}])
    with pytest.raises(InputError, match=r"a\.json: annotation 42 lacks image_id or category_id"):
        load_annotations(bad)


def test_csv_one_hot_table(tmp_path):
    path = tmp_path / "classification_trainval.csv"  # ML-GCN's VOC cache: -1 negative, 0 difficult
    path.write_text("name,car,dog,person\n000005,1,-1,1\n000007,-1,1,1\n000009,0,1,-1\n")
    ann = load_annotations(path)
    assert ann.labels == ["car", "dog", "person"] and ann.meta["one_hot"] is True
    np.testing.assert_array_equal(ann.dense(), [[1, 0, 1], [0, 1, 1], [-1, 1, 0]])
    plain = tmp_path / "fastai.csv"  # 0/1 only: 0 is a negative
    plain.write_text("filename,cat,dog\na.jpg,1,0\nb.jpg,0, 1\n")
    ann = load_annotations(plain)
    assert ann.ignore is None and as_sets(ann) == {"a.jpg": {"cat"}, "b.jpg": {"dog"}}
    plain.write_text("filename,cat,dog\na.jpg,1,0\nb.jpg,0,yes\n")
    with pytest.raises(InputError, match=r"fastai\.csv:3: one-hot cell 'yes' under 'dog'; expected 1, 0 or -1"):
        load_annotations(plain)


def test_csv_space_hint(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("a.jpg,cat dog\nb.jpg,dog bird\n")
    ann = load_annotations(path)
    assert any("--label-delimiter ' '" in n for n in ann.notes)


def test_duplicates_merge_or_conflict(tmp_path):
    same = tmp_path / "same.csv"
    same.write_text("a.jpg,cat;dog\nb.jpg,dog\na.jpg,dog;cat\n")
    ann = load_annotations(same)
    assert ann.image_ids == ["a.jpg", "b.jpg"] and any("merged" in n for n in ann.notes)
    clash = tmp_path / "clash.csv"
    clash.write_text("path,labels\na.jpg,cat;dog\nb.jpg,dog\na.jpg,cat\n")
    with pytest.raises(InputError, match=r"clash\.csv:4: image 'a\.jpg' is listed again with different labels "
                                         r"\(first at line 2\)"):
        load_annotations(clash)


def test_jsonl_reader_fast_and_exact(tmp_path, monkeypatch):
    fast = tmp_path / "a.jsonl"
    fast.write_text('{"image": "a.jpg", "labels": ["cat", "dog"]}\n{"image": "b.jpg", "labels": []}\n'
                    '{"image":"c.jpg","labels":["dog"]}\n')
    exact = tmp_path / "b.jsonl"  # escapes and extra keys: the JSON parser
    exact.write_text('{"labels": ["cat", "dog"], "image": "a.jpg", "id": "A"}\n\n'
                     '{"image": "b.jpg", "labels": []}\n{"image": "c.jpg", "labels": ["d\\u006fg"]}\n')
    b = load_annotations(exact)
    monkeypatch.setattr(tabular, "_jsonl_exact", None)  # canonical lines must not need the JSON parser
    a = load_annotations(fast)
    assert a.format == b.format == "jsonl"
    assert a.labels == b.labels == ["cat", "dog"]
    assert a.image_ids == ["a.jpg", "b.jpg", "c.jpg"] and b.image_ids == ["A", "b.jpg", "c.jpg"]
    assert b.files == ["a.jpg", "b.jpg", "c.jpg"]
    assert (a.positives != b.positives).nnz == 0 and a.meta["unlabeled_images"] == 1


def test_jsonl_bad_lines(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"image": "a.jpg", "labels": ["cat"]}\n{"image": "b.jpg", "labels": ["cat"\n')
    with pytest.raises(InputError, match=r"a\.jsonl:2: malformed JSON"):
        load_annotations(path)
    path.write_text('{"image": "a.jpg", "labels": ["cat"]}\n{"image": "b.jpg", "labels": "cat;dog"}\n')
    with pytest.raises(InputError, match=r"a\.jsonl:2: \"labels\" must be a list of names"):
        load_annotations(path)
    path.write_text('{"image": "a.jpg", "labels": ["cat"]}\n{"image": "b.jpg", "labels": [3]}\n')
    with pytest.raises(InputError, match=r"a\.jsonl:2: \"labels\" must be a list of names"):
        load_annotations(path)


def test_reorder_and_dense(tmp_path):
    ann = load_annotations(write_coco(tmp_path / "i.json"))
    moved = ann.reorder(["person", "cat", "bird", "dog"])
    assert moved.labels == ["person", "cat", "bird", "dog"]
    np.testing.assert_array_equal(moved.dense()[0], [1, 1, 0, 0])
    assert moved.dense().dtype == np.int8
    with pytest.raises(MismatchError, match="1 label\\(s\\) not in the expected label set: 'dog'"):
        ann.reorder(["cat", "person"])


# ---------------------------------------------------------------------------------------------
# Detection and statistics

def test_detect_format(tmp_path):
    assert detect_format(write_coco(tmp_path / "i.json")) == "coco"
    assert detect_format(DATA / "coco2014-cooccurrence.json") == "stats"
    (tmp_path / "a.jsonl").write_text('{"image": "a.jpg", "labels": ["x"]}\n')
    assert detect_format(tmp_path / "a.jsonl") == "jsonl"
    (tmp_path / "lines.json").write_text('{"image": "a.jpg", "labels": ["x"]}\n{"image": "b.jpg", "labels": []}\n')
    assert detect_format(tmp_path / "lines.json") == "jsonl"
    (tmp_path / "a.csv").write_text("a.jpg,x\n")
    assert detect_format(tmp_path / "a.csv") == "csv"
    assert detect_format(write_voc(tmp_path / "v")) == "voc"
    assert detect_format(write_nuswide(tmp_path / "n")) == "nuswide"
    (tmp_path / "x.bin").write_bytes(b"\x00\x01\x02")
    with pytest.raises(InputError, match=r"x\.bin: cannot tell the annotation format .* \(pass --format coco\|voc\|"):
        detect_format(tmp_path / "x.bin")


def test_load_annotations_refuses_stats(tmp_path):
    with pytest.raises(InputError, match="label statistics hold no per-image labels"):
        load_annotations(DATA / "coco2014-cooccurrence.json")


def test_label_stats_fixture():
    g = load_label_stats(DATA / "coco2014-cooccurrence.json")
    raw = json.loads((DATA / "coco2014-cooccurrence.json").read_text())
    assert g.num_images == 82783 and g.num_labels == 80 and g.labels == raw["labels"]
    np.testing.assert_array_equal(g.image_counts, raw["image_counts"])
    np.testing.assert_array_equal(g.dense_cooccurrence(), np.array(raw["cooccurrence"], dtype=float))
    person, dog = g.index("person"), g.index("dog")
    assert g.image_counts[person] == 45174 and g.cooccurrence[person, dog] == raw["cooccurrence"][person][dog]


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("cooccurrence"), "label statistics lack cooccurrence"),
    (lambda d: d["cooccurrence"][0].__setitem__(1, 5), "cooccurrence is not symmetric"),
    (lambda d: d.update(split="somewhere"), "the number of images is missing"),
    (lambda d: d["image_counts"].pop(), "3 labels but image_counts has shape (2,)"),
    (lambda d: d["image_counts"].__setitem__(0, 2.5), "`image_counts` and `cooccurrence` must hold whole numbers"),
    (lambda d: d["cooccurrence"][0].__setitem__(1, 0.5), "`image_counts` and `cooccurrence` must hold whole numbers"),
    (lambda d: d["image_counts"].__setitem__(0, 5), "'a' has 5 images, more than the 4 images of the statistics"),
    (lambda d: d.update(image_counts=[3, 2, 2], cooccurrence=[[0, 0, 0], [0, 0, 0], [0, 0, 0]]),
     "'a' (3 images) and 'b' (2 images) co-occur 0 times, so together they are on 5 images, more than the 4"),
])
def test_label_stats_errors(tmp_path, change, message):
    data = {"labels": ["a", "b", "c"], "image_counts": [3, 2, 1], "cooccurrence": [[0, 1, 0], [1, 0, 1], [0, 1, 0]],
            "split": "toy (4 images)"}
    change(data)
    path = tmp_path / "s.json"
    path.write_text(json.dumps(data))
    with pytest.raises(InputError) as info:
        load_label_stats(path)
    assert message in str(info.value) and str(path) in str(info.value)


def test_csv_header_that_is_not_recognised_is_said(tmp_path):
    """`filepath,labelz` is not a known header: it becomes an image and a label, and a note says so."""
    path = tmp_path / "a.csv"
    path.write_text("filepath,labelz\nimg/a.jpg,cat;dog\nimg/b.jpg,dog\n")
    ann = load_annotations(path)
    assert ann.meta["header"] is False and "labelz" in ann.labels  # read as the user wrote it, but ...
    assert (f"line 1 ('filepath,labelz') was read as an image with the label(s) 'labelz', but looks like a header: "
            "if it is one, name its columns path,labels") in ann.notes


@pytest.mark.parametrize("text", [
    "path,labels\nimg/a.jpg,cat\n",  # a known header
    "a.jpg,cat\nb.jpg,dog\n",  # every row an image with a suffix
    "000001,cat\n000002,cat;dog\n000003,dog\n",  # ids without suffixes throughout
    "header_like,cat\nb.jpg,cat\n",  # its label labels other rows too
])
def test_csv_rows_that_look_like_data_are_not_called_headers(tmp_path, text):
    path = tmp_path / "a.csv"
    path.write_text(text)
    assert not any("looks like a header" in n for n in load_annotations(path).notes)


def test_csv_labels_joined_by_another_character_are_said(tmp_path):
    slashed = tmp_path / "b.csv"  # a '/' inside names that are not made of other labels is left alone
    slashed.write_text("a.jpg,t-shirt/top;bag\nb.jpg,bag\n")
    assert not any("--label-delimiter" in n for n in load_annotations(slashed).notes)
    slashed.write_text("a.jpg,shirt/bag\nb.jpg,bag\nc.jpg,shirt\n")  # ... unless the pieces are labels too
    ann = load_annotations(slashed)
    assert ann.labels == ["bag", "shirt", "shirt/bag"]  # the guess stands ...
    assert ("1 label name(s) contain '/' (e.g. 'shirt/bag') and were each read as one label: if '/' separates "
            "labels, pass --label-delimiter '/'") in ann.notes  # ... and is said
    explicit = tmp_path / "c.csv"  # a delimiter chosen by the user is not a guess
    explicit.write_text("a.jpg,shirt/bag\nb.jpg,bag\nc.jpg,shirt\n")
    assert not any("--label-delimiter" in n for n in load_annotations(explicit, label_delimiter=";").notes)


def test_build_graph_says_its_guesses_on_stderr(cli, tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("a.jpg,shirt/bag\nb.jpg,bag;shirt\nc.jpg,shirt\n")
    result = cli("build-graph", path, "-o", tmp_path / "g.json")
    assert result.exit_code == 0, result.output
    assert ("note: 1 label name(s) contain '/' (e.g. 'shirt/bag') and were each read as one label: if '/' separates "
            "labels, pass --label-delimiter '/'") in result.stderr.splitlines()


def test_csv_labels_joined_by_a_bar_are_refused_unless_the_delimiter_is_given(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("a.jpg,cat|dog\nb.jpg,dog\nc.jpg,cat|bird\n")
    with pytest.raises(InputError) as info:
        load_annotations(path)
    assert str(info.value) == (f"{path}: 2 label name(s) contain '|' (e.g. 'cat|dog'): the labels seem to be joined "
                               "by '|', not ';' (pass --label-delimiter '|')")
    assert load_annotations(path, label_delimiter="|").labels == ["bird", "cat", "dog"]
    explicit = load_annotations(path, label_delimiter=";")  # a delimiter chosen by the user is not a guess
    assert explicit.labels == ["cat|bird", "cat|dog", "dog"] and not any("|" in n for n in explicit.notes)
    columns = tmp_path / "b.csv"  # '|' as the column delimiter is not a joined label
    columns.write_text("a.jpg|cat;dog\nb.jpg|dog\n")
    assert load_annotations(columns, delimiter="|").labels == ["cat", "dog"]


def test_build_graph_refuses_bar_joined_labels_in_one_line(cli, tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("path,labels\n" + "".join(f"img{k}.jpg,{a}|{b}\n" for k, (a, b) in
                                              enumerate([("cat", "dog"), ("dog", "bird"), ("cat", "bird")])))
    line = one_line_error(cli("build-graph", path, "-o", tmp_path / "g.json"))
    assert line == (f"Error: {path}: 3 label name(s) contain '|' (e.g. 'cat|dog'): the labels seem to be joined by "
                    "'|', not ';' (pass --label-delimiter '|')")
    assert not (tmp_path / "g.json").exists()
    result = cli("build-graph", path, "-o", tmp_path / "g.json", "--label-delimiter", "|")
    assert result.exit_code == 0, result.output
    assert "3 labels, 3 images, 3 edges" in result.stderr


def test_extract_takes_the_label_delimiter_too(cli, tmp_path):
    from PIL import Image

    (tmp_path / "imgs").mkdir()
    for k in range(2):
        Image.new("RGB", (32, 32), (80 * k, 0, 0)).save(tmp_path / "imgs" / f"{k}.png")
    path = tmp_path / "a.csv"
    path.write_text("0.png,cat|dog\n1.png,dog\n")
    fast = ["--backbone", "resnet18", "--weights", "none", "--image-size", "32", "--workers", "0"]
    line = one_line_error(cli("extract", tmp_path / "imgs", "-a", path, "-o", tmp_path / "f.h5", *fast))
    assert line.endswith("(pass --label-delimiter '|')")
    result = cli("extract", tmp_path / "imgs", "-a", path, "-o", tmp_path / "f.h5", *fast, "--label-delimiter", "|")
    assert result.exit_code == 0, result.output
    assert "2 images, 2 labels" in " ".join(result.stderr.split())
