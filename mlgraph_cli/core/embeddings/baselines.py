"""Baseline label embeddings built from the same inputs as ASGE (docs/method.md, "Baselines").

The word vectors as they are (no code here), one-hot vectors, DeepWalk (random walks + skip-gram)
and a spectral embedding of the normalised adjacency.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp



def onehot_embeddings(num_labels: int, dim: int | None = None, seed: int = 0) -> np.ndarray:
    """One-hot label vectors: (C, d) float32 with orthonormal rows, so every pair of labels has cosine 0.

    ``dim`` None or C: the identity. ``dim`` > C: C random orthonormal rows in d dimensions (the Q
    of a seeded Gaussian's QR, signs fixed so R has a positive diagonal), the one-hot control at
    the width of other embeddings: a head sees the same Gram matrix I as with the identity, but
    vectors as wide as ASGE's, so a comparison of the two is not one of widths (with d > C the
    null space of E is not empty, and a projection into it can change a CMA head's cosines).
    """
    if dim is None or int(dim) == num_labels:
        return np.eye(num_labels, dtype=np.float32)
    if int(dim) < num_labels:
        raise ValueError(f"{num_labels} orthonormal rows need at least {num_labels} dimensions, not {dim}")
    gaussian = np.random.default_rng(seed).standard_normal((int(dim), num_labels))  # (d, C)
    q, r = np.linalg.qr(gaussian)  # q (d, C) with orthonormal columns
    q = q * np.where(np.diag(r) < 0, -1.0, 1.0)  # unique signs: the same seed, the same vectors
    return np.ascontiguousarray(q.T, dtype=np.float32)  # (C, d)


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
    # lazy: start-up — gensim takes about 1 s to import; only --method deepwalk needs it
    from gensim.models import Word2Vec

    walks = random_walks(target, walks_per_label=walks_per_label, walk_length=walk_length, seed=seed)
    model = Word2Vec(sentences=walks, vector_size=dim, window=window, min_count=0, sg=1, hs=1, negative=0,
                     workers=1, seed=seed, epochs=epochs, sample=0)
    return np.stack([model.wv[str(i)] for i in range(target.shape[0])]).astype(np.float32)
