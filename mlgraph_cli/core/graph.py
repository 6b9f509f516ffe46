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

import itertools
import json
import operator
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import scipy.sparse as sp

from mlgraph_cli.core.artifacts import atomic_output, check_schema, maker, read_json, refuse_hdf5, schema_tag
from mlgraph_cli.errors import InputError, MismatchError, input_error


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
    diagonal (self-loop). Asymmetric, rows sum to 1 for labels with neighbours. This follows the
    paper's equations; the released ML-GCN code differs (column sums, p = 0.25, diagonal 1), so
    pass p=0.25 to get its neighbour weight.
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
    rows, cols, data = graph.edges()
    dump = json.dumps
    names = [dump(n, ensure_ascii=False) for n in labels]
    # One line per edge, assembled from per-label pieces with C-level map/join (no f-string per edge).
    source = ['{"source": ' + n + ', "target": ' for n in names]
    target = [n + ', "count": ' for n in names]
    pieces = zip(map(source.__getitem__, rows.tolist()), map(target.__getitem__, cols.tolist()),
                 map(str, data.tolist()), itertools.repeat("},\n"))
    edge_text = "".join(itertools.chain.from_iterable(pieces))[:-2]  # drop the last ",\n"
    head = {"directed": False, "multigraph": False, "graph": graph._graph_attrs(), "nodes": nodes}
    body = dump(head, ensure_ascii=False)[:-1]  # drop the closing brace, edges follow
    return body + ',\n"edges": [\n' + edge_text + "\n]}\n"


def read_graph(path: str | os.PathLike, *, labels: Sequence[str] | None = None) -> LabelGraph:
    """Read a graph written by :func:`write_graph`; check its schema tag and label order.

    labels: when given, the label order the caller expects (e.g. from features); a graph with
    other labels or another order raises :class:`MismatchError`.
    """
    p = Path(path)
    fix = f"make one with `{maker('graph')}`"
    if not p.is_file():
        raise input_error(p, "no such file", fix)
    refuse_hdf5(p, "graph")  # an embeddings or features file is named as such, not as malformed JSON
    if p.suffix == ".graphml":
        graph = _read_graphml(p)
    else:
        data = read_json(p, fix=fix)
        if not isinstance(data, dict) or "nodes" not in data:
            check_schema(p, None, "graph")
        attrs = dict(data.get("graph") or {})
        check_schema(p, attrs.get("schema"), "graph")
        edges = data.get("edges", data.get("links", []))
        try:  # map + itemgetter: C-level passes over millions of edges
            sources = list(map(operator.itemgetter("source"), edges))
            targets = list(map(operator.itemgetter("target"), edges))
            counts = list(map(operator.itemgetter("count"), edges))
        except (KeyError, TypeError):
            raise input_error(p, "an edge lacks a source, target or count",
                              f"rebuild it with `{maker('graph')}`") from None
        graph = _from_parts(p, attrs, data["nodes"], sources, targets, counts)
    if labels is not None:
        check_labels(graph, labels, p)
    return graph


def check_labels(graph: LabelGraph, labels: Sequence[str], path: str | os.PathLike) -> None:
    """Raise :class:`MismatchError` unless ``graph`` has exactly ``labels``, in that order."""
    if list(labels) == graph.labels:
        return
    missing = [x for x in labels if x not in set(graph.labels)]
    extra = [x for x in graph.labels if x not in set(labels)]
    if missing or extra:
        what = (f"lacks {len(missing)} expected label(s) (e.g. {missing[0]!r})" if missing
                else f"has {len(extra)} label(s) not expected (e.g. {extra[0]!r})")
    else:
        k = next(i for i, (a, b) in enumerate(zip(labels, graph.labels)) if a != b)
        what = f"has the same labels in another order (position {k}: {graph.labels[k]!r}, expected {labels[k]!r})"
    raise MismatchError(f"{os.fspath(path)}: the graph {what} "
                        f"(rebuild it from the same annotations with `{maker('graph')}`)")


def _read_graphml(p: Path) -> LabelGraph:
    import networkx as nx

    try:
        g = nx.read_graphml(p)
    except Exception as exc:  # networkx raises several XML error types
        raise input_error(p, f"not a readable GraphML file ({exc})", f"make one with `{maker('graph')}`") from None
    attrs = {k: v for k, v in g.graph.items() if k not in ("node_default", "edge_default")}
    for key, value in list(attrs.items()):
        # write_graph stores lists and dicts as JSON text: GraphML attributes are scalars.
        if isinstance(value, str) and (value[:1] in "[{" or value == "null"):
            try:
                attrs[key] = json.loads(value)
            except ValueError:
                pass
    check_schema(p, attrs.get("schema"), "graph")
    nodes = [{"id": n, **d} for n, d in g.nodes(data=True)]
    edges = list(g.edges(data=True))
    return _from_parts(p, attrs, nodes, [u for u, _, _ in edges], [v for _, v, _ in edges],
                       [d.get("count", 0) for _, _, d in edges])


def _from_parts(p: Path, attrs: dict[str, Any], nodes: list[dict], sources: list, targets: list,
                counts: list) -> LabelGraph:
    """A LabelGraph from parsed nodes and edge columns (E sources, targets, counts); checks consistency."""
    fix = f"rebuild it with `{maker('graph')}`"
    order = attrs.pop("label_order", None)
    attrs.pop("schema", None)
    try:
        num_images = int(attrs.pop("num_images", 0))
        by_name = {str(n["id"]): int(n.get("count", 0)) for n in nodes}
        index_of = {str(n["id"]): int(n.get("index", k)) for k, n in enumerate(nodes)}
    except (KeyError, TypeError, ValueError):
        raise input_error(p, "a node lacks an id or has a non-numeric count", fix) from None
    if order is None:
        order = sorted(by_name, key=index_of.__getitem__)
    if not isinstance(order, list) or sorted(map(str, order)) != sorted(by_name) or len(set(order)) != len(order):
        raise input_error(p, "the label order does not match the graph's nodes (the file was edited by hand?)", fix)
    index = {name: i for i, name in enumerate(order)}
    c = len(order)
    e = len(sources)
    try:
        rows = np.fromiter(map(index.__getitem__, sources), dtype=np.int64, count=e)
        cols = np.fromiter(map(index.__getitem__, targets), dtype=np.int64, count=e)
        vals = np.array(counts, dtype=np.int64) if e else np.zeros(0, dtype=np.int64)
    except KeyError as exc:
        raise input_error(p, f"an edge names {exc.args[0]!r}, which is not a node", fix) from None
    except (TypeError, ValueError):
        raise input_error(p, "an edge count is not a whole number", fix) from None
    if (vals < 0).any():
        raise input_error(p, "an edge has a negative count", fix)
    if (rows == cols).any():
        raise input_error(p, f"a self-loop on {order[int(rows[rows == cols][0])]!r} (M_ii is not stored)", fix)
    m = sp.coo_matrix((np.concatenate([vals, vals]), (np.concatenate([rows, cols]), np.concatenate([cols, rows]))),
                      shape=(c, c)).tocsr()
    counts = np.array([by_name[name] for name in order], dtype=np.int64)
    return LabelGraph(labels=list(order), image_counts=counts, cooccurrence=m, num_images=num_images, meta=attrs)
