"""``mlgraph evaluate``: metrics of a trained run on labelled features (or images)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Optional

import typer

from mlgraph_cli.cli._common import progress_bar, err, handle_errors, is_stdout, load_project, out, summary
from mlgraph_cli.cli._options import config_option, given, plain_option
from mlgraph_cli.core.evaluation.config import CHECKPOINTS, EvaluateConfig  # plain data: no torch

EPILOG = "Example: mlgraph evaluate runs/train/exp --features test-features.h5 -o metrics.json --per-label"
ROWS = ("CP", "CR", "CF1", "OP", "OR", "OF1")


def evaluate(
    run_dir: Annotated[Optional[Path], typer.Argument(
        help="Run folder from `mlgraph train`. Default: the most recent run (\\[artifacts] runs, or runs/train).",
        show_default=False)] = None,
    *,
    features: Annotated[Optional[Path], plain_option(
        "--features", help="Labelled features from the run's backbone. Default: \\[artifacts] test_features if it "
                           "exists, else val_features.")] = None,
    images: Annotated[Optional[Path], plain_option(
        "--images", help="Evaluate on images instead (needed for runs that fine-tuned their backbone).")] = None,
    annotations: Annotated[Optional[Path], plain_option("--annotations", help="Annotations of --images.")] = None,
    output: Annotated[Optional[str], plain_option(
        "-o", "--output", help="Metrics JSON (mlgraph/metrics@1); '-' writes it to stdout. Default: "
                               "RUN/eval-<data>.json.")] = None,
    threshold: Annotated[Optional[str], config_option(EvaluateConfig, "threshold", help="Probability at which a label "
                                                      "counts as predicted, or 'tuned': the run's per-label thresholds "
                                                      "(best F1 on its validation split). Both are shown when the run "
                                                      "has tuned ones.")] = None,
    checkpoint: Annotated[Optional[Literal[CHECKPOINTS]], config_option(EvaluateConfig, "checkpoint",
                                                                              help="Which weights.")] = None,
    per_label: Annotated[Optional[bool], config_option(EvaluateConfig, "per_label",
        "--per-label", help="Also print AP, precision, recall, F1 and positives of every label.")
    ] = None,
    plots: Annotated[Optional[Path], plain_option(
        "--plots", help="Folder for the plots (precision-recall curves, per-label chart). Default: beside -o, as "
                        "<name>.pr.png and <name>.labels.png; none for -o - unless given.")] = None,
    no_plots: Annotated[bool, typer.Option("--no-plots", help="Write no plots (\\[evaluate] plots = false).")] = False,
    device: Annotated[Optional[str], config_option(EvaluateConfig, "device", help="auto, cpu, cuda, cuda:N.")] = None,
    batch_size: Annotated[Optional[int], config_option(EvaluateConfig, "batch_size", min=1, help="Images per batch.")
                          ] = None,
    top_k_segments: Annotated[Optional[int], config_option(
        EvaluateConfig, "top_k_segments", min=1, help="Video runs on YouTube-8M Segments ratings: K of the segment "
                                                      "MAP@K (rated segments only).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Score a run on labelled data: mAP, CP, CR, CF1, OP, OR, OF1 and their top-3 variants (0-100), at the
    run's threshold and at its tuned per-label thresholds; precision-recall curves and a per-label chart as PNGs.
    A video run adds GAP@20, and segment MAP@K when the features hold YouTube-8M Segments ratings."""
    from mlgraph_cli.stages.evaluate import run_evaluate

    overrides = given(threshold=threshold, checkpoint=checkpoint, device=device, batch_size=batch_size,
                      top_k_segments=top_k_segments, per_label=per_label, plots=False if no_plots else None)
    progress = progress_bar(quiet=quiet)
    try:
        result = run_evaluate(run_dir, features=features, images=images, annotations=annotations, output=output,
                              plots=plots, overrides=overrides, project=load_project(), progress=progress)
    finally:
        progress.stop()
    console = err if is_stdout(output) else out
    m = result.metrics
    console.print(metrics_table(m))
    if result.config.per_label:
        console.print(per_label_table(m))
    for warning in result.warnings:
        err.print(f"warning: {warning}", style="yellow", markup=False, highlight=False)
    split = m.get("split") or {}
    if split.get("optimistic"):
        err.print(f"note: {result.data.name}: {split['note']}", style="yellow", markup=False, highlight=False)
    left = m["labels_without_positives"]["count"]
    note = f"; {left} label(s) without positives left out of mAP" if left else ""
    skipped = f"; {len(result.skipped)} unreadable image(s) skipped" if result.skipped else ""
    where = "stdout" if result.output is None else str(result.output)
    pngs = f" and {', '.join(p.name for p in result.plots)}" if result.plots else ""
    segments = f", {m['segments']['rated']:,} rated segments" if "segments" in m else ""
    summary(f"{result.run_dir} ({result.checkpoint}, epoch {m['epoch']}) on {result.data.name}: "
            f"{m['num_images']:,} {_items(m)}{segments}, threshold {_threshold(m)}{note}{skipped} -> {where}{pngs}")


