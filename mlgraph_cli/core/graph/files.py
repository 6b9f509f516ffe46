"""Graph files: networkx node-link JSON (``.json``) or GraphML (``.graphml``).

Nodes are labels with ``count`` and ``index`` (the label order), edges carry ``count``; graph
attributes hold the schema tag, N, the label order and provenance. Node-link JSON is written and
read directly (same layout as ``networkx.node_link_data(G, edges="edges")``) because building a
networkx graph of millions of edges just to serialise it costs more than the counting itself.

A graph read from disk may have been edited by hand, so its counts are checked before anything
is derived from them (:func:`check_counts`): whole numbers, 0 <= M_ij <= min(n_i, n_j),
n_i + n_j - M_ij <= N, one edge per pair and no self-loops. All checks are vectorised over
the edges.
"""

from __future__ import annotations

import itertools
import json
import operator
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import scipy.sparse as sp

from mlgraph_cli.core.io.outputs import write_output, write_text
from mlgraph_cli.core.io.artifacts import check_schema, maker
from mlgraph_cli.core.io.jsonfile import read_json
from mlgraph_cli.core.io.hdf5 import refuse_hdf5
from mlgraph_cli.core.io.inputs import check_input_file
from mlgraph_cli.core.io.jsonfile import describe
from mlgraph_cli.core.graph.counts import LabelGraph
from mlgraph_cli.errors import MismatchError, input_error

FIX = f"rebuild it with `{maker('graph')}`"


def write_graph(graph: LabelGraph, path: str | os.PathLike, inputs: Sequence[str | os.PathLike | None] = ()) -> None:
    """Write node-link JSON (``.json`` or ``-`` for stdout) or GraphML (``.graphml``) through
    :func:`~mlgraph_cli.core.io.outputs.write_output` (never over one of ``inputs``)."""
    p = os.fspath(path)
    if p.endswith(".graphml"):
        # lazy: start-up — networkx takes about 0.3 s to import; only GraphML needs it
        import networkx as nx

        g = graph.to_networkx()
        # GraphML attributes must be scalars: lists and dicts are stored as JSON text.
        for key, value in list(g.graph.items()):
            if isinstance(value, (list, dict)) or value is None:
                g.graph[key] = json.dumps(value, ensure_ascii=False)
        with write_output(p, inputs) as tmp:
            nx.write_graphml(g, tmp)
        return
    text = _node_link_text(graph)
    write_text(p, text, inputs)


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
    fix = f"make one with `{maker('graph')}`"
    p = check_input_file(path, fix=fix)
    refuse_hdf5(p, "graph")  # an embeddings or features file is named as such, not as malformed JSON
    if p.suffix == ".graphml":
        graph = _read_graphml(p)
    else:
        data = read_json(p, fix=fix)
        if not isinstance(data, dict) or "nodes" not in data:
            check_schema(p, None, "graph")
        attrs = data.get("graph")
        if not isinstance(attrs, dict):
            raise input_error(p, f'"graph" is {describe(attrs)}, not the object of graph attributes', FIX)
        check_schema(p, attrs.get("schema"), "graph")
        nodes, edges = data["nodes"], data.get("edges", data.get("links", []))
        for key, items in (("nodes", nodes), ("edges", edges)):
            if not isinstance(items, list) or not all(isinstance(x, dict) for x in items):
                raise input_error(p, f'"{key}" must be a list of objects', FIX)
        try:  # map + itemgetter: C-level passes over millions of edges
            sources = list(map(operator.itemgetter("source"), edges))
            targets = list(map(operator.itemgetter("target"), edges))
            counts = list(map(operator.itemgetter("count"), edges))
        except KeyError:
            raise input_error(p, "an edge lacks a source, target or count", FIX) from None
        graph = _from_parts(p, dict(attrs), nodes, sources, targets, counts)
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
    # lazy: start-up — networkx takes about 0.3 s to import; only GraphML needs it
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
    fix = FIX
    order = attrs.pop("label_order", None)
    attrs.pop("schema", None)
    num_images = attrs.pop("num_images", None)
    try:
        names = [_name(n["id"]) for n in nodes]
        index_of = {_name(n["id"]): _index(n.get("index", k)) for k, n in enumerate(nodes)}
    except (KeyError, TypeError, ValueError):
        raise input_error(p, "a node lacks an id (text) or has an index that is not a whole number", fix) from None
    if order is None:
        order = sorted(index_of, key=index_of.__getitem__)
    if not isinstance(order, list) or not all(isinstance(x, str) for x in order) \
            or sorted(order) != sorted(names) or len(set(order)) != len(order):
        raise input_error(p, "the label order does not match the graph's nodes (the file was edited by hand?)", fix)
    index = {name: i for i, name in enumerate(order)}
    c = len(order)
    e = len(sources)
    try:
        rows = np.fromiter(map(index.__getitem__, sources), dtype=np.int64, count=e)
        cols = np.fromiter(map(index.__getitem__, targets), dtype=np.int64, count=e)
    except KeyError as exc:
        raise input_error(p, f"an edge names {exc.args[0]!r}, which is not a node", fix) from None
    except TypeError:  # an unhashable source or target (a list, an object)
        raise input_error(p, "an edge's source or target is not a label name", fix) from None
    by_name = {str(n["id"]): n.get("count", 0) for n in nodes}
    raw_counts = [by_name[name] for name in order]
    image_counts, bad = _whole_numbers(raw_counts)
    if bad is not None:
        raise input_error(p, f"{order[bad]!r} has an image count that is not a whole number ({raw_counts[bad]!r})", fix)
    vals, bad = _whole_numbers(counts)
    if bad is not None:
        raise input_error(p, f"{order[rows[bad]]!r} and {order[cols[bad]]!r} have a co-occurrence count that is not "
                             f"a whole number ({counts[bad]!r})", fix)
    if num_images is None:
        raise input_error(p, "the graph does not say how many images it counts (no num_images)", fix)
    check_counts(p, order, image_counts, rows, cols, vals, num_images)
    m = sp.coo_matrix((np.concatenate([vals, vals]), (np.concatenate([rows, cols]), np.concatenate([cols, rows]))),
                      shape=(c, c)).tocsr()
    return LabelGraph(labels=list(order), image_counts=image_counts, cooccurrence=m, num_images=int(num_images),
                      meta=attrs)


