"""The embedding report of ``mlgraph embed --report`` and ``mlgraph inspect``: a headline and a table."""

from __future__ import annotations

from typing import Any

from mlgraph_cli.cli._common import out


def _fmt(value: float | None) -> str:
    import math

    return "n/a" if value is None or not math.isfinite(value) else f"{value:.3f}"


def print_report(report: dict[str, Any], *, limit: int = 20) -> None:
    """The report as a headline and a rich table (stdout); graph neighbours are marked with *."""
    from rich.table import Table
    from rich.text import Text

    nb = report["neighbours"]
    params = ", ".join(f"{k}={v}" for k, v in nb["params"].items())
    out.print(f"{report['embeddings']} ({report['method']}, {report['labels']} labels x {report['dimension']}) "
              f"against {report['graph']}", markup=False)
    out.print(f"neighbour mAP {_fmt(report['map'])} over {report['labels_with_neighbours']} labels with a neighbour "
              f"(neighbours: {nb['kind']} adjacency{f' with {params}' if params else ''} > {nb['min_weight']:g}); "
              f"cosine vs {report['reference']['kind']}: Spearman {_fmt(report.get('spearman'))}, "
              f"Pearson {_fmt(report.get('pearson'))}", markup=False)
    nearest = report.get("nearest") or {}
    if not nearest:
        return
    table = Table(title="Nearest labels by cosine (* = graph neighbour)", title_justify="left")
    table.add_column("label")
    table.add_column("nearest labels (cosine)")
    names = list(nearest)
    shown = names if limit == 0 else names[:limit]
    for name in shown:
        cells = [f"{'*' if n['neighbour'] else ''}{n['label']} ({n['cosine']:.2f})" for n in nearest[name]]
        table.add_row(Text(name), Text(", ".join(cells)))  # Text: label names are not markup
    out.print(table)
    if len(shown) < len(names):
        out.print(f"... {len(names) - len(shown)} more labels (--limit 0 shows all, --json gives everything)",
                  markup=False)
