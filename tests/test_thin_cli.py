"""A thin CLI: every stage entry resolves the project and the defaults itself, so a library
caller with a project folder gets what the command gets; help shows the dataclasses' defaults."""

from __future__ import annotations

from dataclasses import dataclass

from mlgraph_cli.cli._common import default_help
from mlgraph_cli.core.graph import read_graph
from mlgraph_cli.core.project import load_project
from test_annotations import write_coco


@dataclass
class _Cfg:
    lr: float = 0.001
    seconds: float = 5.0
    head: str = "cma"


def test_default_help_reads_the_dataclass():
    assert default_help(_Cfg, "lr") == "\\[default: 0.001]"
    assert default_help(_Cfg, "seconds") == "\\[default: 5]"
    assert default_help(_Cfg, "head") == "\\[default: cma]"


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
