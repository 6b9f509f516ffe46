"""`mlgraph build-graph` in process: success paths, the project folder, and every user mistake."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import one_line_error
from mlgraph_cli.core.graph.files import read_graph
from test_annotations import DATA, write_coco, write_voc

STATS = DATA / "coco2014-cooccurrence.json"


def flat(text: str) -> str:
    """stderr with rich's line wrapping undone."""
    return " ".join(text.split())


def write_csv(path: Path, text: str = "path,labels\na.jpg,cat;dog\nb.jpg,dog;person\nc.jpg,cat;dog;person\n"
                                      "d.jpg,bird\ne.jpg,\n") -> Path:
    path.write_text(text)
    return path


def test_coco_to_graph_json(cli, tmp_path):
    out = tmp_path / "graph.json"
    result = cli("build-graph", write_coco(tmp_path / "instances.json"), "-o", out)
    assert result.exit_code == 0, result.output
    assert ("Label graph (coco): 3 labels, 4 images, 2 edges; 1 unlabeled image; no labels dropped -> "
            f"{out}") in flat(result.stderr)
    g = read_graph(out)
    assert g.labels == ["cat", "dog", "person"] and g.num_images == 4
    np.testing.assert_array_equal(g.image_counts, [2, 2, 1])
    assert g.cooccurrence[0, 1] == 1 and g.cooccurrence[0, 2] == 1 and g.cooccurrence[1, 2] == 0
    meta = g.meta
    assert meta["format"] == "coco" and meta["source"].endswith("instances.json")
    assert meta["label_order_by"] == "name" and meta["unlabeled_images"] == 1 and meta["dropped_labels"] == {}
    assert meta["provenance"]["command"] == "mlgraph build-graph"
    assert meta["provenance"]["params"]["min_count"] == 0


def test_csv_to_stdout(cli, tmp_path):
    result = cli("build-graph", write_csv(tmp_path / "train.csv"), "-o", "-")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["graph"]["label_order"] == ["bird", "cat", "dog", "person"]
    assert {(e["source"], e["target"]): e["count"] for e in data["edges"]} == \
        {("cat", "dog"): 2, ("cat", "person"): 1, ("dog", "person"): 2}
    assert "-> stdout" in result.stderr and "note: 1 image(s) without labels" in result.stderr


def test_stats_to_graphml(cli, tmp_path):
    out = tmp_path / "coco.graphml"
    result = cli("build-graph", STATS, "--format", "stats", "-o", out)
    assert result.exit_code == 0, result.output
    assert "Label graph (stats): 80 labels, 82,783 images, 2,574 edges" in flat(result.stderr)
    raw = json.loads(STATS.read_text())
    g = read_graph(out)
    np.testing.assert_array_equal(g.cooccurrence.toarray(), raw["cooccurrence"])
    assert g.meta["format"] == "stats" and g.meta["split"].startswith("MS-COCO 2014 train")


def test_voc_split_and_label_order(cli, tmp_path):
    write_voc(tmp_path)
    out = tmp_path / "voc.json"
    result = cli("build-graph", tmp_path / "VOCdevkit", "--split", "trainval", "--label-order", "id", "-o", out)
    assert result.exit_code == 0, result.output
    g = read_graph(out)
    assert g.labels == ["car", "dog", "person"] and g.meta["split"] == "trainval" and g.meta["difficult"] == 2
    # difficult (0) entries are not positives: car has 2 images, person 2
    np.testing.assert_array_equal(g.image_counts, [2, 2, 2])
    assert g.cooccurrence[0, 2] == 1 and g.cooccurrence[1, 2] == 1 and g.cooccurrence[0, 1] == 0


