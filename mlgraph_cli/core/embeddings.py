"""Label embeddings: the ``mlgraph/embeddings@1`` file, ASGE and its baselines (DESIGN.md 1.2).

ASGE learns e_i = g(v_i) so that cosine similarity reproduces a label adjacency A:

    L = sum_{i != j} w_ij (cos(e_i, e_j) - A_ij)^2                                  (DESIGN 1.2)

with v_i the initial vector of label i (word vectors or one-hot) and g a two-layer MLP. The
published loss could not be verified; this form is our reading of "adjacency-based similarity".
The weights sum to 1, so L is a weighted mean squared error. "uniform" (the default) weights
every pair alike; "balanced" gives the pairs with A_ij > 0 and those with A_ij = 0 half of the
weight each, so the many zero pairs of a sparse graph cannot drown its few edges. On COCO the
balanced weights ranked neighbours worse (benchmarks/embed_quality.py: they push edges towards
cosine 1, and through transitivity pull non-neighbours together), and once g starts near cosine
0 (tanh, centred inputs) uniform weights learn sparse graphs as well; see docs/embed.md.

Baselines built from the same inputs: the word vectors as they are, one-hot vectors, DeepWalk
(random walks + skip-gram) and a spectral embedding of the normalised adjacency.

The file: datasets ``labels`` (C, utf-8) and ``embeddings`` (C x d float32); attributes
``schema``, ``method``, ``dimension``, ``adjacency`` ({kind, params}), ``graph`` ({path,
labels_digest, file_digest}), ``seed``, ``init``, ``provenance`` and method details.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mlgraph_cli.core.artifacts import (
    atomic_output, h5_open, h5_read_attrs, h5_read_strings, h5_write_attrs, h5_write_strings,
    labels_digest, maker, schema_tag,
)
from mlgraph_cli.core.progress import NULL_PROGRESS, ProgressHook
from mlgraph_cli.errors import MismatchError, input_error

WEIGHTINGS = ("balanced", "uniform")


@dataclass
class LabelEmbeddings:
    """One vector per label. labels: C names (the label order). vectors: (C, d) float32."""

    labels: list[str]
    vectors: np.ndarray
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def dimension(self) -> int:
        return int(self.vectors.shape[1])

    def aligned_to(self, labels: Sequence[str], *, source: str | os.PathLike = "embeddings") -> "LabelEmbeddings":
        """The same embeddings in the order of ``labels``; a one-line error if the label sets differ."""
        labels = list(labels)
        if labels == self.labels:
            return self
        index = {name: i for i, name in enumerate(self.labels)}
        absent = [name for name in labels if name not in index]
        if absent or len(labels) != len(self.labels):
            extra = sorted(set(self.labels) - set(labels))
            parts = []
            if absent:
                parts.append(f"no vector for {len(absent)} label(s): {', '.join(map(repr, absent[:5]))}")
            if extra:
                parts.append(f"{len(extra)} label(s) not expected: {', '.join(map(repr, extra[:5]))}")
            raise MismatchError(f"{os.fspath(source)}: label set differs from the data's ({'; '.join(parts)}) "
                                f"(re-make it from the same graph with `{maker('embeddings')}`)")
        order = np.array([index[name] for name in labels])
        return LabelEmbeddings(labels=labels, vectors=self.vectors[order], attrs=dict(self.attrs))


def write_embeddings(path: str | os.PathLike, emb: LabelEmbeddings) -> None:
    """Write ``emb`` atomically as an ``mlgraph/embeddings@1`` HDF5 file."""
    import h5py

    vectors = np.ascontiguousarray(emb.vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[0] != len(emb.labels):
        raise ValueError(f"embeddings of shape {vectors.shape} for {len(emb.labels)} labels")
    attrs = {**emb.attrs, "schema": schema_tag("embeddings"), "dimension": int(vectors.shape[1]),
             "labels_digest": labels_digest(emb.labels)}
    with atomic_output(path) as tmp:
        with h5py.File(tmp, "w") as f:
            h5_write_attrs(f, attrs)
            h5_write_strings(f, "labels", emb.labels)
            f.create_dataset("embeddings", data=vectors)


def read_embeddings(path: str | os.PathLike) -> LabelEmbeddings:
    """Read an embeddings file; its schema tag, datasets and shapes are checked (one-line errors)."""
    fix = f"re-make it with `{maker('embeddings')}`"
    with h5_open(path, "embeddings") as f:
        if "labels" not in f or "embeddings" not in f:
            raise input_error(path, "the `labels` or `embeddings` dataset is missing", fix)
        labels = h5_read_strings(f["labels"])
        vectors = np.asarray(f["embeddings"][...], dtype=np.float32)
        attrs = h5_read_attrs(f)
    if vectors.ndim != 2 or vectors.shape[0] != len(labels):
        raise input_error(path, f"`embeddings` has shape {vectors.shape} for {len(labels)} labels", fix)
    if len(set(labels)) != len(labels):
        raise input_error(path, "duplicate label names in `labels`", fix)
    if not np.isfinite(vectors).all():
        raise input_error(path, "`embeddings` holds NaN or infinite values", fix)
    return LabelEmbeddings(labels=labels, vectors=vectors, attrs=attrs)


# ---------------------------------------------------------------------------------------------
# ASGE

def pair_weights(target: np.ndarray, weighting: str = "uniform") -> np.ndarray:
    """w_ij of DESIGN 1.2 for a (C, C) target: zero diagonal, summing to 1.

    uniform: 1 / (C (C - 1)) off the diagonal. balanced: the pairs with A_ij > 0 share 1/2 and
    the pairs with A_ij = 0 share 1/2 (or all of it when the other group is empty).
    """
    c = target.shape[0]
    off = ~np.eye(c, dtype=bool)
    if weighting == "uniform":
        return np.where(off, 1.0 / max(off.sum(), 1), 0.0)
    if weighting != "balanced":
        raise ValueError(f"unknown weighting {weighting!r} (choose one of: {', '.join(WEIGHTINGS)})")
    groups = [(target > 0) & off, (target <= 0) & off]
    filled = [g for g in groups if g.any()]
    w = np.zeros((c, c))
    for g in filled:
        w[g] = 1.0 / (len(filled) * g.sum())
    return w


def _asge_map(num_labels: int, in_dim: int | None, hidden: int, dim: int):
    """g: v_i -> e_i = W2 tanh(W1 v_i + b1) + b2. For one-hot inputs W1 v_i is row i of a free
    (C, hidden) table. tanh rather than ReLU: ReLU's non-negative hidden units give every pair an
    initial cosine near 0.3, and uniform weights then spend their first steps undoing that."""
    import torch
    import torch.nn as nn

    class OneHotTable(nn.Module):  # W1 applied to the identity: the table itself, in label order
        def __init__(self) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.randn(num_labels, hidden))

        def forward(self, _inputs):
            return self.weight

    first = OneHotTable() if in_dim is None else nn.Linear(in_dim, hidden)
    return nn.Sequential(first, nn.Tanh(), nn.Linear(hidden, dim))


def standardise_init(init: np.ndarray) -> np.ndarray:
    """Initial vectors as g's input: centred (the mean vector, shared by all labels, would give
    every pair a high starting cosine; cf. Mu and Viswanath 2018, "all-but-the-top"), then scaled
    to norm sqrt(d0) so each coordinate has about unit variance and tanh(W1 v) starts in its
    working range under PyTorch's default Linear init. (C, d0) float64 in, float64 out."""
    v = np.asarray(init, dtype=np.float64)
    if v.shape[0] > 1:
        v = v - v.mean(axis=0, keepdims=True)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.maximum(norms, 1e-12) * np.sqrt(v.shape[1])


