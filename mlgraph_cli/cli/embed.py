"""``mlgraph embed``: label embeddings from the label graph (ASGE, or a baseline)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from mlgraph_cli.cli._common import handle_errors, load_project, progress_bar, summary
from mlgraph_cli.cli._options import config_option, given, plain_option
from mlgraph_cli.cli._report import print_report
from mlgraph_cli.core.embeddings.config import (MAX_DIM, METHODS, OOV_POLICIES, WEIGHTINGS,  # plain data: no torch
                                               EmbedConfig)
from mlgraph_cli.core.graph.config import ADJACENCY_KINDS

EPILOG = "Example: mlgraph embed graph.json -o embeddings.h5 --method asge --init glove.6B.300d.txt --seed 0"


def embed(
    graph: Annotated[Optional[Path], typer.Argument(
        help="Label graph from `mlgraph build-graph`. Default: \\[artifacts] graph of mlgraph.toml.",
        show_default=False)] = None,
    *,
    output: Annotated[Optional[Path], plain_option(
        "-o", "--output", help="Embeddings file (HDF5). Default: \\[artifacts] embeddings, or embeddings.h5.")] = None,
    method: Annotated[Optional[Literal[METHODS]], config_option(EmbedConfig, "method",
        "--method", help="asge: fit cosine similarity to the adjacency; word: the word vectors as they "
                         "are; deepwalk, spectral: graph baselines; onehot: the identity.")] = None,
    init: Annotated[Optional[str], plain_option(
        "--init", help="Word vectors: word2vec text/binary (.bin), GloVe text, gensim .kv; 'onehot' for one-hot "
                       "inputs. Default: \\[dataset] vectors of mlgraph.toml, else one-hot.")] = None,
    dim: Annotated[Optional[int], config_option(EmbedConfig, "dim",
        "--dim", min=1, max=MAX_DIM, help="Embedding width (asge, deepwalk, spectral). word keeps its own; onehot is the "
                             "identity, or with --dim >= labels seeded orthonormal rows that wide.")] = None,
    seed: Annotated[Optional[int], config_option(EmbedConfig, "seed", help="Seed: same seed, same bytes.")] = None,
    adjacency: Annotated[Optional[Literal[ADJACENCY_KINDS]], config_option(EmbedConfig, "adjacency",
        "--adjacency", help="Target adjacency derived from the graph (cond-mean: (P(j|i) + P(i|j)) / 2).")] = None,
    tau: Annotated[Optional[float], config_option(EmbedConfig, "tau",
        "--tau", min=0.0, max=1.0, help="Threshold on P(j|i) for --adjacency binary and mlgcn.")] = None,
    oov: Annotated[Optional[Literal[OOV_POLICIES]], config_option(EmbedConfig, "oov",
        "--oov", help="Labels missing from the vectors: error or random (seeded random vectors, "
                      "with a warning).")] = None,
    steps: Annotated[Optional[int], config_option(EmbedConfig, "steps", min=1, max=10**7,
                                                                help="ASGE optimiser steps.")] = None,
    lr: Annotated[Optional[float], config_option(EmbedConfig, "lr", "--lr", help="ASGE learning rate (Adam).")] = None,
    weighting: Annotated[Optional[Literal[WEIGHTINGS]], config_option(EmbedConfig, "weighting",
        "--weighting", help="ASGE pair weights w_ij: uniform or balanced (edges and non-edges half "
                            "each).")] = None,
    self_weight: Annotated[Optional[float], config_option(EmbedConfig, "self_weight",
        "--self-weight", min=0.0, help="ASGE target A + lambda I at unit diagonal: co-occurring labels get "
                                       "cosine A_ij / (1 + lambda), so their attention maps stay apart.")] = None,
    trust_pickle: Annotated[bool, typer.Option(
        "--trust-pickle", help="Allow a gensim .kv file (a pickle, which runs code when loaded) as --init. Only "
                               "for files you made; never taken from mlgraph.toml.")] = False,
    report: Annotated[bool, typer.Option(
        "--report", help="Then print how well the embeddings rank graph neighbours (as `mlgraph inspect`).")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no notes.")] = False,
) -> None:
    """Learn label embeddings whose cosine similarity follows the label graph (ASGE), or a baseline."""
    from mlgraph_cli.stages.embed import ReportConfig, inspect_embeddings, run_embed

    overrides = given(method=method, adjacency=adjacency, tau=tau, dim=dim, seed=seed, oov=oov, steps=steps, lr=lr,
                      weighting=weighting, self_weight=self_weight)
    progress = progress_bar(quiet=quiet)
    try:
        result, config, source = run_embed(graph, output, overrides, init=init, trust_pickle=trust_pickle,
                                           project=load_project(), progress=progress)
    finally:
        progress.stop()
    fit = result.fit
    details = [f"init {Path(result.init).name}" if result.method in ("asge", "word") else None,
               f"{config.adjacency} adjacency" if result.method in ("asge", "deepwalk", "spectral") else None,
               f"{fit['steps']} steps, loss {fit['final_loss']:.2e}" if "final_loss" in fit else None,
               f"{len(result.oov)} OOV label(s) random" if result.oov else None]
    summary(f"Embeddings ({result.method}; {'; '.join(d for d in details if d)}): {result.num_labels:,} labels x "
            f"{result.dimension} in {result.seconds:.1f} s -> {result.path}")
    if report:
        print_report(inspect_embeddings(result.path, source, ReportConfig()), limit=20)


def register(app: typer.Typer) -> None:
    app.command("embed", epilog=EPILOG)(handle_errors(embed))
