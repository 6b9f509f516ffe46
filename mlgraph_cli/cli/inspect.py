"""``mlgraph inspect``: how well label embeddings rank the label graph's neighbours."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

import typer

from mlgraph_cli.cli._common import handle_errors, load_project
from mlgraph_cli.cli._options import config_option, given, plain_option
from mlgraph_cli.cli._report import print_report
from mlgraph_cli.core.embeddings.config import ReportConfig  # a plain dataclass: no torch
from mlgraph_cli.core.graph.config import ADJACENCY_KINDS

EPILOG = "Example: mlgraph inspect embeddings.h5 --graph graph.json --topk 5"


def inspect(
    embeddings: Annotated[Optional[Path], typer.Argument(
        help="Embeddings from `mlgraph embed`. Default: \\[artifacts] embeddings of mlgraph.toml.",
        show_default=False)] = None,
    *,
    graph: Annotated[Optional[Path], plain_option(
        "--graph", help="Label graph to measure against. Default: the graph recorded in the embeddings file "
                        "if it still exists, else \\[artifacts] graph.")] = None,
    neighbours: Annotated[Optional[Literal[ADJACENCY_KINDS]], config_option(ReportConfig, "neighbours",
        "--neighbours", help="Adjacency that defines the true neighbours (binary: max(P(j|i), P(i|j)) "
                             ">= tau).")] = None,
    tau: Annotated[Optional[float], config_option(ReportConfig, "tau",
        "--tau", help="tau of --neighbours binary/mlgcn (0.4 is ML-GCN's).")] = None,
    min_weight: Annotated[Optional[float], config_option(ReportConfig, "min_weight",
        "--min-weight", help="A neighbour's adjacency must exceed this.")] = None,
    reference: Annotated[Optional[Literal[ADJACENCY_KINDS]], plain_option(
        "--reference", help="Adjacency correlated with cosine (default: the one the embeddings were fitted to, "
                            "else cond-mean).")] = None,
    topk: Annotated[int, typer.Option("--topk", min=0, help="Nearest labels listed per label.")] = ReportConfig.topk,
    limit: Annotated[int, typer.Option("--limit", min=0, help="Labels in the table (0: all).")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole report as JSON on stdout.")] = False,
) -> None:
    """Rank each label's graph neighbours by embedding cosine: mean AP, correlations, nearest labels."""
    from mlgraph_cli.stages.embed import run_inspect

    options = given(neighbours=neighbours, tau=tau, min_weight=min_weight, reference=reference, topk=topk)
    report = run_inspect(embeddings, graph, options, project=load_project())
    if as_json:
        typer.echo(json.dumps(_finite(report), indent=2, ensure_ascii=False))
    else:
        print_report(report, limit=limit)


def _finite(value: Any) -> Any:
    """NaN (no neighbours, constant similarities) as null, so the JSON stays valid."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def register(app: typer.Typer) -> None:
    app.command("inspect", epilog=EPILOG)(handle_errors(inspect))