def _dense_loss(e, target, weights):
    """sum_ij w_ij (S_ij - A_ij)^2 with S = E E^T (C, C); e: (C, d) unit rows."""
    sim = e @ e.T  # (C, C)
    return (weights * (sim - target) ** 2).sum()


def _uniform_loss(e, adj, adj_sq_sum: float, scale: float):
    """The same loss for w_ij = ``scale`` without the (C, C) matrix S:

        sum_{i != j} (S_ij - A_ij)^2 = ||E^T E||_F^2 - C - 2 sum_ij A_ij S_ij + sum_ij A_ij^2

    (unit rows: S_ii = 1; A has a zero diagonal). ||E^T E||_F^2 costs C d^2 and
    sum_ij A_ij S_ij = sum(E * (A E)) one product with ``adj`` (scipy sparse or a torch tensor),
    against C^2 d for S. ``adj`` is fixed, so A E is computed outside autograd: q = sum(E * AE)
    has gradient AE, and 2q - q.detach() has q's value and the true gradient 2 AE (A symmetric).
    """
    import torch

    if isinstance(adj, torch.Tensor):
        ae = adj @ e.detach()  # (C, d)
    else:
        ae = torch.from_numpy(np.asarray(adj @ e.detach().numpy(), dtype=np.float32))
    q = (e * ae).sum()
    gram = e.T @ e  # (d, d)
    return scale * ((gram * gram).sum() - e.shape[0] - 2 * (2 * q - q.detach()) + adj_sq_sum)