def test_min_count_drops_and_records(cli, tmp_path):
    out = tmp_path / "g.json"
    result = cli("build-graph", write_csv(tmp_path / "train.csv"), "--min-count", "2", "-o", out)
    assert result.exit_code == 0, result.output
    assert "dropped 1 label(s) under --min-count 2: bird" in flat(result.stderr)
    g = read_graph(out)
    assert g.labels == ["cat", "dog", "person"] and g.num_images == 5
    assert g.meta["dropped_labels"] == {"bird": 1} and g.meta["min_count"] == 2


def test_min_count_too_high(cli, tmp_path):
    path = write_csv(tmp_path / "train.csv")
    line = one_line_error(cli("build-graph", path, "--min-count", "3", "-o", tmp_path / "g.json"))
    assert line == f"Error: {path}: --min-count 3 leaves 1 of 4 labels; a graph needs at least 2 (lower --min-count)"


def test_project_folder_no_arguments(cli, tmp_path, monkeypatch):
    write_coco(tmp_path / "instances.json")
    assert cli("init", tmp_path, "--annotations", "instances.json", "--format", "coco").exit_code == 0
    with open(tmp_path / "mlgraph.toml", "a") as fh:
        fh.write('\n[build-graph]\nlabel_order = "id"\n')
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")  # found in a parent folder, like git
    result = cli("build-graph")
    assert result.exit_code == 0, result.output
    g = read_graph(tmp_path / "artifacts" / "graph.json")
    assert g.labels == ["person", "dog", "cat"] and g.meta["label_order_by"] == "id"
    # an explicit path wins over the project's
    result = cli("build-graph", write_csv(tmp_path / "other.csv"), "-o", tmp_path / "other.json")
    assert result.exit_code == 0, result.output
    assert read_graph(tmp_path / "other.json").meta["format"] == "csv"


def test_project_bad_section_key(cli, tmp_path, monkeypatch):
    write_coco(tmp_path / "instances.json")
    cli("init", tmp_path, "--annotations", "instances.json")
    with open(tmp_path / "mlgraph.toml", "a") as fh:
        fh.write("\n[build-graph]\nmincount = 3\n")
    monkeypatch.chdir(tmp_path)
    line = one_line_error(cli("build-graph"))
    assert "mlgraph.toml: unknown key(s) in [build-graph]: mincount (known keys: " in line


# ---------------------------------------------------------------------------------------------
# User mistakes: one red line naming the file (and line or id), exit code 1

def test_no_annotations_outside_a_project(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = one_line_error(cli("build-graph"))
    assert line.startswith("Error: no annotations given and no mlgraph.toml here (pass the path, or run `mlgraph init`")


def test_missing_file(cli, tmp_path):
    line = one_line_error(cli("build-graph", tmp_path / "nope.json"))
    assert line == f"Error: {tmp_path / 'nope.json'}: no such file or folder (check the path, or set [dataset] " \
                   "annotations in mlgraph.toml)"


def test_malformed_json_names_line(cli, tmp_path):
    path = tmp_path / "instances.json"
    path.write_text('{"images": [\n {"id": 1},\n {"id": 2,,}\n]}\n')
    line = one_line_error(cli("build-graph", path, "-o", tmp_path / "g.json"))
    assert line.startswith(f"Error: {path}:3: malformed JSON: ")
    assert not (tmp_path / "g.json").exists()


def test_unknown_category_id(cli, tmp_path):
    path = write_coco(tmp_path / "i.json", extra_annotations=[{"id": 99, "image_id": 11, "category_id": 7}])
    line = one_line_error(cli("build-graph", path))
    assert line == f"Error: {path}: annotation 99 has unknown category id 7 (every category_id must be listed in " \
                   "`categories`)"


def test_csv_row_without_labels(cli, tmp_path):
    path = write_csv(tmp_path / "t.csv", "path,labels\na.jpg,cat;dog\nb.jpg\n")
    line = one_line_error(cli("build-graph", path))
    assert line == f"Error: {path}:3: row has no labels column (no ',') (write `path,label1;label2` (or `path,` " \
                   "for an image without labels))"


def test_conflicting_duplicate_ids(cli, tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"image": "a.jpg", "labels": ["cat"]}\n{"image": "b.jpg", "labels": ["dog"]}\n'
                    '{"image": "a.jpg", "labels": ["dog"]}\n')
    line = one_line_error(cli("build-graph", path))
    assert line == f"Error: {path}:3: image 'a.jpg' is listed again with different labels (first at line 1) " \
                   "(give each image one row with all its labels)"


