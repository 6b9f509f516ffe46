"""The label co-occurrence graph (DESIGN.md section 1.1).

A :class:`LabelGraph` keeps the raw statistics only: the number of images N, the image count
n_i of every label and the co-occurrence counts M_ij (symmetric, zero diagonal). Adjacencies
are derived from them by name (:func:`adjacency`), so the parameters that shape a graph are
chosen by the consumer and recorded there.

On disk the graph is networkx node-link JSON (``.json``) or GraphML (``.graphml``): nodes are
labels with ``count`` and ``index`` (the label order), edges carry ``count``; graph attributes
hold the schema tag, N, the label order and provenance. Node-link JSON is written and read
directly (same layout as ``networkx.node_link_data(G, edges="edges")``) because building a
networkx graph of millions of edges just to serialise it costs more than the counting itself.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import scipy.sparse as sp

from mlgraph_cli.core.artifacts import atomic_output, check_schema, maker, read_json, schema_tag
from mlgraph_cli.errors import InputError, input_error


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
        return int(sp.triu(self.cooccurrence, k=1).nnz)

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
        import networkx as nx

        g = nx.Graph()
        g.graph.update(self._graph_attrs())
        for i, (name, count) in enumerate(zip(self.labels, self.image_counts.tolist())):
            g.add_node(name, count=int(count), index=i)
        upper = sp.triu(self.cooccurrence, k=1).tocoo()
        g.add_edges_from(
            (self.labels[i], self.labels[j], {"count": int(c)})
            for i, j, c in zip(upper.row.tolist(), upper.col.tolist(), upper.data.tolist())
        )
        return g

    def _graph_attrs(self) -> dict[str, Any]:
        return {"schema": schema_tag("graph"), "num_images": int(self.num_images),
                "label_order": list(self.labels), **self.meta}


def build_label_graph(positives: sp.spmatrix | np.ndarray, labels: Sequence[str], **meta: Any) -> LabelGraph:
    """Count n_i and M_ij from an (N, C) 0/1 label matrix (dense or sparse), vectorised.

    M = Y^T Y computed sparsely, diagonal removed. Entries other than 0/1 are treated as
    presence (any non-zero is a positive).
    """
    y = sp.csr_matrix(positives, dtype=np.int64)
    y.data[:] = 1
    y.eliminate_zeros()
    if y.shape[1] != len(labels):
        raise ValueError(f"label matrix has {y.shape[1]} columns for {len(labels)} labels")
    counts = np.asarray(y.sum(axis=0)).ravel().astype(np.int64)
    m = (y.T @ y).tocsr()
    m.setdiag(0)
    m.eliminate_zeros()
    return LabelGraph(labels=list(labels), image_counts=counts, cooccurrence=m.astype(np.int64),
                      num_images=int(y.shape[0]), meta=dict(meta))


# ---------------------------------------------------------------------------------------------
# Adjacencies derived from the counts (DESIGN.md 1.1). Each returns a dense (C, C) float64 array.

def _cond_mean(g: LabelGraph, **_: Any) -> np.ndarray:
    p = g.conditional()
    return (p + p.T) / 2.0


def _binary(g: LabelGraph, tau: float = 0.4, **_: Any) -> np.ndarray:
    p = g.conditional()
    a = (np.maximum(p, p.T) >= tau).astype(np.float64)
    np.fill_diagonal(a, 0.0)
    return a


def _mlgcn(g: LabelGraph, tau: float = 0.4, p: float = 0.2, **_: Any) -> np.ndarray:
    """ML-GCN's re-weighted correlation matrix (Chen et al., CVPR 2019, eq. 7-8).

    Binarise P(j|i) at tau, re-weight the neighbours of each label to sum to p, put 1 - p on the
    diagonal (self-loop). Asymmetric, rows sum to 1 for labels with neighbours.
    """
    cond = g.conditional()
    b = (cond >= tau).astype(np.float64)
    np.fill_diagonal(b, 0.0)
    rows = b.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(rows > 0, b * p / rows, 0.0)
    np.fill_diagonal(a, np.where(rows.ravel() > 0, 1.0 - p, 1.0))
    return a


def _jaccard(g: LabelGraph, **_: Any) -> np.ndarray:
    m = g.dense_cooccurrence()
    n = g.image_counts.astype(np.float64)
    union = n[:, None] + n[None, :] - m
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(union > 0, m / union, 0.0)
    np.fill_diagonal(a, 0.0)
    return a


def _npmi(g: LabelGraph, **_: Any) -> np.ndarray:
    """Normalised pointwise mutual information, clipped at 0 (only positive association)."""
    m = g.dense_cooccurrence()
    n = g.image_counts.astype(np.float64)
    total = float(max(g.num_images, 1))
    pij = m / total
    pi = n / total
    with np.errstate(divide="ignore", invalid="ignore"):
        pmi = np.log(pij / (pi[:, None] * pi[None, :]))
        npmi = pmi / -np.log(pij)
    a = np.where(m > 0, np.clip(npmi, 0.0, 1.0), 0.0)
    np.fill_diagonal(a, 0.0)
    return np.nan_to_num(a)


ADJACENCIES: dict[str, Callable[..., np.ndarray]] = {
    "cond-mean": _cond_mean,
    "binary": _binary,
    "mlgcn": _mlgcn,
    "jaccard": _jaccard,
    "npmi": _npmi,
}


def adjacency(graph: LabelGraph, kind: str = "cond-mean", **params: Any) -> np.ndarray:
    """A dense (C, C) adjacency derived from ``graph``; see :data:`ADJACENCIES` for the kinds."""
    try:
        fn = ADJACENCIES[kind]
    except KeyError:
        raise InputError(f"unknown adjacency {kind!r} (choose one of: {', '.join(ADJACENCIES)})") from None
    return fn(graph, **params)


# ---------------------------------------------------------------------------------------------
# Files

def write_graph(graph: LabelGraph, path: str | os.PathLike) -> None:
    """Write node-link JSON (``.json`` or ``-`` for stdout) or GraphML (``.graphml``), atomically."""
    p = os.fspath(path)
    if p.endswith(".graphml"):
        import networkx as nx

        g = graph.to_networkx()
        # GraphML attributes must be scalars: lists and dicts are stored as JSON text.
        for key, value in list(g.graph.items()):
            if isinstance(value, (list, dict)) or value is None:
                g.graph[key] = json.dumps(value, ensure_ascii=False)
        with atomic_output(p) as tmp:
            nx.write_graphml(g, tmp)
        return
    text = _node_link_text(graph)
    from mlgraph_cli.core.artifacts import atomic_write_text

    atomic_write_text(p, text)


def _node_link_text(graph: LabelGraph) -> str:
    labels = graph.labels
    nodes = [{"id": name, "count": int(c), "index": i}
             for i, (name, c) in enumerate(zip(labels, graph.image_counts.tolist()))]
    upper = sp.triu(graph.cooccurrence, k=1).tocoo()
    order = np.lexsort((upper.col, upper.row))
    rows, cols, data = upper.row[order].tolist(), upper.col[order].tolist(), upper.data[order].tolist()
    dump = json.dumps
    names = [dump(n, ensure_ascii=False) for n in labels]
    edge_lines = ",\n".join(f'{{"source": {names[i]}, "target": {names[j]}, "count": {c}}}'
                            for i, j, c in zip(rows, cols, data))
    head = {"directed": False, "multigraph": False, "graph": graph._graph_attrs(), "nodes": nodes}
    body = dump(head, ensure_ascii=False)[:-1]  # drop the closing brace, edges follow
    return body + ',\n"edges": [\n' + edge_lines + "\n]}\n"


def read_graph(path: str | os.PathLike) -> LabelGraph:
    """Read a graph written by :func:`write_graph`; check its schema tag and label order."""
    p = Path(path)
    fix = f"make one with `{maker('graph')}`"
    if not p.is_file():
        raise input_error(p, "no such file", fix)
    if p.suffix == ".graphml":
        return _read_graphml(p)
    data = read_json(p, fix=fix)
    if not isinstance(data, dict) or "nodes" not in data:
        check_schema(p, None, "graph")
    attrs = dict(data.get("graph") or {})
    check_schema(p, attrs.get("schema"), "graph")
    edges = data.get("edges", data.get("links", []))
    return _from_parts(p, attrs, data["nodes"], [(e["source"], e["target"], e.get("count", 0)) for e in edges])


def _read_graphml(p: Path) -> LabelGraph:
    import networkx as nx

    try:
        g = nx.read_graphml(p)
    except Exception as exc:  # networkx raises several XML error types
        raise input_error(p, f"not a readable GraphML file ({exc})", f"make one with `{maker('graph')}`") from None
    attrs = {k: v for k, v in g.graph.items() if k not in ("node_default", "edge_default")}
    for key, value in list(attrs.items()):
        if isinstance(value, str) and value[:1] in "[{" or value == "null":
            try:
                attrs[key] = json.loads(value)
            except ValueError:
                pass
    check_schema(p, attrs.get("schema"), "graph")
    nodes = [{"id": n, **d} for n, d in g.nodes(data=True)]
    return _from_parts(p, attrs, nodes, [(u, v, d.get("count", 0)) for u, v, d in g.edges(data=True)])


def _from_parts(p: Path, attrs: dict[str, Any], nodes: list[dict], edges: list[tuple]) -> LabelGraph:
    order = attrs.pop("label_order", None)
    attrs.pop("schema", None)
    num_images = int(attrs.pop("num_images", 0))
    by_name = {str(n["id"]): int(n.get("count", 0)) for n in nodes}
    if order is None:
        order = [str(n["id"]) for n in sorted(nodes, key=lambda n: int(n.get("index", 0)))]
    if sorted(order) != sorted(by_name):
        raise input_error(p, "the label order does not match the graph's nodes (the file was edited by hand?)",
                          f"rebuild it with `{maker('graph')}`")
    index = {name: i for i, name in enumerate(order)}
    c = len(order)
    if edges:
        rows = np.fromiter((index[str(u)] for u, _, _ in edges), dtype=np.int64, count=len(edges))
        cols = np.fromiter((index[str(v)] for _, v, _ in edges), dtype=np.int64, count=len(edges))
        vals = np.fromiter((int(w) for _, _, w in edges), dtype=np.int64, count=len(edges))
    else:
        rows = cols = vals = np.zeros(0, dtype=np.int64)
    m = sp.coo_matrix((np.concatenate([vals, vals]), (np.concatenate([rows, cols]), np.concatenate([cols, rows]))),
                      shape=(c, c)).tocsr()
    counts = np.array([by_name[name] for name in order], dtype=np.int64)
    return LabelGraph(labels=list(order), image_counts=counts, cooccurrence=m, num_images=num_images, meta=attrs)
