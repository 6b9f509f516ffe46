"""A thin CLI: every stage entry resolves the project and the defaults itself, so a library
caller with a project folder gets what the command gets; help shows the dataclasses' defaults."""

from __future__ import annotations

from dataclasses import dataclass, field

from mlgraph_cli.cli._options import default_help
from mlgraph_cli.core.graph.files import read_graph
from mlgraph_cli.core.project import load_project
from test_annotations import write_coco
from test_embed import graph_file  # noqa: F401 (a fixture)
from test_yt8m_import import shards  # noqa: F401 (a fixture)


@dataclass
class _Cfg:
    lr: float = 0.001
    seconds: float = 5.0
    head: str = "cma"
    flip: bool = True
    size: int | None = field(default=None, metadata={"default": "the backbone's"})
    limit: int | None = None


def test_default_help_reads_the_dataclass():
    assert default_help(_Cfg, "lr") == "\\[default: 0.001]"
    assert default_help(_Cfg, "seconds") == "\\[default: 5]"
    assert default_help(_Cfg, "head") == "\\[default: cma]"
    assert default_help(_Cfg, "flip") == "\\[default: on]"
    assert default_help(_Cfg, "size") == "\\[default: the backbone's]"  # a computed default's text
    assert default_help(_Cfg, "limit") == ""  # None: nothing to show


def test_build_graph_stage_entry_matches_the_command(cli, tmp_path, monkeypatch):
    from mlgraph_cli.stages.build_graph import run_build_graph

    write_coco(tmp_path / "instances.json")
    assert cli("init", tmp_path, "--annotations", "instances.json", "--format", "coco").exit_code == 0
    with open(tmp_path / "mlgraph.toml", "a") as fh:
        fh.write('\n[build-graph]\nlabel_order = "id"\n')
    monkeypatch.chdir(tmp_path)
    assert cli("build-graph").exit_code == 0
    by_command = read_graph(tmp_path / "artifacts" / "graph.json")
    (tmp_path / "artifacts" / "graph.json").unlink()
    result = run_build_graph(None, None, {}, project=load_project(tmp_path / "mlgraph.toml"))
    by_library = read_graph(tmp_path / "artifacts" / "graph.json")
    assert result.output == str((tmp_path / "artifacts" / "graph.json").resolve())
    assert by_library.labels == by_command.labels == ["person", "dog", "cat"]
    assert (by_library.cooccurrence != by_command.cooccurrence).nnz == 0
    assert by_library.meta["format"] == "coco"


def test_extract_stage_entry_matches_the_command(cli, tmp_path, monkeypatch):
    import numpy as np

    from mlgraph_cli.stages.extract import run_extract
    from test_extract import LABELS, make_images, read
    from test_extract import write_coco as write_coco_for

    names = make_images(tmp_path / "imgs", n=3)
    y = write_coco_for(tmp_path / "ann.json", names)
    (tmp_path / "mlgraph.toml").write_text(
        '[dataset]\nimages = "imgs"\nannotations = "ann.json"\n\n'
        '[extract]\nbackbone = "resnet18"\nweights = "none"\nimage_size = 64\nworkers = 0\nbatch_size = 4\n')
    monkeypatch.chdir(tmp_path)
    assert cli("extract", "-o", "by-command.h5").exit_code == 0
    result = run_extract(None, None, {"image_size": 32}, project=load_project(tmp_path / "mlgraph.toml"))
    assert result.output == (tmp_path / "artifacts" / "features.h5").resolve()
    assert result.image_size == 32 and result.backbone == "resnet18"  # a flag over [extract]
    f, feats = read(tmp_path / "artifacts" / "features.h5")
    assert np.array_equal(f.labels, y) and f.label_names == LABELS
    command, _ = read(tmp_path / "by-command.h5")
    assert np.array_equal(command.labels, f.labels) and feats.shape == (3, 512, 1, 1)


