"""LabelGraph: counts against a hand-computed example, adjacencies, file round trips."""

from __future__ import annotations

import json
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp

from mlgraph_cli.core.annotations import load_label_stats
from mlgraph_cli.core.graph.adjacency import adjacency
from mlgraph_cli.core.graph.counts import build_label_graph
from mlgraph_cli.core.graph.files import read_graph, write_graph
from mlgraph_cli.errors import InputError, MismatchError, SchemaError

DATA = Path(__file__).parent / "data"
LABELS = ["bird", "cat", "dog", "person"]
# a: cat dog / b: dog person / c: cat dog person / d: bird / e: nothing
Y = np.array([[0, 1, 1, 0], [0, 0, 1, 1], [0, 1, 1, 1], [1, 0, 0, 0], [0, 0, 0, 0]], dtype=np.uint8)


@pytest.fixture
def graph():
    return build_label_graph(sp.csr_matrix(Y), LABELS, source="hand")


def test_counts_by_hand(graph):
    assert graph.num_images == 5 and graph.num_labels == 4
    np.testing.assert_array_equal(graph.image_counts, [1, 2, 3, 2])
    expected = np.zeros((4, 4))
    for (i, j), c in {(1, 2): 2, (2, 3): 2, (1, 3): 1}.items():
        expected[i, j] = expected[j, i] = c
    np.testing.assert_array_equal(graph.dense_cooccurrence(), expected)
    assert graph.num_edges == 3
    assert graph.meta == {"source": "hand"}
    # dense input and non-0/1 values (any non-zero is a positive) give the same counts
    again = build_label_graph(Y * 7, LABELS)
    assert (again.cooccurrence != graph.cooccurrence).nnz == 0


def test_conditional(graph):
    p = graph.conditional()
    assert p[1, 2] == pytest.approx(1.0)  # P(dog | cat)
    assert p[2, 1] == pytest.approx(2 / 3)  # P(cat | dog)
    assert p[0].sum() == 0  # bird co-occurs with nothing


def test_adjacency_kinds(graph):
    a = adjacency(graph, "cond-mean")
    assert a[1, 2] == pytest.approx(5 / 6) and a[1, 3] == pytest.approx(0.5) and np.allclose(a, a.T)
    b = adjacency(graph, "binary", tau=0.6)
    assert b[1, 2] == 1 and b[1, 3] == 0 and b[0].sum() == 0  # max(P) of cat-person is 0.5 < 0.6
    m = adjacency(graph, "mlgcn", tau=0.4, p=0.2)
    np.testing.assert_allclose(m[1], [0, 0.8, 0.1, 0.1])
    np.testing.assert_allclose(m.sum(axis=1), 1.0)
    assert m[0, 0] == 1.0  # no neighbours: only the self-loop
    j = adjacency(graph, "jaccard")
    assert j[1, 2] == pytest.approx(2 / 3) and j[1, 3] == pytest.approx(1 / 3)
    n = adjacency(graph, "npmi")
    assert n[1, 2] == pytest.approx(np.log(5 / 3) / -np.log(0.4)) and n[0, 1] == 0
    with pytest.raises(InputError, match="unknown adjacency 'nope'"):
        adjacency(graph, "nope")


def test_json_round_trip_and_networkx(graph, tmp_path):
    path = tmp_path / "g.json"
    write_graph(graph, path)
    data = json.loads(path.read_text())
    assert data["graph"]["schema"] == "mlgraph/graph@1" and data["graph"]["label_order"] == LABELS
    assert data["edges"][0] == {"source": "cat", "target": "dog", "count": 2}
    g = nx.node_link_graph(data, edges="edges")
    assert g.number_of_nodes() == 4 and g["dog"]["person"]["count"] == 2 and g.nodes["bird"]["count"] == 1
    back = read_graph(path)
    assert back.labels == LABELS and back.num_images == 5 and back.meta["source"] == "hand"
    assert (back.cooccurrence != graph.cooccurrence).nnz == 0
    np.testing.assert_array_equal(back.image_counts, graph.image_counts)


def test_graphml_round_trip(graph, tmp_path):
    path = tmp_path / "g.graphml"
    graph.meta["provenance"] = {"command": "test", "params": {"x": [1, 2]}}
    write_graph(graph, path)
    assert nx.read_graphml(path).graph["schema"] == "mlgraph/graph@1"
    back = read_graph(path)
    assert back.labels == LABELS and back.num_images == 5
    assert back.meta["provenance"] == {"command": "test", "params": {"x": [1, 2]}}
    assert (back.cooccurrence != graph.cooccurrence).nnz == 0


@pytest.mark.parametrize("suffix", [".json", ".graphml"])
def test_coco_statistics_round_trip_exact(tmp_path, suffix):
    raw = json.loads((DATA / "coco2014-cooccurrence.json").read_text())
    stats = load_label_stats(DATA / "coco2014-cooccurrence.json")
    path = tmp_path / f"coco{suffix}"
    write_graph(stats, path)
    back = read_graph(path)
    assert back.labels == raw["labels"] and back.num_images == 82783
    np.testing.assert_array_equal(back.image_counts, raw["image_counts"])
    np.testing.assert_array_equal(back.cooccurrence.toarray(), np.array(raw["cooccurrence"]))


