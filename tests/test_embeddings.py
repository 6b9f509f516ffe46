"""core/embeddings/: the HDF5 file, ASGE and its baselines, the neighbour-ranking metrics."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from mlgraph_cli.core.embeddings.files import LabelEmbeddings, read_embeddings, write_embeddings
from mlgraph_cli.core.embeddings.asge import asge_embeddings, asge_loss, pair_weights
from mlgraph_cli.core.embeddings.quality import neighbour_ranking
from mlgraph_cli.core.embeddings.baselines import (
    deepwalk_embeddings, onehot_embeddings, random_walks, spectral_embeddings,
)
from mlgraph_cli.core.graph.adjacency import adjacency
from mlgraph_cli.core.graph.counts import build_label_graph
from mlgraph_cli.core.graph.files import write_graph
from mlgraph_cli.errors import MismatchError, SchemaError


def planted_graph(clusters: int = 3, size: int = 4, images: int = 300, seed: int = 0):
    """Labels in ``clusters`` groups of ``size``: each image carries 2-3 labels of one group, and
    one image in ten also a label from anywhere (noise). Label k is in group k // size."""
    rng = np.random.default_rng(seed)
    c = clusters * size
    y = np.zeros((images, c), dtype=np.int64)
    for n in range(images):
        group = rng.integers(clusters)
        y[n, group * size + rng.choice(size, size=rng.integers(2, 4), replace=False)] = 1
        if rng.random() < 0.1:
            y[n, rng.integers(c)] = 1
    return build_label_graph(y, [f"label{k}" for k in range(c)])


def same_group(clusters: int = 3, size: int = 4) -> np.ndarray:
    g = np.arange(clusters * size) // size
    return (g[:, None] == g[None, :]) & ~np.eye(clusters * size, dtype=bool)


# ---------------------------------------------------------------------------------------------
# The file

def test_round_trip_keeps_labels_vectors_schema_and_attrs(tmp_path):
    path = tmp_path / "e.h5"
    vectors = np.random.default_rng(0).normal(size=(3, 5)).astype(np.float32)
    attrs = {"method": "asge", "adjacency": {"kind": "cond-mean", "params": {}}, "seed": 7, "init": "onehot"}
    write_embeddings(path, LabelEmbeddings(labels=["ä", "b c", "d"], vectors=vectors, attrs=attrs))
    with h5py.File(path) as f:
        assert f.attrs["schema"] == "mlgraph/embeddings@1"
        assert f["embeddings"].dtype == np.float32 and f["embeddings"].shape == (3, 5)
    emb = read_embeddings(path)
    assert emb.labels == ["ä", "b c", "d"] and emb.dimension == 5
    np.testing.assert_array_equal(emb.vectors, vectors)
    assert emb.attrs["adjacency"] == {"kind": "cond-mean", "params": {}} and emb.attrs["seed"] == 7
    assert emb.attrs["dimension"] == 5 and len(emb.attrs["labels_digest"]) == 16
    assert not list(tmp_path.glob(".*.tmp"))  # written through a temporary name


def test_aligned_to_reorders_and_refuses_other_label_sets():
    emb = LabelEmbeddings(labels=["a", "b", "c"], vectors=np.eye(3, dtype=np.float32))
    np.testing.assert_array_equal(emb.aligned_to(["c", "a", "b"]).vectors, np.eye(3)[[2, 0, 1]])
    with pytest.raises(MismatchError) as exc:
        emb.aligned_to(["a", "b", "z"], source="e.h5")
    assert str(exc.value) == ("e.h5: label set differs from the data's (no vector for 1 label(s): 'z'; 1 label(s) "
                              "not expected: 'c') (re-make it from the same graph with `mlgraph embed`)")


def test_a_graph_or_features_file_is_not_embeddings(tmp_path):
    graph = tmp_path / "graph.json"
    write_graph(planted_graph(), graph)
    with pytest.raises(SchemaError, match="not an HDF5 file .*make one with `mlgraph embed`"):
        read_embeddings(graph)
    features = tmp_path / "features.h5"
    with h5py.File(features, "w") as f:
        f.attrs["schema"] = "mlgraph/features@1"
    with pytest.raises(SchemaError) as exc:
        read_embeddings(features)
    assert str(exc.value) == (f"{features}: expected a embeddings file (mlgraph/embeddings@1) but found a features "
                              "file (mlgraph/features@1) (make one with `mlgraph embed`)")