def test_empty_file(cli, tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("\n\n")
    line = one_line_error(cli("build-graph", path))
    assert line == f"Error: {path}: the file is empty (point at a file with annotations)"


def test_a_single_label(cli, tmp_path):
    path = write_csv(tmp_path / "t.csv", "a.jpg,cat\nb.jpg,cat\n")
    line = one_line_error(cli("build-graph", path))
    assert line == f"Error: {path}: found only one label ('cat'); a graph needs at least 2 labels (check " \
                   "--label-delimiter and --format)"


def test_graph_file_given(cli, tmp_path):
    out = tmp_path / "g.json"
    assert cli("build-graph", write_csv(tmp_path / "t.csv"), "-o", out).exit_code == 0
    line = one_line_error(cli("build-graph", out))
    assert line == f"Error: {out}: this is an mlgraph graph file, which `mlgraph embed` reads (expected " \
                   "annotations: COCO JSON, a VOC or NUS-WIDE folder, Open Images CSV, CSV or JSONL, or a YOLO " \
                   "data.yaml)"


def test_hdf5_file_given(cli, tmp_path):
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "emb.h5"
    with h5py.File(path, "w") as f:
        f.attrs["schema"] = "mlgraph/embeddings@1"
    line = one_line_error(cli("build-graph", path))
    assert line.startswith(f"Error: {path}: this is an mlgraph embeddings file, which `mlgraph train` reads "
                           "(expected annotations: COCO JSON")


def test_undetectable_file(cli, tmp_path):
    path = tmp_path / "labels.dat"
    path.write_text("just some words\n")
    line = one_line_error(cli("build-graph", path))
    assert line == f"Error: {path}: cannot tell the annotation format from the name or content (pass --format " \
                   "coco|voc|nuswide|openimages|csv|jsonl|yolo|stats)"


def test_output_is_a_folder(cli, tmp_path):
    line = one_line_error(cli("build-graph", write_csv(tmp_path / "t.csv"), "-o", tmp_path))
    assert line == f"Error: {tmp_path}: is a folder (pass a file name, e.g. -o {tmp_path / 'graph.json'})"


def test_wrong_format_for_a_folder(cli, tmp_path):
    voc = write_voc(tmp_path)
    line = one_line_error(cli("build-graph", voc, "--format", "csv"))
    assert line.startswith(f"Error: {voc}: --format csv reads a file, this is a folder (pass --format coco|")


def test_unknown_format_is_a_usage_error(cli, tmp_path):
    result = cli("build-graph", write_csv(tmp_path / "t.csv"), "--format", "xml")
    assert result.exit_code == 2


def test_help_has_runnable_example(cli):
    result = cli("build-graph", "--help")
    assert result.exit_code == 0
    assert "Example: mlgraph build-graph" in result.stdout


def test_cli_format_choices_match_core(cli, tmp_path):
    from mlgraph_cli.core.annotations import FORMATS
    from mlgraph_cli.core.graph.config import GRAPH_FORMATS

    assert GRAPH_FORMATS == (*FORMATS, "yt8m")
    for fmt in GRAPH_FORMATS:  # every format the library reads is taken by the command (the file is what fails)
        assert cli("build-graph", tmp_path / "missing", "--format", fmt).exit_code == 1, fmt
    result = cli("build-graph", "--format", "pascal")
    assert result.exit_code == 2 and "'pascal' is not one of" in result.output
    assert cli("build-graph", "--label-order", "size").exit_code == 2


# ---------------------------------------------------------------------------------------------
# YouTube-8M TFRecords (--format yt8m)

def write_shards(folder: Path) -> Path:
    """Two frame-level shards (5 videos) and a vocabulary.csv whose index order is not name order."""
    from mlgraph_cli.core.media.yt8m.tfrecord import write_records
    from mlgraph_cli.core.media.yt8m.records import encode_frame_record

    folder.mkdir(parents=True, exist_ok=True)
    frames = np.zeros((2, 1024), np.uint8), np.zeros((2, 128), np.uint8)
    labels = {"train0000.tfrecord": [[0, 2], [2], [0, 2, 7]], "train0001.tfrecord": [[1], []]}
    for name, videos in labels.items():
        write_records(folder / name, [encode_frame_record(f"{name}-{i}", ls, *frames) for i, ls in enumerate(videos)])
    (folder / "vocabulary.csv").write_text("Index,TrainVideoCount,KnowledgeGraphId,Name\n"
                                           "0,9,/m/a,Zebra\n1,9,/m/b,Car\n2,9,/m/c,Music\n")
    return folder


@pytest.mark.parametrize("which", ["glob", "folder", "file"])
def test_yt8m_shards_are_detected(cli, tmp_path, which):
    shards = write_shards(tmp_path / "yt8m")
    source = {"glob": str(shards / "train*.tfrecord"), "folder": shards, "file": shards / "train0000.tfrecord"}[which]
    out = tmp_path / "graph.json"
    result = cli("build-graph", source, "-o", out, "--vocabulary", shards / "vocabulary.csv")
    assert result.exit_code == 0, result.output
    g = read_graph(out)
    assert g.labels == ["Car", "Music", "Zebra"] and g.meta["format"] == "yt8m"  # sorted by name
    videos = 3 if which == "file" else 5
    assert g.num_images == videos
    np.testing.assert_array_equal(g.image_counts, [0, 3, 2] if which == "file" else [1, 3, 2])
    assert g.cooccurrence[1, 2] == 2 and g.cooccurrence[0, 1] == 0
    unlabeled = "0 unlabeled videos" if which == "file" else "1 unlabeled video;"
    assert f"Label graph (yt8m): 3 labels, {videos} videos, 1 edge; {unlabeled}" in flat(result.stderr)
    # class 7 is not in the vocabulary: dropped and said so
    assert "1 label(s) outside the 3 label columns were dropped" in flat(result.stderr)


def test_yt8m_label_order_id_and_segment_classes(cli, tmp_path):
    shards = write_shards(tmp_path / "yt8m")
    (shards / "segment_label_ids.csv").write_text("Index\n2\n0\n")
    out = tmp_path / "graph.json"
    result = cli("build-graph", shards, "-o", out, "--format", "yt8m", "--vocabulary", shards / "vocabulary.csv",
                 "--segment-classes", shards / "segment_label_ids.csv", "--label-order", "id")
    assert result.exit_code == 0, result.output
    g = read_graph(out)
    assert g.labels == ["Zebra", "Music"]  # class index order: 0, 2
    np.testing.assert_array_equal(g.image_counts, [2, 3])


def test_error_vocabulary_for_other_formats(cli, tmp_path):
    src = write_csv(tmp_path / "train.csv")
    line = one_line_error(cli("build-graph", src, "-o", tmp_path / "g.json", "--vocabulary", tmp_path / "v.csv"))
    assert line == (f"Error: {src}: --vocabulary is for YouTube-8M TFRecords, but this is csv (drop --vocabulary, "
                    "or pass --format yt8m for TFRecords)")


def test_error_yt8m_glob_matches_nothing(cli, tmp_path):
    pattern = tmp_path / "none*.tfrecord"
    line = one_line_error(cli("build-graph", str(pattern), "-o", tmp_path / "g.json"))
    assert line == f"Error: {pattern}: no file matches this pattern (check the pattern and quote it)"