def _whole_numbers(values: Sequence[Any]) -> tuple[np.ndarray, int | None]:
    """``values`` as an int64 array, and the index of the first one that is not a whole number (or None).

    Whole floats (2.0) are accepted; fractions, strings, booleans and NaN are not.
    """
    try:
        arr = np.asarray(values) if len(values) else np.zeros(0, dtype=np.int64)
    except (ValueError, TypeError):  # lists among the numbers: found one by one below
        arr = np.zeros((0, 0))
    if arr.ndim == 1 and arr.dtype.kind in "iu":
        return arr.astype(np.int64), None
    if arr.ndim == 1 and arr.dtype.kind == "f":
        ok = np.isfinite(arr) & (arr == np.round(arr)) & (np.abs(arr) <= 2**53)
        bad = np.flatnonzero(~ok)
        return (arr.astype(np.int64), None) if not len(bad) else (arr, int(bad[0]))
    for k, v in enumerate(values):  # mixed or odd types: look one by one (only for a broken file)
        if isinstance(v, bool) or not (isinstance(v, int) or (isinstance(v, float) and v.is_integer()
                                                              and abs(v) <= 2**53)):
            return arr, k
    return np.asarray(values, dtype=np.int64), None


def _name(value: Any) -> str:
    """A node id: text (networkx also writes whole numbers); anything else is refused."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise TypeError(value)
    return str(value)


def _index(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(value)
    return value


def check_counts(p: str | os.PathLike, labels: Sequence[str], image_counts: np.ndarray, rows: np.ndarray,
                 cols: np.ndarray, vals: np.ndarray, num_images: Any) -> None:
    """Raise :class:`InputError` unless the counts can come from counting N images.

    image_counts: (C,) n_i. rows, cols, vals: (E,) edges (i, j, M_ij), one per unordered pair.
    Holds for real counts: 0 <= M_ij <= min(n_i, n_j), n_i <= N, n_i + n_j - M_ij <= N (the
    images carrying i or j are at most all of them), i != j.
    """
    fix = FIX
    if isinstance(num_images, bool) or not isinstance(num_images, int) or num_images < 0:
        raise input_error(p, f"the number of images is not a whole number >= 0 ({num_images!r})", fix)
    n = image_counts
    if (bad := np.flatnonzero(n < 0)).size:
        raise input_error(p, f"{labels[bad[0]]!r} has a negative image count ({n[bad[0]]})", fix)
    if (bad := np.flatnonzero(n > num_images)).size:
        raise input_error(p, f"{labels[bad[0]]!r} has {n[bad[0]]} images, more than the graph's {num_images}", fix)
    if (bad := np.flatnonzero(rows == cols)).size:
        raise input_error(p, f"a self-loop on {labels[rows[bad[0]]]!r} (M_ii is not stored)", fix)

    def pair(k: int) -> str:
        return f"{labels[rows[k]]!r} and {labels[cols[k]]!r}"

    if (bad := np.flatnonzero(vals < 0)).size:
        raise input_error(p, f"{pair(bad[0])} have a negative co-occurrence count ({vals[bad[0]]})", fix)
    lo, hi = np.minimum(rows, cols), np.maximum(rows, cols)
    key = lo * len(labels) + hi
    if len(np.unique(key)) != len(key):
        uniq, first, seen = np.unique(key, return_index=True, return_counts=True)
        k = first[np.flatnonzero(seen > 1)[0]]
        raise input_error(p, f"the pair {labels[lo[k]]!r} and {labels[hi[k]]!r} has more than one edge", fix)
    ni, nj = n[rows], n[cols]
    if (bad := np.flatnonzero(vals > np.minimum(ni, nj))).size:
        k = bad[0]
        small = rows[k] if ni[k] <= nj[k] else cols[k]
        raise input_error(p, f"{pair(k)} co-occur {vals[k]} times, more than {labels[small]!r} has images "
                             f"({n[small]})", fix)
    if (bad := np.flatnonzero(ni + nj - vals > num_images)).size:
        k = bad[0]
        raise input_error(p, f"{labels[rows[k]]!r} ({ni[k]} images) and {labels[cols[k]]!r} ({nj[k]} images) co-occur "
                             f"{vals[k]} times, so together they are on {ni[k] + nj[k] - vals[k]} images, more than "
                             f"the graph's {num_images}", fix)