def test_shape_mismatch_inside_the_file_is_reported(tmp_path):
    path = tmp_path / "e.h5"
    with h5py.File(path, "w") as f:
        f.attrs["schema"] = "mlgraph/embeddings@1"
        f.create_dataset("labels", data=np.array(["a", "b"], dtype=object), dtype=h5py.string_dtype())
        f.create_dataset("embeddings", data=np.zeros((3, 4), dtype=np.float32))
    with pytest.raises(Exception, match=r"`embeddings` has shape \(3, 4\) for 2 labels .*`mlgraph embed`"):
        read_embeddings(path)


# ---------------------------------------------------------------------------------------------
# ASGE

def test_factorised_uniform_loss_equals_the_dense_loss_value_and_gradient():
    import torch

    from mlgraph_cli.core.embeddings.asge import _dense_loss, _uniform_loss

    rng = np.random.default_rng(1)
    c = 12
    a = rng.random((c, c)) * (rng.random((c, c)) < 0.3)
    a = (a + a.T) / 2
    np.fill_diagonal(a, 0)
    x = torch.randn(c, 5, dtype=torch.float32, requires_grad=True)
    dense = _dense_loss(torch.nn.functional.normalize(x, dim=1), torch.tensor(a, dtype=torch.float32),
                        torch.tensor(pair_weights(a, "uniform"), dtype=torch.float32))
    (g_dense,) = torch.autograd.grad(dense, x)
    for adj in (a.astype(np.float32), torch.tensor(a, dtype=torch.float32)):  # scipy/numpy and torch products
        import scipy.sparse as sp

        adj = sp.csr_matrix(adj) if isinstance(adj, np.ndarray) else adj
        fact = _uniform_loss(torch.nn.functional.normalize(x, dim=1), adj, float((a * a).sum()), 1 / (c * (c - 1)))
        (g_fact,) = torch.autograd.grad(fact, x)
        assert float(fact.detach()) == pytest.approx(float(dense.detach()), rel=1e-5)
        np.testing.assert_allclose(g_fact.numpy(), g_dense.numpy(), atol=1e-7)


@pytest.mark.parametrize("weighting", ["uniform", "balanced"])
def test_asge_loss_is_the_pairwise_sum_in_float64(weighting):
    rng = np.random.default_rng(4)
    c = 7
    a = rng.random((c, c)) * (rng.random((c, c)) < 0.5)
    e = rng.normal(size=(c, 3))
    u = e / np.linalg.norm(e, axis=1, keepdims=True)
    sym = (a + a.T) / 2
    w = pair_weights(sym, weighting)
    brute = sum(w[i, j] * (u[i] @ u[j] - sym[i, j]) ** 2 for i in range(c) for j in range(c) if i != j)
    assert asge_loss(e, a, weighting, rows=3) == pytest.approx(brute, rel=1e-12)


def test_reported_loss_is_float64_and_never_negative_at_an_exact_fit():
    """dim >= C and A + I positive semi-definite: an exact fit exists and the loss goes to ~0.
    The float32 factorised formula cancelled there (it printed 0.00e+00 or negatives)."""
    c = 5
    a = np.full((c, c), 0.2)
    np.fill_diagonal(a, 0)  # A + I = 0.8 I + 0.2 J: positive definite
    vectors, info = asge_embeddings(a, dim=8, hidden=16, steps=400, lr=0.02, seed=0)
    assert info["final_loss"] == asge_loss(vectors, a)  # the vectors as returned, in float64
    assert 0 < info["final_loss"] < 1e-4
    # A binary path i - j - k: A + I has the eigenvalue 1 - sqrt(2) < 0, so no width fits it (docs/method.md).
    path = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], dtype=float)
    assert np.linalg.eigvalsh(path + np.eye(3))[0] < 0
    _, info = asge_embeddings(path, dim=8, hidden=16, steps=400, lr=0.02, seed=0)
    assert info["final_loss"] > 0.01


def test_pair_weights_sum_to_one_and_balance_edges_against_non_edges():
    a = np.array([[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]], dtype=float)
    w = pair_weights(a, "balanced")
    assert w.sum() == pytest.approx(1.0) and np.all(np.diag(w) == 0)
    assert w[a > 0].sum() == pytest.approx(0.5) and w[0, 1] == pytest.approx(0.25)
    u = pair_weights(a, "uniform")
    assert u[0, 1] == pytest.approx(1 / 12) and u.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("weighting", ["uniform", "balanced"])
