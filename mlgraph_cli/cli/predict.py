"""``mlgraph predict``: label images (or YouTube-8M videos) with a trained run (table, JSONL or CSV;
attention overlays for images, per-segment labels for videos)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from mlgraph_cli.cli._common import (
    Checkpoint, CheckpointOption, RichProgress, err, handle_errors, load_project, out, summary,
)

EPILOG = "Example: mlgraph predict photos/ --model runs/train/exp --topk 5 --format jsonl -o predictions.jsonl"


class Format(str, Enum):
    table = "table"
    jsonl = "jsonl"
    csv = "csv"


def predict(
    inputs: Annotated[list[str], typer.Argument(
        help="Image files, folders (searched recursively for image suffixes), globs, or .txt lists of paths; for "
             "a video run, video files (.mp4, .mkv, ...) or YouTube-8M TFRecords (files, quoted globs, folders of "
             "shards).",
        show_default=False)],
    *,
    model: Annotated[Optional[Path], typer.Option(
        "--model", help="Run folder from `mlgraph train`. Default: the most recent run (\\[artifacts] runs, or "
                        "runs/train).", show_default=False)] = None,
    topk: Annotated[Optional[int], typer.Option(
        "--topk", help="List at most K labels per image. Default: all that pass --threshold.",
        show_default=False)] = None,
    threshold: Annotated[Optional[float], typer.Option(
        "--threshold", help="List labels scoring at least this (as well as being in the top K). Default: the "
                            "run's threshold (0.5); 0 lists the top K whatever their score.",
        show_default=False)] = None,
    format: Annotated[Optional[Format], typer.Option(
        "--format", help="table (terminal), jsonl or csv. Default: table, or from -o's suffix "
                         "(.csv -> csv, else jsonl).", show_default=False)] = None,
    output: Annotated[Optional[str], typer.Option(
        "-o", "--output", help="Write jsonl/csv here ('-' = stdout).", show_default=False)] = None,
    explain: Annotated[Optional[Path], typer.Option(
        "--explain", help="Write one PNG per image into this folder: each listed label's attention map (cma, "
                          "ms-cma) or class activation map (gap, gmp, mlgcn) over the image.",
        show_default=False)] = None,
    segments: Annotated[bool, typer.Option(
        "--segments", help="Videos: also list the top labels of every 5-frame segment (frames s to s+4); video "
                           "files: of every --segment-seconds window, with start and end times.")] = False,
    segment_seconds: Annotated[float, typer.Option(
        "--segment-seconds", min=0.001, help="Video files: segment length in seconds for --segments.")] = 5.0,
    checkpoint: CheckpointOption = Checkpoint.best,
    image_size: Annotated[Optional[int], typer.Option(
        "--image-size", help="Input side in px instead of the run's (the heads take any map size).",
        show_default=False)] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:N.")] = "auto",
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Images per batch.")] = 16,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Label images with a trained run: top labels and scores per image (per video, and per segment
    with --segments, for a run trained on `mlgraph import-yt8m` features)."""
    from mlgraph_cli.stages.predict import find_run, predict as run

    project = load_project()
    run_dir = find_run(model, project.artifact("runs") if project is not None else None)
    progress = RichProgress(quiet=quiet)
    try:
        result = run(inputs, run_dir, topk=topk, threshold=threshold, format=format.value if format else None,
                     output=output, explain=explain, checkpoint=checkpoint.value, device=device,
                     batch_size=batch_size, image_size=image_size, segments=segments,
                     segment_seconds=segment_seconds, progress=progress)
    finally:
        progress.stop()
    video = result.modality == "video"
    if result.format == "table":
        out.print(video_table(result.rows) if video else predictions_table(result.rows))
    if result.skipped:
        what = "corrupt record(s)" if video else "unreadable file(s)"
        err.print(f"Skipped {len(result.skipped)} {what}:", style="yellow", markup=False)
        for path, reason in result.skipped:
            err.print(f"  {path}: {reason}", style="yellow", markup=False, highlight=False)
    where = "" if result.output is None else f" -> {result.output}"
    pngs = f"; {len(result.explained)} explanation PNG(s) in {explain}" if explain is not None else ""
    item = "video" if video else "image"
    summary(f"Labelled {len(result.rows):,} {item}(s) with {result.run_dir} ({result.checkpoint}, threshold "
            f"{result.threshold}){where}{pngs}")


def predictions_table(rows):
    from rich.table import Table

    table = Table()
    table.add_column("image", overflow="fold")
    table.add_column("labels (score)")
    for row in rows:
        labels = ", ".join(f"{item['label']} ({item['score']:.2f})" for item in row["labels"]) or "-"
        table.add_row(row["image"], labels)
    return table


def video_table(rows):
    """One line per video, then one per segment (``id @ start``) when segments were asked for."""
    from rich.table import Table

    def shown(labels):
        return ", ".join(f"{item['label']} ({item['score']:.2f})" for item in labels) or "-"

    table = Table()
    table.add_column("video", overflow="fold")
    table.add_column("labels (score)")
    for row in rows:
        table.add_row(row["video"], shown(row["labels"]))
        for seg in row.get("segments", []):
            span = f"{seg['start']}-{seg['end']}s" if "end" in seg else seg["start"]  # video files: seconds
            table.add_row(f"  {row['video']} @ {span}", shown(seg["labels"]))
    return table


def register(app: typer.Typer) -> None:
    app.command("predict", epilog=EPILOG)(handle_errors(predict))