def test_import_yt8m_stage_entry_matches_the_command(cli, shards, monkeypatch):
    import numpy as np

    from mlgraph_cli.core.features.video_file import load_video_features
    from mlgraph_cli.stages.import_yt8m import run_import_yt8m

    (shards / "mlgraph.toml").write_text('[import-yt8m]\nmax_frames = 5\nvocabulary = "vocabulary.csv"\n')
    monkeypatch.chdir(shards)
    assert cli("import-yt8m", "train0000.tfrecord", "-o", "by-command.h5").exit_code == 0
    result = run_import_yt8m(["train0000.tfrecord"], None, {"batch_size": 1},
                             project=load_project(shards / "mlgraph.toml"))
    assert result.output == str((shards / "artifacts" / "features.h5").resolve())
    assert (result.config.max_frames, result.config.batch_size) == (5, 1)  # [import-yt8m], then the flag
    by_library = load_video_features(result.output)
    by_command = load_video_features(shards / "by-command.h5")
    assert by_library["label_names"] == by_command["label_names"] and by_library["label_names"][0] == "Game"
    assert np.array_equal(by_library["features"], by_command["features"])


def test_make_dataset_stage_entry_matches_the_command(cli, tmp_path):
    from mlgraph_cli.stages.make_dataset import run_make_dataset
    from test_make_dataset import files_of

    args = ("--train", "2", "--val", "1", "--test", "0", "--size", "64", "--seed", "3")
    assert cli("make-dataset", "fashion-scenes", tmp_path / "a", *args).exit_code == 0
    result = run_make_dataset("fashion-scenes", tmp_path / "b",
                              dict(train=2, val=1, test=0, size=64, seed=3))
    assert result.size == 64 and result.images == {"train": 2, "val": 1, "test": 0}
    a, b = files_of(tmp_path / "a"), files_of(tmp_path / "b")
    assert a.keys() == b.keys() and all(a[k] == b[k] for k in a if k.endswith(".jpg"))


def test_embed_and_inspect_stage_entries_match_the_commands(cli, tmp_path, graph_file, monkeypatch):
    import json

    import numpy as np

    from mlgraph_cli.core.embeddings.files import read_embeddings
    from mlgraph_cli.stages.embed import run_embed, run_inspect
    from test_embed import LABELS, vectors_for

    vectors = vectors_for(tmp_path, LABELS)
    assert cli("init", tmp_path, "--vectors", vectors.name).exit_code == 0
    (tmp_path / "artifacts").mkdir()
    graph_file.rename(tmp_path / "artifacts" / "graph.json")
    with open(tmp_path / "mlgraph.toml", "a") as fh:
        fh.write('\n[embed]\ndim = 8\nsteps = 40\nadjacency = "binary"\n')
    monkeypatch.chdir(tmp_path)
    assert cli("embed", "--seed", "2", "-o", "by-command.h5").exit_code == 0
    project = load_project(tmp_path / "mlgraph.toml")
    result, config, source = run_embed(None, None, {"seed": 2}, project=project)
    assert source == (tmp_path / "artifacts" / "graph.json").resolve()
    assert (config.dim, config.steps, config.adjacency, config.seed) == (8, 40, "binary", 2)
    by_library = read_embeddings(result.path)
    by_command = read_embeddings(tmp_path / "by-command.h5")
    assert result.path == (tmp_path / "artifacts" / "embeddings.h5").resolve()
    assert by_library.attrs["init"] == by_command.attrs["init"] == str(tmp_path / vectors.name)
    assert np.array_equal(by_library.vectors, by_command.vectors)
    report = run_inspect(None, None, {"topk": 2}, project=project)
    said = json.loads(cli("inspect", "--json", "--topk", "2").stdout)
    assert report["embeddings"] == said["embeddings"] and report["reference"] == said["reference"]
    assert report["map"] == said["map"] and len(report["nearest"]["label0"]) == 2


def test_init_stage_entry_matches_the_command(cli, tmp_path):
    from mlgraph_cli.stages.init import init_project

    dataset = dict(annotations="ann/train.json", format="coco", images="img", val_annotations=None)
    assert cli("init", tmp_path / "a", "--annotations", "ann/train.json", "--format", "coco",
               "--images", "img").exit_code == 0
    path = init_project(tmp_path / "b", dataset)
    assert path == tmp_path / "b" / "mlgraph.toml"
    assert path.read_text() == (tmp_path / "a" / "mlgraph.toml").read_text()
    assert load_project(path).dataset == {"annotations": "ann/train.json", "format": "coco", "images": "img"}
