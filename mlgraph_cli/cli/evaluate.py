"""``mlgraph evaluate``: metrics of a trained run on labelled features (or images)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from mlgraph_cli.cli._common import (
    Checkpoint, CheckpointOption, RichProgress, err, handle_errors, is_stdout, load_project, out, summary,
)

EPILOG = "Example: mlgraph evaluate runs/train/exp --features test-features.h5 -o metrics.json --per-label"
ROWS = ("mAP", "CP", "CR", "CF1", "OP", "OR", "OF1")


def evaluate(
    run_dir: Annotated[Optional[Path], typer.Argument(
        help="Run folder from `mlgraph train`. Default: the most recent run (\\[artifacts] runs, or runs/train).",
        show_default=False)] = None,
    *,
    features: Annotated[Optional[Path], typer.Option(
        "--features", help="Labelled features from the run's backbone. Default: \\[artifacts] test_features if it "
                           "exists, else val_features.", show_default=False)] = None,
    images: Annotated[Optional[Path], typer.Option(
        "--images", help="Evaluate on images instead (needed for runs that fine-tuned their backbone).",
        show_default=False)] = None,
    annotations: Annotated[Optional[Path], typer.Option(
        "--annotations", help="Annotations of --images.", show_default=False)] = None,
    output: Annotated[Optional[str], typer.Option(
        "-o", "--output", help="Metrics JSON (mlgraph/metrics@1); '-' writes it to stdout. Default: "
                               "RUN/eval-<data>.json.", show_default=False)] = None,
    threshold: Annotated[Optional[float], typer.Option(
        "--threshold", help="Probability at which a label counts as predicted. Default: the run's (0.5).",
        show_default=False)] = None,
    checkpoint: CheckpointOption = Checkpoint.best,
    per_label: Annotated[bool, typer.Option("--per-label", help="Also print the AP of every label.")] = False,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:N.")] = "auto",
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Images per batch.")] = 64,
    top_k_segments: Annotated[Optional[int], typer.Option(
        "--top-k-segments", min=1, help="Video runs on YouTube-8M Segments ratings: K of the segment MAP@K "
                                        "(rated segments only). Default: 100000, the Kaggle metric's.",
        show_default=False)] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Score a run on labelled data: mAP, CP, CR, CF1, OP, OR, OF1 and their top-3 variants (0-100).
    A video run adds GAP@20, and segment MAP@K when the features hold YouTube-8M Segments ratings."""
    from mlgraph_cli.stages.evaluate import evaluate as run
    from mlgraph_cli.stages.predict import find_run

    project = load_project()
    runs_root = project.artifact("runs") if project is not None else None
    run_path = find_run(run_dir, runs_root)
    if features is None and images is None and annotations is None and project is not None:
        for key in ("test_features", "val_features"):
            if project.artifact(key).is_file():
                features = project.artifact(key)
                break
    progress = RichProgress(quiet=quiet)
    try:
        result = run(run_path, features=features, images=images, annotations=annotations, output=output,
                     threshold=threshold, checkpoint=checkpoint.value, device=device, batch_size=batch_size,
                     top_k_segments=top_k_segments, progress=progress)
    finally:
        progress.stop()
    console = err if is_stdout(output) else out
    console.print(metrics_table(result.metrics))
    if per_label:
        console.print(per_label_table(result.metrics))
    m = result.metrics
    left = m["labels_without_positives"]["count"]
    note = f"; {left} label(s) without positives left out of mAP" if left else ""
    skipped = f"; {len(result.skipped)} unreadable image(s) skipped" if result.skipped else ""
    where = "stdout" if result.output is None else str(result.output)
    segments = f", {m['segments']['rated']:,} rated segments" if "segments" in m else ""
    summary(f"{result.run_dir} ({result.checkpoint}, epoch {m['epoch']}) on {result.data.name}: "
            f"{m['num_images']:,} {_items(m)}{segments}, threshold {m['threshold']}{note}{skipped} -> {where}")


def _items(m: dict[str, Any]) -> str:
    return "videos" if m.get("modality") == "video" else "images"


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.2f}"


def metrics_table(m: dict[str, Any]):
    from rich.table import Table

    table = Table(title=f"{m.get('head', '')} on {m['num_images']:,} {_items(m)}", title_justify="left")
    table.add_column("metric")
    table.add_column("all labels", justify="right")
    table.add_column(f"top-{m.get('topk', 3)}", justify="right")
    top = m.get(f"top{m.get('topk', 3)}") or {}
    for key in ROWS:
        table.add_row(key, _fmt(m.get(key)), "" if key == "mAP" else _fmt(top.get(key)))
    # video runs: YouTube-8M's GAP@20 and, on Segments ratings, MAP@K over the rated segments
    for key in [k for k in m if k.startswith(("GAP@", "segment_MAP@"))]:
        table.add_row(key, _fmt(m[key]), "")
    return table


def per_label_table(m: dict[str, Any]):
    from rich.table import Table

    table = Table(title="AP per label", title_justify="left")
    table.add_column("label")
    table.add_column("AP", justify="right")
    for name, ap in sorted(m["per_label_ap"].items(), key=lambda kv: -(kv[1] if kv[1] is not None else -1)):
        table.add_row(name, _fmt(ap))
    return table


def register(app: typer.Typer) -> None:
    app.command("evaluate", epilog=EPILOG)(handle_errors(evaluate))
