"""A :class:`LabelGraph`: the label statistics of a training set, and how they are counted."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import scipy.sparse as sp

from mlgraph_cli.core.io.artifacts import schema_tag


@dataclass
class LabelGraph:
    """Label statistics of a training set.

    labels: the label order (C names). image_counts: (C,) int64, n_i.
    cooccurrence: (C, C) int64 CSR, M_ij, symmetric with a zero diagonal.
    num_images: N. meta: where it came from (source, format, label_order, provenance, ...).
    """

    labels: list[str]
    image_counts: np.ndarray
    cooccurrence: sp.csr_matrix
    num_images: int
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    @property
    def num_edges(self) -> int:
        """Label pairs seen together at least once (upper triangle of M)."""
        return len(self.edges()[0])

    def edges(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(i, j, M_ij) for i < j with M_ij > 0, sorted by (i, j); three (E,) int64 arrays."""
        m = self.cooccurrence.tocsr()
        m.sum_duplicates()  # canonical form: sorted indices, one entry per pair
        rows = np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr))
        upper = (m.indices > rows) & (m.data != 0)
        return rows[upper], m.indices[upper].astype(np.int64), m.data[upper].astype(np.int64)

    def index(self, label: str) -> int:
        return self.labels.index(label)

    def dense_cooccurrence(self) -> np.ndarray:
        return self.cooccurrence.toarray().astype(np.float64)

    def conditional(self) -> np.ndarray:
        """P_ij = M_ij / n_i = P(j | i), a dense (C, C) float64 array (rows of unseen labels are 0)."""
        m = self.dense_cooccurrence()
        n = self.image_counts.astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            p = np.where(n[:, None] > 0, m / n[:, None], 0.0)
        return p

    def subset(self, keep: np.ndarray) -> "LabelGraph":
        """The graph restricted to labels where ``keep`` (bool, (C,)) is true, order kept."""
        idx = np.flatnonzero(keep)
        m = self.cooccurrence[idx][:, idx].tocsr()
        return LabelGraph(
            labels=[self.labels[i] for i in idx],
            image_counts=self.image_counts[idx].copy(),
            cooccurrence=m,
            num_images=self.num_images,
            meta=dict(self.meta),
        )

    def to_networkx(self):
        """A ``networkx.Graph`` with the same nodes, edges and attributes as the file."""
        # lazy: start-up — networkx takes about 0.3 s to import; only GraphML and to_networkx need it
        import networkx as nx

        g = nx.Graph()
        g.graph.update(self._graph_attrs())
        for i, (name, count) in enumerate(zip(self.labels, self.image_counts.tolist())):
            g.add_node(name, count=int(count), index=i)
        rows, cols, data = self.edges()
        g.add_edges_from(
            (self.labels[i], self.labels[j], {"count": c})
            for i, j, c in zip(rows.tolist(), cols.tolist(), data.tolist())
        )
        return g

    def _graph_attrs(self) -> dict[str, Any]:
        core = {"schema": schema_tag("graph"), "num_images": int(self.num_images), "label_order": list(self.labels)}
        return {**core, **{k: v for k, v in self.meta.items() if k not in core}}  # meta cannot overwrite these


def build_label_graph(positives: sp.spmatrix | np.ndarray, labels: Sequence[str], **meta: Any) -> LabelGraph:
    """Count n_i and M_ij from an (N, C) 0/1 label matrix (dense or sparse), vectorised.

    M = Y^T Y computed sparsely (one sparse product, no loop over images), diagonal removed.
    Any non-zero entry counts as a positive.
    """
    y = sp.csr_matrix(positives)
    if y.shape[1] != len(labels):
        raise ValueError(f"label matrix has {y.shape[1]} columns for {len(labels)} labels")
    y.eliminate_zeros()
    # int32 products are faster than int64 and cannot overflow: M_ij <= N < 2**31.
    dtype = np.int32 if y.shape[0] < 2**31 else np.int64
    y = sp.csr_matrix((np.ones(y.nnz, dtype=dtype), y.indices, y.indptr), shape=y.shape)
    counts = np.bincount(y.indices, minlength=y.shape[1]).astype(np.int64)
    m = (y.T.tocsr() @ y).tocsr()
    m.setdiag(0)
    m.eliminate_zeros()
    return LabelGraph(labels=list(labels), image_counts=counts, cooccurrence=m.astype(np.int64),
                      num_images=int(y.shape[0]), meta=dict(meta))


