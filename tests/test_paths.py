"""Outputs never destroy inputs: every writing command refuses an output that is one of its inputs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import one_line_error
from mlgraph_cli.core.graph.files import write_graph
from mlgraph_cli.core.io.outputs import check_output_not_input, same_path
from mlgraph_cli.errors import MlgraphError
from test_build_graph import write_csv
from test_embeddings import planted_graph
from test_extract import make_images, write_coco


def expected(output: Path, source: Path) -> str:
    return (f"Error: {output}: is also an input of this command ({source}), and writing it would destroy that "
            "input (pass another file name to -o)")


def test_build_graph_refuses_to_write_over_its_annotations(cli, tmp_path):
    ann = write_csv(tmp_path / "a.csv")
    before = ann.read_bytes()
    assert one_line_error(cli("build-graph", ann, "-o", ann)) == expected(ann, ann)
    assert ann.read_bytes() == before


def test_embed_refuses_to_write_over_its_graph_through_a_symlink(cli, tmp_path):
    graph = tmp_path / "g.json"
    write_graph(planted_graph(), graph)
    before = graph.read_bytes()
    link = tmp_path / "link.h5"
    link.symlink_to(graph)
    assert one_line_error(cli("embed", graph, "-o", link)) == expected(link, graph)
    assert graph.read_bytes() == before


def test_extract_refuses_to_write_over_its_annotations(cli, tmp_path):
    images = tmp_path / "images"
    files = make_images(images, n=3)
    ann = tmp_path / "t.json"
    write_coco(ann, files)
    before = ann.read_bytes()
    line = one_line_error(cli("extract", images, "-a", ann, "-o", tmp_path / "sub" / ".." / "t.json",
                              "--weights", "none", "--image-size", "32"))
    assert line == expected(tmp_path / "sub" / ".." / "t.json", ann)
    assert ann.read_bytes() == before


def test_hard_links_and_relative_spellings_are_the_same_file(tmp_path, monkeypatch):
    a = tmp_path / "a.txt"
    a.write_text("x")
    os.link(a, tmp_path / "b.txt")
    monkeypatch.chdir(tmp_path)
    assert same_path("a.txt", tmp_path / "b.txt") and same_path("./x/../a.txt", a)
    assert not same_path(a, tmp_path / "c.txt")
    check_output_not_input("-", [a])  # stdout is never an input
    check_output_not_input(tmp_path / "c.txt", [None, "-", a])
    with pytest.raises(MlgraphError, match="is also an input"):
        check_output_not_input(tmp_path / "b.txt", [None, a])
