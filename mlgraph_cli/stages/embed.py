"""Stage: label graph (+ word vectors) -> label embeddings; and the quality report of an embeddings file.

``embed`` reads a graph, derives the named adjacency, runs one method (ASGE or a baseline) and
writes an ``mlgraph/embeddings@1`` file. ``inspect_embeddings`` measures how well an embeddings
file's cosine similarities rank a graph's neighbours (docs/embed.md, "Report").
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlgraph_cli.core.embeddings.baselines import deepwalk_embeddings, onehot_embeddings, spectral_embeddings
from mlgraph_cli.core.embeddings.config import DEFAULT_DIM, METHODS, EmbedConfig, ReportConfig, params_for
from mlgraph_cli.core.embeddings.files import LabelEmbeddings, read_embeddings, write_embeddings
from mlgraph_cli.core.embeddings.quality import neighbour_ranking
from mlgraph_cli.core.embeddings.wordvectors import label_vectors, load_word_vectors
from mlgraph_cli.core.graph.adjacency import adjacency, keep_apart
from mlgraph_cli.core.graph.files import read_graph
from mlgraph_cli.core.io.artifacts import file_digest, labels_digest, maker, provenance
from mlgraph_cli.core.io.outputs import check_output
from mlgraph_cli.core.progress import NULL_PROGRESS, ProgressHook
from mlgraph_cli.core.project import merge_config, resolve_input, resolve_output
from mlgraph_cli.errors import MlgraphError

ONEHOT_INIT = ("onehot", "none")  # --init values that mean "no word vectors"


@dataclass
class EmbedResult:
    path: Path
    method: str
    num_labels: int
    dimension: int
    seconds: float
    init: str
    fit: dict[str, Any] = field(default_factory=dict)
    oov: list[str] = field(default_factory=list)


def _initial_vectors(init: str | os.PathLike | None, labels: list[str], config: EmbedConfig,
                     progress: ProgressHook, trust_pickle: bool):
    """(vectors or None for one-hot, description for the file, OOV labels)."""
    if init is None or os.fspath(init) in ONEHOT_INIT:
        return None, "onehot", []
    kv = load_word_vectors(init, trust_pickle=trust_pickle)
    lv = label_vectors(kv, labels, source=init, oov=config.oov, seed=config.seed)
    if lv.missing:
        named = ", ".join(repr(m) for m in lv.missing[:10]) + (" ..." if len(lv.missing) > 10 else "")
        progress.log(f"Warning: {os.fspath(init)}: no vector for {len(lv.missing)} label(s), "
                     f"seeded random vectors used (--oov random): {named}")
    return lv.vectors, os.fspath(init), lv.missing


def embed(graph_path: str | os.PathLike, output: str | os.PathLike, config: EmbedConfig, *,
          init: str | os.PathLike | None = None, trust_pickle: bool = False,
          progress: ProgressHook = NULL_PROGRESS, command: str = "mlgraph embed") -> EmbedResult:
    """Embed the labels of ``graph_path`` with ``config.method`` and write ``output`` (HDF5).

    init: word vectors (any format of core/embeddings/wordvectors.py), ``"onehot"`` or None. ``word``
    needs vectors; ``deepwalk``, ``spectral`` and ``onehot`` do not use them. trust_pickle:
    allow a pickle-based gensim ``.kv`` file as ``init``. It is deliberately not part of
    :class:`EmbedConfig`, so no project file can switch it on.
    """
    if os.fspath(output) == "-":
        raise MlgraphError("-o -: embeddings are an HDF5 file and cannot go to stdout (give a file name)")
    inputs = [graph_path, init if init is not None and os.fspath(init) not in ONEHOT_INIT else None]
    check_output(output, inputs)
    started = time.perf_counter()
    graph = read_graph(graph_path)
    labels, c = list(graph.labels), graph.num_labels
    if c < 2:
        raise MlgraphError(f"{os.fspath(graph_path)}: the graph has {c} label(s); embeddings need at least 2 "
                           f"(rebuild it from annotations with more labels with `{maker('graph')}`)")
    method = config.method
    uses_vectors = method in ("asge", "word")
    if not uses_vectors and init is not None and os.fspath(init) not in ONEHOT_INIT:
        progress.log(f"Note: --method {method} does not use word vectors; {os.fspath(init)} is ignored.")
    if method == "word" and (init is None or os.fspath(init) in ONEHOT_INIT):
        raise MlgraphError("--method word needs word vectors (pass --init VECTORS, or set `vectors` in the "
                           "project's [dataset])")
    vectors, init_desc, oov = _initial_vectors(init, labels, config, progress, trust_pickle) if uses_vectors else (None, "none", [])

    natural = {"word": None if vectors is None else vectors.shape[1]}.get(method)
    if method == "onehot" and config.dim is not None and int(config.dim) < c:
        raise MlgraphError(f"--dim {config.dim}: --method onehot gives {c} orthonormal rows, which need at least "
                           f"{c} dimensions; leave out --dim (and [embed] dim) for the identity, or pass --dim {c} "
                           "or more")
    if natural is not None and config.dim is not None and int(config.dim) != natural:
        raise MlgraphError(f"--dim {config.dim}: --method {method} keeps its own width ({natural}); leave out "
                           "--dim (and [embed] dim), or use --method asge to learn embeddings of any width")
    dim = int(natural or config.dim or (c if method == "onehot" else DEFAULT_DIM))

    params = config.adjacency_params()
    target = adjacency(graph, config.adjacency, **params) if method in ("asge", "deepwalk", "spectral") else None
    fit: dict[str, Any] = {}
    if method == "asge":
        # lazy: start-up — asge.py loads torch (about 1.5 s), which no other --method and no `mlgraph inspect` needs
        from mlgraph_cli.core.embeddings.asge import asge_embeddings

        if config.self_weight:
            target = keep_apart(target, config.self_weight)
        out, fit = asge_embeddings(target, vectors, dim=dim, hidden=config.hidden, steps=config.steps,
                                     lr=config.lr, seed=config.seed, weighting=config.weighting,
                                     threads=config.threads, progress=progress)
    elif method == "word":
        out = vectors
    elif method == "onehot":
        out = onehot_embeddings(c, dim, seed=config.seed)
    elif method == "spectral":
        if dim > c:
            progress.log(f"Note: spectral embeddings have at most C = {c} dimensions; using {c}, not {dim}.")
        out = spectral_embeddings(target, dim)
    else:  # deepwalk
        progress.start("DeepWalk", total=None, unit="walks")
        walk = {k: getattr(config, k) for k in ("walks_per_label", "walk_length", "window", "epochs")}
        out = deepwalk_embeddings(target, dim=dim, seed=config.seed, **walk)
        progress.stop()
        fit = dict(walk)

    graph_file = Path(graph_path)
    attrs = {
        "method": method,
        "adjacency": ({"kind": config.adjacency, "params": params,
                       **({"self_weight": float(config.self_weight)} if method == "asge" and config.self_weight else {})}
                      if target is not None else None),
        "graph": {"path": os.fspath(graph_file.resolve()), "labels_digest": labels_digest(labels),
                  "file_digest": file_digest(graph_file)},
        "seed": config.seed,
        "init": init_desc,
        "fit": fit,
        "oov_random": oov,
        "provenance": provenance(command, {**asdict(config), "graph": graph_file, "init": init_desc,
                                           "output": output}),
    }
    attrs["provenance"].pop("created")  # same command and seed, same bytes: no wall-clock time in the file
    write_embeddings(output, LabelEmbeddings(labels=labels, vectors=np.asarray(out, dtype=np.float32),
                                                 attrs=attrs), inputs)
    return EmbedResult(path=Path(output), method=method, num_labels=c, dimension=int(out.shape[1]),
                       seconds=time.perf_counter() - started, init=init_desc, fit=fit, oov=oov)


# ---------------------------------------------------------------------------------------------
# Report

def inspect_embeddings(embeddings_path: str | os.PathLike, graph_path: str | os.PathLike | None = None,
                       config: ReportConfig | None = None, *,
                       project_graph: str | os.PathLike | None = None) -> dict[str, Any]:
    """How well the embeddings' cosine similarity ranks the graph's neighbours (a JSON-able dict).

    The graph: ``graph_path``, else the one recorded in the embeddings file if it still exists,
    else ``project_graph``. Keys: embeddings, graph, method, labels, dimension, neighbours
    {kind, params, min_weight}, reference {kind, params}, map (0-1, mean AP over labels with a
    neighbour), labels_with_neighbours, spearman, pearson, nearest (label -> [{label, cosine,
    neighbour}]).
    """
    config = config or ReportConfig()
    emb = read_embeddings(embeddings_path)
    if graph_path is None:
        recorded = (emb.attrs.get("graph") or {}).get("path")
        graph_path = recorded if recorded and Path(recorded).is_file() else project_graph
        if graph_path is None:
            raise MlgraphError(f"{os.fspath(embeddings_path)}: the graph it was made from is not found"
                               f"{f' ({recorded})' if recorded else ''} "
                               f"(pass --graph GRAPH, made by `{maker('graph')}`)")
    graph = read_graph(graph_path)
    emb = emb.aligned_to(graph.labels, source=embeddings_path)
    fitted = emb.attrs.get("adjacency") or {}
    ref_kind = config.reference or fitted.get("kind") or "cond-mean"
    ref_params = dict(fitted.get("params") or {}) if ref_kind == fitted.get("kind") else {}
    nb_params = params_for(config.neighbours, tau=config.tau)
    neighbours = adjacency(graph, config.neighbours, **nb_params) > config.min_weight
    reference = adjacency(graph, ref_kind, **ref_params)
    result = neighbour_ranking(emb.vectors, neighbours, reference, topk=config.topk, labels=emb.labels)
    return {
        "embeddings": os.fspath(embeddings_path),
        "graph": os.fspath(graph_path),
        "method": emb.attrs.get("method"),
        "labels": len(emb.labels),
        "dimension": emb.dimension,
        "neighbours": {"kind": config.neighbours, "params": nb_params, "min_weight": config.min_weight},
        "reference": {"kind": ref_kind, "params": ref_params},
        **result,
    }


# ---------------------------------------------------------------------------------------------
# The commands as one call each: the project and every default resolved here

def run_embed(graph: str | os.PathLike | None, output: str | os.PathLike | None, overrides: dict[str, Any], *,
              init: str | os.PathLike | None = None, trust_pickle: bool = False, project=None,
              progress: ProgressHook = NULL_PROGRESS) -> tuple[EmbedResult, EmbedConfig, Path]:
    """``mlgraph embed``: paths left out (None) come from ``project`` (``[artifacts] graph`` /
    ``embeddings``, ``[dataset] vectors``); ``overrides`` (None = not given) go over ``[embed]``.
    ``trust_pickle`` covers only an ``init`` given here, never the project's vectors. Returns the
    result, the settings used and the graph read."""
    source = resolve_input(graph, project, artifact="graph", what="label graph",
                           fix="make one with `mlgraph build-graph`")
    config = merge_config(EmbedConfig, project, "embed", overrides)
    vectors = init if init is not None else (project.dataset_path("vectors") if project is not None else None)
    dest = resolve_output(output, project, "embeddings", "embeddings.h5")
    result = embed(source, dest, config, init=vectors, trust_pickle=trust_pickle and init is not None,
                   progress=progress)
    return result, config, source


def run_inspect(embeddings: str | os.PathLike | None, graph: str | os.PathLike | None, overrides: dict[str, Any],
                *, project=None) -> dict[str, Any]:
    """``mlgraph inspect``: ``embeddings`` None is the project's ``[artifacts] embeddings``; the graph
    falls back to ``[artifacts] graph``; ``overrides``: ReportConfig values (None = not given)."""
    source = resolve_input(embeddings, project, artifact="embeddings", what="embeddings file",
                           fix="make one with `mlgraph embed`")
    config = ReportConfig(**{k: v for k, v in overrides.items() if v is not None})
    return inspect_embeddings(source, graph, config,
                              project_graph=project.artifact("graph") if project is not None else None)