@contextlib.contextmanager
def _deterministic_torch(seed: int, threads: int):
    """Seeded, deterministic torch on ``threads`` threads; the previous settings come back after.

    One thread by default: the same bytes whatever the machine's core count, and on a busy
    2-core CPU two OpenMP threads were 20x slower than one for 80 labels (spin-waiting).
    """
    import torch

    before = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0])
        torch.set_num_threads(before[1])


def asge_embeddings(target: np.ndarray, init: np.ndarray | None = None, *, dim: int = 300, hidden: int = 256,
                    steps: int = 500, lr: float = 0.01, seed: int = 0, weighting: str = "uniform",
                    threads: int = 1,
                    progress: ProgressHook = NULL_PROGRESS) -> tuple[np.ndarray, dict[str, Any]]:
    """Fit ASGE (DESIGN 1.2) by full-batch Adam; returns (C, dim) float32 and a fit summary.

    target: (C, C) adjacency in [0, 1], symmetrised here ((A + A^T) / 2) since cosine is
    symmetric; its diagonal is ignored. init: (C, d0) initial vectors (through
    :func:`standardise_init` before g), or None for one-hot. The same bytes for the same seed, thread count and machine.
    """
    import scipy.sparse as sp
    import torch

    a = np.asarray(target, dtype=np.float64)
    a = (a + a.T) / 2.0
    np.fill_diagonal(a, 0.0)
    c = a.shape[0]
    # Uniform weights take the factorised path (no C x C tensors); balanced ones the dense path.
    factorised = weighting == "uniform"
    if factorised:
        density = np.count_nonzero(a) / max(c * c, 1)
        # scipy's sparse product is single-threaded; a dense A stays in torch so that numpy's
        # BLAS threads never compete with torch's on the same cores.
        adj = sp.csr_matrix(a.astype(np.float32)) if density < 0.25 else torch.tensor(a, dtype=torch.float32)
        adj_sq_sum, scale = float((a * a).sum()), 1.0 / max(c * (c - 1), 1)
        loss_fn = lambda e: _uniform_loss(e, adj, adj_sq_sum, scale)  # noqa: E731
    else:
        t_target = torch.tensor(a, dtype=torch.float32)
        t_weights = torch.tensor(pair_weights(a, weighting), dtype=torch.float32)
        loss_fn = lambda e: _dense_loss(e, t_target, t_weights)  # noqa: E731
    with _deterministic_torch(seed, threads):
        model = _asge_map(c, None if init is None else init.shape[1], hidden, dim)
        inputs = None
        if init is not None:
            inputs = torch.tensor(standardise_init(init), dtype=torch.float32)  # (C, d0)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        progress.start("ASGE", total=steps, unit="steps")
        for _ in range(steps):
            e = torch.nn.functional.normalize(model(inputs), dim=1)  # (C, dim), unit rows
            loss = loss_fn(e)
            opt.zero_grad()
            loss.backward()
            opt.step()
            progress.advance(1)
        progress.stop()
        with torch.no_grad():
            out = model(inputs)
            final = float(loss_fn(torch.nn.functional.normalize(out, dim=1)))
    info = {"steps": steps, "lr": lr, "hidden": hidden, "weighting": weighting,
            "solver": "factorised" if factorised else "dense", "final_loss": final}
    return out.numpy().astype(np.float32), info