def test_asge_recovers_planted_clusters_better_than_onehot(weighting):
    graph = planted_graph()
    target = adjacency(graph, "cond-mean")
    vectors, info = asge_embeddings(target, dim=16, hidden=32, steps=150, seed=0, weighting=weighting)
    assert vectors.shape == (12, 16) and vectors.dtype == np.float32
    truth = same_group()
    asge = neighbour_ranking(vectors, truth, target)
    onehot = neighbour_ranking(onehot_embeddings(12), truth, target)
    assert asge["map"] > 0.95 and asge["map"] > onehot["map"] + 0.5
    assert asge["pearson"] > 0.9 and info["final_loss"] < 0.02
    assert info["solver"] == ("factorised" if weighting == "uniform" else "dense")


def test_asge_with_word_vector_init_fits_too():
    graph = planted_graph()
    init = np.random.default_rng(5).normal(size=(12, 7))
    vectors, _ = asge_embeddings(adjacency(graph, "binary"), init, dim=8, hidden=32, steps=150, seed=0)
    assert neighbour_ranking(vectors, same_group())["map"] > 0.95


def test_asge_is_deterministic_per_seed():
    target = adjacency(planted_graph(), "cond-mean")
    a, _ = asge_embeddings(target, dim=8, hidden=16, steps=30, seed=3)
    b, _ = asge_embeddings(target, dim=8, hidden=16, steps=30, seed=3)
    c, _ = asge_embeddings(target, dim=8, hidden=16, steps=30, seed=4)
    assert a.tobytes() == b.tobytes() and a.tobytes() != c.tobytes()


def test_asge_restores_torch_settings():
    import torch

    threads = torch.get_num_threads()
    asge_embeddings(np.ones((3, 3)), dim=2, hidden=4, steps=2, threads=1)
    assert torch.get_num_threads() == threads and not torch.are_deterministic_algorithms_enabled()


# ---------------------------------------------------------------------------------------------
# Baselines

def test_spectral_ranks_planted_clusters_and_caps_its_width():
    target = adjacency(planted_graph(), "cond-mean")
    vectors = spectral_embeddings(target, 300)
    assert vectors.shape == (12, 12)
    assert neighbour_ranking(vectors, same_group())["map"] > 0.95
    np.testing.assert_array_equal(vectors, spectral_embeddings(target, 300))


def test_random_walks_follow_edges_and_isolated_labels_stay_put():
    a = np.zeros((4, 4))
    a[0, 1] = a[1, 0] = 1.0
    a[1, 2] = a[2, 1] = 3.0
    walks = random_walks(a, walks_per_label=5, walk_length=6, seed=0)
    assert len(walks) == 20
    for walk in walks:
        for u, v in zip(walk, walk[1:]):
            assert a[int(u), int(v)] > 0
    assert [w for w in walks if w[0] == "3"] == [["3"]] * 5
    assert walks == random_walks(a, walks_per_label=5, walk_length=6, seed=0)


def test_deepwalk_is_deterministic_and_in_label_order():
    target = adjacency(planted_graph(), "binary")
    a = deepwalk_embeddings(target, dim=8, seed=1, walks_per_label=5, walk_length=10)
    b = deepwalk_embeddings(target, dim=8, seed=1, walks_per_label=5, walk_length=10)
    assert a.shape == (12, 8) and a.tobytes() == b.tobytes()


# ---------------------------------------------------------------------------------------------
# Metrics

def test_neighbour_ranking_reports_map_correlations_and_nearest():
    vectors = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], dtype=np.float32)
    truth = np.array([[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]], dtype=bool)
    report = neighbour_ranking(vectors, truth, truth.astype(float), topk=2, labels=list("abcd"))
    assert report["map"] == 1.0 and report["labels_with_neighbours"] == 4
    assert report["spearman"] > 0.8 and report["pearson"] > 0.9
    assert [n["label"] for n in report["nearest"]["a"]] == ["b", "d"]
    assert report["nearest"]["a"][0]["neighbour"] is True and report["nearest"]["a"][1]["neighbour"] is False
    # restricted to the pair (a, d): each of a and d has one candidate, the other
    only = np.zeros((4, 4), dtype=bool)
    only[0, 3] = only[3, 0] = True
    assert neighbour_ranking(vectors, truth | only, pairs=only)["labels_with_neighbours"] == 2
    assert neighbour_ranking(vectors, truth, pairs=only)["labels_with_neighbours"] == 0
    flat = neighbour_ranking(onehot_embeddings(4), truth, truth.astype(float))
    assert flat["map"] == pytest.approx(1 / 3) and np.isnan(flat["spearman"])  # all ties: AP = prevalence
