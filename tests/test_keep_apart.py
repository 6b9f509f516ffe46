"""The ASGE target that keeps labels apart: A + lambda I at unit diagonal (`mlgraph embed --self-weight`)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mlgraph_cli.core.embeddings.files import read_embeddings
from mlgraph_cli.core.graph.adjacency import keep_apart
from mlgraph_cli.core.graph.files import write_graph
from mlgraph_cli.errors import InputError
from test_embeddings import planted_graph


def test_keep_apart_shrinks_pairs_and_keeps_their_order():
    a = np.array([[0.0, 0.6, 0.2], [0.6, 0.0, 0.4], [0.2, 0.4, 0.0]])
    out = keep_apart(a, 1.0)
    assert np.allclose(out, a / 2) and np.all(np.diag(out) == 0)
    assert np.array_equal(np.argsort(out, axis=None), np.argsort(a, axis=None))
    assert np.array_equal(keep_apart(a, 0.0), a)
    with pytest.raises(InputError, match="self weight"):
        keep_apart(a, -1.0)


def test_keep_apart_makes_the_gram_matrix_positive_semi_definite():
    # A + I is not PSD (eigenvalue 1 - 0.9 * 2 < 0); with lambda = 1 it is: an exact fit exists
    a = np.full((3, 3), 0.9)
    np.fill_diagonal(a, 0.0)
    assert np.linalg.eigvalsh(a + np.eye(3)).min() > 0  # sanity: this one is PSD
    b = -a
    assert np.linalg.eigvalsh(b + np.eye(3)).min() < 0
    assert np.linalg.eigvalsh(keep_apart(b, 1.0) + np.eye(3)).min() >= 0


def cosines(path) -> np.ndarray:
    v = read_embeddings(path).vectors.astype(np.float64)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v @ v.T


def test_embed_self_weight_lowers_neighbour_cosines(cli, tmp_path):
    graph = tmp_path / "graph.json"
    write_graph(planted_graph(), graph)
    plain, apart = tmp_path / "plain.h5", tmp_path / "apart.h5"
    for out, extra in ((plain, ("--self-weight", "0")), (apart, ())):  # the default is 3
        result = cli("embed", graph, "-o", out, "--dim", "16", "--steps", "200", *extra)
        assert result.exit_code == 0, result.output
    off = ~np.eye(12, dtype=bool)
    c0, c1 = cosines(plain)[off], cosines(apart)[off]
    top = c0 > np.quantile(c0, 0.9)  # the neighbour pairs of the planted graph
    assert c1[top].mean() < 0.6 * c0[top].mean()
    assert read_embeddings(apart).attrs["adjacency"]["self_weight"] == 3.0
    assert "self_weight" not in read_embeddings(plain).attrs["adjacency"]
    # the neighbours still rank first
    result = cli("inspect", apart, "--graph", graph, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["map"] > 0.9


def test_negative_self_weight_is_one_line(cli, tmp_path):
    graph = tmp_path / "graph.json"
    write_graph(planted_graph(), graph)
    result = cli("embed", graph, "-o", tmp_path / "e.h5", "--self-weight", "-1")
    assert result.exit_code != 0
    assert "self-weight" in result.output.lower()