# ---------------------------------------------------------------------------------------------
# Baselines

def onehot_embeddings(num_labels: int) -> np.ndarray:
    """The identity: (C, C) float32. Every pair of labels has cosine 0."""
    return np.eye(num_labels, dtype=np.float32)


def spectral_embeddings(target: np.ndarray, dim: int) -> np.ndarray:
    """Top-``dim`` eigenvectors of S = D^-1/2 (A + I) D^-1/2, scaled by sqrt(max(lambda, 0)).

    Rows x_i then give x_i . x_j ~ S_ij (the best rank-``dim`` PSD fit), so cosine ranks pairs
    by normalised adjacency. The self-loop keeps isolated labels at a non-zero vector. A is
    symmetrised first; ``dim`` is capped at C. Eigenvector signs are fixed (largest entry
    positive) so the output is deterministic.
    """
    a = np.asarray(target, dtype=np.float64)
    a = (a + a.T) / 2.0
    np.fill_diagonal(a, 0.0)
    a += np.eye(a.shape[0])
    inv = 1.0 / np.sqrt(a.sum(axis=1))
    s = inv[:, None] * a * inv[None, :]
    k = min(dim, a.shape[0])
    vals, vecs = np.linalg.eigh(s)  # ascending
    vals, vecs = vals[::-1][:k], vecs[:, ::-1][:, :k]
    signs = np.sign(vecs[np.abs(vecs).argmax(axis=0), np.arange(k)])
    vecs = vecs * np.where(signs == 0, 1.0, signs)
    return (vecs * np.sqrt(np.clip(vals, 0.0, None))).astype(np.float32)


def random_walks(target: np.ndarray, *, walks_per_label: int, walk_length: int, seed: int) -> list[list[str]]:
    """Weighted random walks (DeepWalk, Perozzi et al. 2014): the next label j is drawn with
    probability A_ij / sum_k A_ik. Walks are label indices as strings; an isolated label's walk
    is just itself. All walks advance together (vectorised): the rows' cumulative weights are
    offset by the row index so one ``searchsorted`` serves every row."""
    import scipy.sparse as sp

    a = np.asarray(target, dtype=np.float64)
    a = (a + a.T) / 2.0
    np.fill_diagonal(a, 0.0)
    c = a.shape[0]
    m = sp.csr_matrix(a)
    deg = np.diff(m.indptr)
    cum = np.zeros(m.nnz)
    for i in np.flatnonzero(deg):
        lo, hi = m.indptr[i], m.indptr[i + 1]
        w = np.cumsum(m.data[lo:hi])
        cum[lo:hi] = i + w / w[-1]
    rng = np.random.default_rng(seed)
    starts = np.tile(np.arange(c), walks_per_label)
    path = np.empty((len(starts), walk_length), dtype=np.int64)
    path[:, 0] = starts
    alive = deg[starts] > 0
    for t in range(1, walk_length):
        cur = path[:, t - 1]
        if not m.nnz:
            path[:, t] = cur
            continue
        # Row cur's offset weights lie in (cur, cur + 1]; cur + u (u < 1) falls inside that row.
        pos = np.searchsorted(cum, cur + rng.random(len(cur)) * (1 - 1e-12), side="right")
        path[:, t] = np.where(alive, m.indices[np.minimum(pos, m.nnz - 1)], cur)
    return [[str(x) for x in (row if ok else row[:1])] for row, ok in zip(path.tolist(), alive)]