def _items(m: dict[str, Any]) -> str:
    return "videos" if m.get("modality") == "video" else "images"


def _threshold(m: dict[str, Any]) -> str:
    return "tuned per label" if m.get("threshold_mode") == "tuned" else f"{m['threshold']:g}"


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.2f}"


def metrics_table(m: dict[str, Any]):
    """mAP, then CP ... OF1 at the global threshold, at the tuned thresholds (when the run has them)
    and the top-k variant of the thresholds in use."""
    from rich.table import Table

    split = (m.get("split") or {}).get("name", "held-out")
    topk = m.get("topk", 3)
    both = m.get("thresholds") or {}
    fixed, tuned = both.get("fixed") or {}, both.get("tuned")
    title = f"{m.get('head', '')} on {m['num_images']:,} {_items(m)} ({split})"
    in_use = "tuned" if m.get("threshold_mode") == "tuned" else f"at {_threshold(m)}"
    cut = "each label's tuned threshold" if m.get("threshold_mode") == "tuned" else f"the threshold {_threshold(m)}"
    caption = (f"top-{topk}: a label counts as predicted only when it is among the image's {topk} highest scores "
               f"and reaches {cut}")
    table = Table(title=title, title_justify="left", caption=caption, caption_justify="left")
    table.add_column("metric")
    table.add_column(f"at {fixed.get('threshold', m['threshold']):g}" if fixed else "all labels", justify="right")
    if tuned is not None:
        table.add_column("tuned", justify="right")
    table.add_column(f"top-{topk} {in_use}", justify="right")
    top = m.get(f"top{topk}") or {}
    table.add_row("mAP", _fmt(m.get("mAP")), *([""] if tuned is not None else []), "")
    for key in ROWS:
        cells = [_fmt(fixed.get(key, m.get(key)))] + ([_fmt(tuned.get(key))] if tuned is not None else [])
        table.add_row(key, *cells, _fmt(top.get(key)))
    # video runs: YouTube-8M's GAP@20 and, on Segments ratings, MAP@K over the rated segments
    for key in [k for k in m if k.startswith(("GAP@", "segment_MAP@"))]:
        table.add_row(key, _fmt(m[key]), *([""] if tuned is not None else []), "")
    return table


def per_label_table(m: dict[str, Any]):
    """AP, precision, recall, F1 (at the thresholds in use), positives and threshold of every label."""
    from rich.table import Table

    table = Table(title="per label (P, R, F1 at the thresholds in use)", title_justify="left")
    for name in ("label", "AP", "P", "R", "F1", "positives", "threshold"):
        table.add_column(name, justify="left" if name == "label" else "right")
    rows = m.get("per_label") or [{"label": k, "ap": v} for k, v in m["per_label_ap"].items()]
    for row in sorted(rows, key=lambda r: -(r["ap"] if r.get("ap") is not None else -1)):
        threshold = row.get("threshold")
        table.add_row(row["label"], _fmt(row.get("ap")), _fmt(row.get("precision")), _fmt(row.get("recall")),
                      _fmt(row.get("f1")), str(row.get("positives", "")),
                      "" if threshold is None else f"{threshold:.3f}")
    return table


def register(app: typer.Typer) -> None:
    app.command("evaluate", epilog=EPILOG)(handle_errors(evaluate))