def test_label_order_check(graph, tmp_path):
    path = tmp_path / "g.json"
    write_graph(graph, path)
    assert read_graph(path, labels=LABELS).labels == LABELS
    with pytest.raises(MismatchError, match=r"same labels in another order \(position 0: 'bird', expected 'cat'\)"):
        read_graph(path, labels=["cat", "bird", "dog", "person"])
    with pytest.raises(MismatchError, match=r"lacks 1 expected label\(s\) \(e\.g\. 'tree'\)"):
        read_graph(path, labels=LABELS + ["tree"])


def test_subset_keeps_counts(graph):
    small = graph.subset(np.array([False, True, True, True]))
    assert small.labels == ["cat", "dog", "person"] and small.num_images == 5
    assert small.cooccurrence[0, 1] == 2 and small.num_edges == 3


def test_read_graph_errors(graph, tmp_path):
    (tmp_path / "emb.json").write_text(json.dumps({"graph": {"schema": "mlgraph/embeddings@1"}, "nodes": []}))
    with pytest.raises(SchemaError, match=r"expected a graph file \(mlgraph/graph@1\) but found an embeddings file"):
        read_graph(tmp_path / "emb.json")
    path = tmp_path / "g.json"
    write_graph(graph, path)
    data = json.loads(path.read_text())
    data["edges"].append({"source": "cat", "target": "unicorn", "count": 1})
    path.write_text(json.dumps(data))
    with pytest.raises(InputError, match=r"an edge names 'unicorn', which is not a node"):
        read_graph(path)
    with pytest.raises(InputError, match=r"missing\.json: no such file \(make one with `mlgraph build-graph`\)"):
        read_graph(tmp_path / "missing.json")


# ---------------------------------------------------------------------------------------------
# hand-edited graphs: counts are checked on read (0 <= M_ij <= min(n_i, n_j) <= N, whole numbers)

def _edit(graph, path, change):
    write_graph(graph, path)
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _node(data, name):
    return next(n for n in data["nodes"] if n["id"] == name)


def _edge(data, a, b):
    return next(e for e in data["edges"] if {e["source"], e["target"]} == {a, b})


FIX = "(rebuild it with `mlgraph build-graph`)"


@pytest.mark.parametrize("change, what", [
    (lambda d: _edge(d, "cat", "dog").update(count=3),
     "'cat' and 'dog' co-occur 3 times, more than 'cat' has images (2)"),
    (lambda d: _node(d, "person").update(count=-1), "'person' has a negative image count (-1)"),
    (lambda d: _edge(d, "dog", "person").update(count=-2), "'dog' and 'person' have a negative co-occurrence count (-2)"),
    (lambda d: _node(d, "dog").update(count=9), "'dog' has 9 images, more than the graph's 5"),
    (lambda d: _node(d, "dog").update(count=2.5), "'dog' has an image count that is not a whole number (2.5)"),
    (lambda d: _edge(d, "cat", "dog").update(count=1.5),
     "'cat' and 'dog' have a co-occurrence count that is not a whole number (1.5)"),
    (lambda d: _edge(d, "cat", "dog").update(count="2"),
     "'cat' and 'dog' have a co-occurrence count that is not a whole number ('2')"),
    (lambda d: d["graph"].update(num_images=-5), "the number of images is not a whole number >= 0 (-5)"),
    (lambda d: d["edges"].append({"source": "dog", "target": "cat", "count": 1}),
     "the pair 'cat' and 'dog' has more than one edge"),
    (lambda d: d["edges"].append({"source": "dog", "target": "dog", "count": 1}),
     "a self-loop on 'dog' (M_ii is not stored)"),
    (lambda d: (_node(d, "bird").update(count=4), d["edges"].append({"source": "bird", "target": "dog", "count": 1})),
     "'bird' (4 images) and 'dog' (3 images) co-occur 1 times, so together they are on 6 images, more than the "
     "graph's 5"),
])
def test_hand_edited_counts_are_refused(graph, tmp_path, change, what):
    path = tmp_path / "g.json"
    _edit(graph, path, change)
    with pytest.raises(InputError) as info:
        read_graph(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and message.endswith(FIX) and "\n" not in message
    assert what in message


def test_hand_edited_graphml_is_refused(graph, tmp_path):
    path = tmp_path / "g.graphml"
    write_graph(graph, path)
    g = nx.read_graphml(path)
    g.edges["cat", "dog"]["count"] = 7
    nx.write_graphml(g, path)
    with pytest.raises(InputError, match=r"'cat' and 'dog' co-occur 7 times, more than 'cat' has images \(2\)"):
        read_graph(path)


def test_whole_float_counts_are_accepted(graph, tmp_path):
    path = tmp_path / "g.json"
    _edit(graph, path, lambda d: _edge(d, "cat", "dog").update(count=2.0))
    assert read_graph(path).cooccurrence[1, 2] == 2


def test_embed_refuses_a_hand_edited_graph(graph, tmp_path, cli):
    path = tmp_path / "g.json"
    _edit(graph, path, lambda d: _edge(d, "cat", "dog").update(count=30))
    result = cli("embed", path, "-o", tmp_path / "e.h5", "--method", "spectral", "--dim", "2")
    assert result.exit_code == 1
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert lines == [f"Error: {path}: 'cat' and 'dog' co-occur 30 times, more than 'cat' has images (2) {FIX}"]
    assert not (tmp_path / "e.h5").exists()