def deepwalk_embeddings(target: np.ndarray, *, dim: int, seed: int, walks_per_label: int = 10,
                        walk_length: int = 40, window: int = 5, epochs: int = 5) -> np.ndarray:
    """DeepWalk: skip-gram with hierarchical softmax (gensim Word2Vec, sg=1, hs=1) on weighted walks.

    min_count=0 keeps rarely visited labels; workers=1 and ``seed`` make it deterministic
    (gensim's word2vec docs). Returns (C, dim) float32 in label order.
    """
    from gensim.models import Word2Vec

    walks = random_walks(target, walks_per_label=walks_per_label, walk_length=walk_length, seed=seed)
    model = Word2Vec(sentences=walks, vector_size=dim, window=window, min_count=0, sg=1, hs=1, negative=0,
                     workers=1, seed=seed, epochs=epochs, sample=0)
    return np.stack([model.wv[str(i)] for i in range(target.shape[0])]).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Quality: how well cosine similarity ranks each label's graph neighbours

def cosine_matrix(vectors: np.ndarray) -> np.ndarray:
    """(C, C) float64 cosine similarity; zero vectors have cosine 0 with everything."""
    v = np.asarray(vectors, dtype=np.float64)
    v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    return v @ v.T


def average_precision(scores: np.ndarray, positives: np.ndarray) -> float:
    """Non-interpolated AP of ``scores`` (n,) against 0/1 ``positives`` (n,); tied scores form one
    step (precision at the end of the tie), as scikit-learn's ``average_precision_score``."""
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], positives[order].astype(np.float64)
    tp = np.cumsum(y)
    ends = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]  # last index of each tie group
    tp_end = tp[ends]
    gained = np.diff(np.r_[0.0, tp_end])
    return float((gained * tp_end / (ends + 1)).sum() / max(tp[-1], 1.0))


def neighbour_ranking(vectors: np.ndarray, neighbours: np.ndarray, reference: np.ndarray | None = None,
                      *, topk: int = 5, labels: Sequence[str] | None = None,
                      pairs: np.ndarray | None = None) -> dict[str, Any]:
    """How well cosine similarity of ``vectors`` (C, d) recovers a graph.

    neighbours: (C, C) bool, the true neighbours (diagonal ignored). For each label with at
    least one neighbour, rank the other labels by cosine and take the AP of the neighbours;
    ``map`` is their mean (0-1). reference: (C, C) continuous adjacency for the Spearman and
    Pearson correlations with cosine over pairs i < j. pairs: optional (C, C) bool restricting
    both to a subset of pairs (held-out checks). ``nearest``: label -> top-``topk`` labels.
    """
    from scipy.stats import pearsonr, spearmanr

    c = vectors.shape[0]
    cos = cosine_matrix(vectors)
    nb = np.asarray(neighbours, dtype=bool) & ~np.eye(c, dtype=bool)
    use = ~np.eye(c, dtype=bool) if pairs is None else (np.asarray(pairs, dtype=bool) & ~np.eye(c, dtype=bool))
    aps = []
    for i in range(c):
        cand = use[i]
        if nb[i, cand].any():
            aps.append(average_precision(cos[i, cand], nb[i, cand]))
    out: dict[str, Any] = {"map": float(np.mean(aps)) if aps else float("nan"),
                           "labels_with_neighbours": len(aps), "labels": c}
    if reference is not None:
        ref = np.asarray(reference, dtype=np.float64)
        ref = (ref + ref.T) / 2.0
        upper = np.triu(use, 1)
        x, y = cos[upper], ref[upper]
        constant = len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0
        out["spearman"] = float("nan") if constant else float(spearmanr(x, y).statistic)
        out["pearson"] = float("nan") if constant else float(pearsonr(x, y).statistic)
    if labels is not None and topk > 0:
        masked = np.where(np.eye(c, dtype=bool), -np.inf, cos)
        k = min(topk, c - 1)
        top = np.argsort(-masked, axis=1, kind="stable")[:, :k]
        out["nearest"] = {labels[i]: [{"label": labels[j], "cosine": round(float(cos[i, j]), 4),
                                       "neighbour": bool(nb[i, j])} for j in top[i]] for i in range(c)}
    return out
