"""``mlgraph predict``: label images (or YouTube-8M videos) with a trained run (table, JSONL or CSV;
attention overlays for images, per-segment labels for videos)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from mlgraph_cli.cli._common import progress_bar, err, handle_errors, load_project, out, summary
from mlgraph_cli.cli._options import config_option, given, plain_option
from mlgraph_cli.core.inference.config import CHECKPOINTS, FORMATS, MAX_AUTO_THREADS, PredictConfig  # plain data

EPILOG = "Example: mlgraph predict photos/ --model runs/train/exp --topk 5 --format jsonl -o predictions.jsonl"


def predict(
    inputs: Annotated[list[str], typer.Argument(
        help="Image files, folders (searched recursively for image suffixes), globs, or .txt lists of paths; for "
             "a video run, video files (.mp4, .mkv, ...) or YouTube-8M TFRecords (files, quoted globs, folders of "
             "shards).",
        show_default=False)],
    *,
    model: Annotated[Optional[Path], plain_option(
        "--model", help="Run folder from `mlgraph train`. Default: the most recent run (\\[artifacts] runs, or "
                        "runs/train).")] = None,
    topk: Annotated[Optional[int], plain_option(
        "--topk", help="List at most K labels per image. Default: all that pass --threshold.")] = None,
    threshold: Annotated[Optional[str], plain_option(
        "--threshold", help="List labels scoring at least this (as well as being in the top K): a probability "
                            "(0 lists the top K whatever their score), or 'tuned' for the run's per-label "
                            "thresholds chosen on validation. Default: the run's threshold.")] = None,
    format: Annotated[Optional[Literal[FORMATS]], plain_option(
        "--format", help="table (terminal), jsonl or csv. Default: table, or from -o's suffix "
                         "(.csv -> csv, else jsonl).")] = None,
    output: Annotated[Optional[str], plain_option(
        "-o", "--output", help="Write jsonl/csv here ('-' = stdout); never one of the inputs.")] = None,
    explain: Annotated[Optional[Path], plain_option(
        "--explain", help="Write one PNG per image into this folder (photo.jpg -> photo.jpg.png): each listed "
                          "label's attention map (cma, ms-cma, query) or class activation map (gap, gmp, mlgcn, "
                          "probe) over the image.")] = None,
    segments: Annotated[Optional[bool], config_option(PredictConfig, "segments",
        "--segments", help="Videos: also list the top labels of every 5-frame segment (frames s to s+4); video "
                           "files: of every --segment-seconds window, with start and end times.")] = None,
    segment_seconds: Annotated[Optional[float], config_option(PredictConfig, "segment_seconds",
        "--segment-seconds", min=0.001, help="Video files: window length in seconds for --segments.")] = None,
    checkpoint: Annotated[Optional[Literal[CHECKPOINTS]], config_option(PredictConfig, "checkpoint",
        "--checkpoint", help="Weights of the best validation epoch, or of the last.")] = None,
    image_size: Annotated[Optional[int], plain_option(
        "--image-size", min=1, help="Input side in px instead of the run's (the heads take any map size).")] = None,
    device: Annotated[Optional[str], config_option(PredictConfig, "device", help="auto, cpu, cuda, cuda:N.")] = None,
    batch_size: Annotated[Optional[int], config_option(PredictConfig, "batch_size", min=1,
                                                       help="Images per batch.")] = None,
    threads: Annotated[Optional[int], config_option(PredictConfig, "threads",
        "--threads", min=0, help="Torch CPU threads; 0 = automatic (1 for up to 4 images, else the cores not busy with "
                                 f"other work, at most {MAX_AUTO_THREADS}).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Label images with a trained run: top labels and scores per image (per video, and per segment
    with --segments, for a run trained on `mlgraph import-yt8m` features).

    Defaults below can be changed in a \\[predict] table of mlgraph.toml; flags win."""
    from mlgraph_cli.stages.predict import predict as run

    overrides = given(topk=topk, threshold=threshold, format=format, checkpoint=checkpoint, device=device,
                      batch_size=batch_size, image_size=image_size, segments=segments, segment_seconds=segment_seconds,
                      threads=threads)
    progress = progress_bar(quiet=quiet)
    try:
        result = run(inputs, model=model, overrides=overrides, project=load_project(), output=output,
                     explain=explain, progress=progress)
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
