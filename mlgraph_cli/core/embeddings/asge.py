"""ASGE: label embeddings whose cosine similarity reproduces a label adjacency (docs/method.md).

ASGE learns e_i = g(v_i) so that cosine similarity reproduces a label adjacency A:

    L = sum_{i != j} w_ij (cos(e_i, e_j) - A_ij)^2

with v_i the initial vector of label i (word vectors or one-hot) and g a two-layer MLP. The
published loss could not be verified; this form is our reading of "adjacency-based similarity"
(docs/method.md, "Label embeddings"). The weights sum to 1, so L is a weighted mean squared
error. "uniform" (the default) weights every pair alike; "balanced" gives the pairs with
A_ij > 0 and those with A_ij = 0 half of the weight each, so the many zero pairs of a sparse
graph cannot drown its few edges. On COCO the balanced weights ranked neighbours worse
(benchmarks/embed_quality.py: they push edges towards cosine 1, and through transitivity pull
non-neighbours together), and once g starts near cosine 0 (tanh, centred inputs) uniform weights
learn sparse graphs as well; see docs/embed.md.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from mlgraph_cli.core.embeddings.config import WEIGHTINGS
from mlgraph_cli.core.progress import NULL_PROGRESS, ProgressHook




def pair_weights(target: np.ndarray, weighting: str = "uniform") -> np.ndarray:
    """w_ij of the ASGE loss for a (C, C) target: zero diagonal, summing to 1.

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
    """Fit ASGE by full-batch Adam; returns (C, dim) float32 and a fit summary.

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
            out = model(inputs).numpy().astype(np.float32)  # (C, dim)
    # The reported loss is computed directly in float64 on the vectors as written: the factorised
    # float32 form cancels near an exact fit (it printed 0 or small negative numbers).
    info = {"steps": steps, "lr": lr, "hidden": hidden, "weighting": weighting,
            "solver": "factorised" if factorised else "dense", "final_loss": asge_loss(out, a, weighting)}
    return out, info


def asge_loss(vectors: np.ndarray, target: np.ndarray, weighting: str = "uniform", *, rows: int = 512) -> float:
    """sum_{i != j} w_ij (cos(e_i, e_j) - A_ij)^2 in float64, for (C, d) ``vectors`` and a (C, C)
    ``target`` (symmetrised, diagonal ignored). Never negative; computed ``rows`` rows at a time
    so a large C needs no (C, C) float64 matrix of cosines."""
    a = np.asarray(target, dtype=np.float64)
    a = (a + a.T) / 2.0
    np.fill_diagonal(a, 0.0)
    e = np.asarray(vectors, dtype=np.float64)
    e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-300)
    c = e.shape[0]
    weights = None if weighting == "uniform" else pair_weights(a, weighting)
    total = 0.0
    for lo in range(0, c, rows):
        hi = min(c, lo + rows)
        sq = (e[lo:hi] @ e.T - a[lo:hi]) ** 2  # (rows, C)
        sq[np.arange(hi - lo), np.arange(lo, hi)] = 0.0  # i = j is not a pair
        total += float((sq * weights[lo:hi]).sum() if weights is not None else sq.sum())
    return total / max(c * (c - 1), 1) if weights is None else total
