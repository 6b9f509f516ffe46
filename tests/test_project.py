"""`mlgraph init` and the project file: defaults, then the file, then flags."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from conftest import one_line_error
from mlgraph_cli.core.project import (
    find_project, load_project, merge_config, resolve_input, resolve_output,
)
from mlgraph_cli.errors import InputError, MlgraphError


def test_init_writes_a_project_file_that_loads(cli, tmp_path):
    result = cli("init", tmp_path / "proj", "--annotations", "ann/train.json", "--images", "img", "--format", "coco")
    assert result.exit_code == 0, result.output
    project = load_project(tmp_path / "proj" / "mlgraph.toml")
    assert project.dataset == {"annotations": "ann/train.json", "format": "coco", "images": "img"}
    assert project.dataset_path("annotations") == (tmp_path / "proj" / "ann" / "train.json").resolve()
    assert project.artifact("graph") == (tmp_path / "proj" / "artifacts" / "graph.json").resolve()


def test_init_refuses_to_overwrite_without_force(cli, tmp_path):
    assert cli("init", tmp_path).exit_code == 0
    line = one_line_error(cli("init", tmp_path))
    assert "already exists" in line and "--force" in line
    assert cli("init", tmp_path, "--force", "--images", "x").exit_code == 0
    assert load_project(tmp_path / "mlgraph.toml").dataset == {"images": "x"}


def test_project_is_found_from_a_subfolder(tmp_path):
    (tmp_path / "mlgraph.toml").write_text('[dataset]\nimages = "img"\n', encoding="utf-8")
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    project = find_project(sub)
    assert project is not None and project.root == tmp_path.resolve()


def test_unknown_keys_are_user_errors(tmp_path):
    path = tmp_path / "mlgraph.toml"
    path.write_text('[dataset]\nannotation = "x.json"\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"mlgraph.toml: unknown key\(s\) in \[dataset\]: annotation"):
        load_project(path)
    path.write_text("[dataset\n", encoding="utf-8")
    with pytest.raises(InputError, match="malformed TOML"):
        load_project(path)


@dataclass
class _Cfg:
    method: str = "asge"
    dim: int = 300
    seed: int = 0


def test_merge_config_order_defaults_file_flags(tmp_path):
    (tmp_path / "mlgraph.toml").write_text("[embed]\ndim = 64\nseed = 3\n", encoding="utf-8")
    project = load_project(tmp_path / "mlgraph.toml")
    cfg = merge_config(_Cfg, project, "embed", {"seed": 7, "method": None})
    assert (cfg.method, cfg.dim, cfg.seed) == ("asge", 64, 7)
    (tmp_path / "mlgraph.toml").write_text("[embed]\ndimension = 64\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"unknown key\(s\) in \[embed\]: dimension"):
        merge_config(_Cfg, load_project(tmp_path / "mlgraph.toml"), "embed", {})


def test_explicit_paths_override_the_project(tmp_path):
    (tmp_path / "mlgraph.toml").write_text('[dataset]\nannotations = "a.json"\n', encoding="utf-8")
    project = load_project(tmp_path / "mlgraph.toml")
    assert resolve_input("other.json", project, dataset="annotations", what="annotations", fix="x") == \
        __import__("pathlib").Path("other.json")
    assert resolve_input(None, project, dataset="annotations", what="annotations", fix="x") == \
        (tmp_path / "a.json").resolve()
    assert resolve_output(None, project, "graph", "graph.json") == (tmp_path / "artifacts" / "graph.json").resolve()
    assert str(resolve_output(None, None, "graph", "graph.json")) == "graph.json"
    with pytest.raises(MlgraphError, match="no annotations given and no mlgraph.toml here"):
        resolve_input(None, None, dataset="annotations", what="annotations", fix="x")
    with pytest.raises(MlgraphError, match="no images set in"):
        resolve_input(None, project, dataset="images", what="images", fix="x")


@pytest.mark.parametrize("value", ["../elsewhere/graph.json", "artifacts/../../graph.json", "/tmp/graph.json"])
def test_artifact_paths_outside_the_project_are_refused(tmp_path, value):
    path = tmp_path / "proj" / "mlgraph.toml"
    path.parent.mkdir()
    path.write_text(f'[artifacts]\ngraph = "{value}"\n', encoding="utf-8")
    with pytest.raises(InputError) as info:
        load_project(path)
    assert str(info.value) == (
        f"{path}: [artifacts] graph = {value!r} leaves the project folder {path.parent.resolve()} (keep artifacts "
        "inside it, or add `allow_outside = true` to [artifacts] to write there on purpose)")


def test_artifact_paths_outside_allowed_on_purpose(tmp_path):
    path = tmp_path / "proj" / "mlgraph.toml"
    path.parent.mkdir()
    path.write_text('[artifacts]\nallow_outside = true\nfeatures = "../scratch/f.h5"\n', encoding="utf-8")
    project = load_project(path)
    assert project.artifact("features") == tmp_path / "proj" / ".." / "scratch" / "f.h5"
    assert project.artifact("graph") == tmp_path / "proj" / "artifacts" / "graph.json"


def test_artifact_paths_inside_the_project_are_fine(tmp_path):
    path = tmp_path / "mlgraph.toml"
    path.write_text(f'[artifacts]\ngraph = "out/../artifacts/g.json"\nruns = "{tmp_path / "runs"}"\n', encoding="utf-8")
    project = load_project(path)
    assert project.artifact("runs") == tmp_path / "runs"


def test_a_command_in_a_project_with_an_outside_artifact_is_one_line(cli, tmp_path, monkeypatch):
    (tmp_path / "mlgraph.toml").write_text('[artifacts]\ngraph = "../../g.json"\n', encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    line = one_line_error(cli("build-graph"))
    assert line.startswith(f"Error: {tmp_path / 'mlgraph.toml'}: [artifacts] graph = '../../g.json' leaves the project")


@pytest.mark.parametrize("text, what", [
    ('graph = 3', "[artifacts] graph must be a path in quotes, not 3"),
    ('graph = ""', "[artifacts] graph must be a path in quotes, not ''"),
    ('allow_outside = "yes"', "[artifacts] allow_outside must be true or false, not 'yes'"),
])
def test_artifact_values_are_checked(tmp_path, text, what):
    path = tmp_path / "mlgraph.toml"
    path.write_text(f"[artifacts]\n{text}\n", encoding="utf-8")
    with pytest.raises(InputError) as info:
        load_project(path)
    assert str(info.value).startswith(f"{path}: {what}")


def test_init_warns_at_once_about_a_misspelt_path(cli, tmp_path):
    proj = tmp_path / "proj"
    (proj / "data" / "images").mkdir(parents=True)
    (proj / "data" / "train.json").write_text("{}")
    result = cli("init", proj, "--annotations", "data/trian.json", "--images", "data/images")
    assert result.exit_code == 0, result.output  # the data may come later: written anyway, but said at once
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[0] == (f"warning: --annotations data/trian.json: no such file or folder in {proj} (did you mean "
                        "data/train.json?); mlgraph.toml names it anyway (fix it there, or run `mlgraph init "
                        "--force` again)")
    assert len(lines) == 2 and lines[1].startswith("Wrote ")
    assert load_project(proj / "mlgraph.toml").dataset["annotations"] == "data/trian.json"


def test_init_warns_about_images_that_are_a_file_and_missing_vectors(cli, tmp_path):
    (tmp_path / "img.jpg").write_bytes(b"x")
    result = cli("init", tmp_path, "--images", "img.jpg", "--vectors", "glove.txt")
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: --images img.jpg: is a file, not a folder of images; mlgraph.toml names it anyway (fix it there, "
        "or run `mlgraph init --force` again)",
        f"warning: --vectors glove.txt: no such file or folder in {tmp_path}; mlgraph.toml names it anyway (fix it "
        "there, or run `mlgraph init --force` again)",
    ]


def test_init_with_existing_paths_says_nothing_more(cli, tmp_path):
    (tmp_path / "a.csv").write_text("x.jpg,cat\n")
    (tmp_path / "img").mkdir()
    result = cli("init", tmp_path, "--annotations", "a.csv", "--images", "img")
    assert result.exit_code == 0 and "warning" not in result.stderr


def test_init_refuses_an_unknown_format(cli, tmp_path):
    line = one_line_error(cli("init", tmp_path, "--format", "cocoo"))
    assert line == ("Error: --format cocoo: unknown annotation format (choose one of coco, voc, nuswide, openimages, "
                    "csv, jsonl, yolo, stats, yt8m, or leave it out to detect it)")
    assert not (tmp_path / "mlgraph.toml").exists()


def test_init_warns_about_annotations_it_cannot_read(cli, tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "notes.json").write_text('{"hello": 1}')
    result = cli("init", tmp_path, "--annotations", "img", "--val-annotations", "notes.json")
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2
    assert warnings[0].startswith(f"warning: --annotations img: {tmp_path / 'img'}: this folder is not a Pascal VOC")
    assert warnings[1].startswith(f"warning: --val-annotations notes.json: {tmp_path / 'notes.json'}: a JSON file that "
                                  "is neither COCO")
    assert warnings[1].endswith("; mlgraph.toml names it anyway (fix it there, or run `mlgraph init --force` again)")
