"""Stage: label images with a trained run; optionally draw where the model looked.

Output rows are ``{"image": "<path>", "labels": [{"label": "<name>", "score": <0..1>}, ...]}``,
highest score first; a label is listed when it is among the ``topk`` best *and* its score
reaches ``threshold`` (the run's threshold unless given). Unreadable files are skipped and
reported, never fatal.

A video run (trained on ``mlgraph import-yt8m`` features) labels YouTube-8M TFRecords instead:
``{"video": "<id>", "labels": [...]}`` per video and, with ``segments``, ``"segments": [{"start": s,
"labels": [...]}, ...]`` for each 5-frame window (frames s to s + 4) of the clip. Corrupt records
are skipped and reported as unreadable images are.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from mlgraph_cli.core.artifacts import atomic_output, atomic_write_text, maker
from mlgraph_cli.core.progress import NULL_PROGRESS, ProgressHook
from mlgraph_cli.errors import MismatchError, MlgraphError, input_error

FORMATS = ("table", "jsonl", "csv")


@dataclass
class PredictResult:
    rows: list[dict[str, Any]]
    skipped: list[tuple[str, str]]  # (path, reason)
    run_dir: Path
    checkpoint: str
    threshold: float
    output: Path | None  # where jsonl/csv went (None: stdout or table)
    format: str
    explained: list[Path] = field(default_factory=list)
    modality: str = "image"  # "video": rows are videos (and their segments)


def find_run(model: str | os.PathLike | None, runs_root: str | os.PathLike | None) -> Path:
    """``--model`` if given, else the most recent run under ``runs_root`` (the project's runs
    folder) or ``./runs/train``."""
    from mlgraph_cli.core.checkpoint import latest_run

    if model is not None:
        return Path(model)
    roots = [Path(runs_root)] if runs_root is not None else []
    roots.append(Path("runs/train"))
    for root in roots:
        found = latest_run(root)
        if found is not None:
            return found
    raise MlgraphError(f"no trained run found under {roots[0]} "
                       f"(train one with `{maker('run')}`, or pass --model RUN_DIR)")


def output_format(format: str | None, output: str | os.PathLike | None) -> str:
    """The format to write: as given, else from ``-o``'s suffix (``.csv`` -> csv, else jsonl), else a table."""
    if format is not None:
        if format not in FORMATS:
            raise MlgraphError(f"--format {format}: unknown (choose one of: {', '.join(FORMATS)})")
        if format == "table" and output is not None and os.fspath(output) != "-":
            raise MlgraphError("--format table prints to the terminal (use --format jsonl or csv with -o FILE)")
        return format
    if output is None:
        return "table"
    return "csv" if os.fspath(output).lower().endswith(".csv") else "jsonl"


def predict(inputs: Sequence[str | os.PathLike], run_dir: str | os.PathLike, *, topk: int | None = None,
            threshold: float | None = None, format: str | None = None, output: str | os.PathLike | None = None,
            explain: str | os.PathLike | None = None, checkpoint: str = "best", device: str = "auto",
            batch_size: int = 16, image_size: int | None = None, segments: bool = False,
            segment_seconds: float = 5.0, progress: ProgressHook = NULL_PROGRESS) -> PredictResult:
    """Score every image of ``inputs`` (files, folders, globs, .txt lists) with ``run_dir``; for a
    video run, every video of ``inputs`` (TFRecord files, quoted globs, folders of shards)."""
    from mlgraph_cli.core.run_config import RunConfig
    from mlgraph_cli.core.device import resolve_device
    from mlgraph_cli.core.images import common_root, list_images
    from mlgraph_cli.core.predict import Predictor, check_prediction_options, explain_image, explain_name, load_run
    from mlgraph_cli.core.predict import select_labels

    check_prediction_options(topk, threshold)
    fmt = output_format(format, output)
    from mlgraph_cli.core.video.clip_predict import clip_inputs

    clips = clip_inputs(inputs)
    if clips is not None:  # video files (issue 12): core/video/clip_explain.py
        return _predict_clips(clips, run_dir, topk=topk, threshold=threshold, fmt=fmt, output=output, explain=explain,
                              checkpoint=checkpoint, device=device, batch_size=batch_size,
                              segment_seconds=segment_seconds if segments else None, progress=progress)
    records = [os.fspath(i) for i in inputs if is_tfrecord_input(i)]
    if records:
        return predict_videos(inputs, run_dir, topk=topk, threshold=threshold, fmt=fmt, output=output,
                              explain=explain, checkpoint=checkpoint, device=device, batch_size=batch_size,
                              image_size=image_size, segments=segments, progress=progress)
    if segments:
        raise MlgraphError("--segments scores the 5-frame segments of videos (pass YouTube-8M TFRecords and a video "
                           "run, or drop --segments)")
    paths = list_images(list(inputs))
    if not paths:
        shown = ", ".join(os.fspath(i) for i in inputs)
        raise MlgraphError(f"{shown}: no images found (folders are searched for .jpg, .jpeg, .png, .bmp, .gif, "
                           ".webp, .tif files; pass image files, a folder, a glob or a .txt list)")
    dev = resolve_device(device)
    if RunConfig.read(run_dir).modality == "video":
        raise MismatchError(f"{', '.join(os.fspath(i) for i in inputs)}: images, but {Path(run_dir) / 'config.json'} "
                            f"is a video run (pass YouTube-8M TFRecords: `mlgraph predict videos.tfrecord --model "
                            f"{run_dir}`)")
    run = load_run(run_dir, checkpoint, device=dev, with_backbone=True, image_size=image_size)
    t = threshold if threshold is not None else run.threshold
    predictor = Predictor(run, dev, batch_size=batch_size)
    explain_dir = Path(explain) if explain is not None else None
    root = common_root(paths)
    rows, explained = [], []
    for item in predictor(paths, explain=explain_dir is not None, progress=progress):
        chosen = select_labels(item.scores, run.label_names, topk=topk, threshold=t)
        rows.append({"image": os.fspath(item.path),
                     "labels": [{"label": name, "score": round(score, 6)} for name, score in chosen]})
        if explain_dir is not None:
            # Panels for the listed labels; the best label alone when none passes.
            shown = chosen or select_labels(item.scores, run.label_names, topk=1, threshold=0.0)
            index = {n: i for i, n in enumerate(run.label_names)}
            sheet = explain_image(item.image, item.maps, [(index[n], n, s) for n, s in shown])
            dest = explain_dir / explain_name(item.path, root)
            with atomic_output(dest) as tmp:
                sheet.save(tmp, format="PNG")
            explained.append(dest)
    skipped = [(s.path, s.reason) for s in predictor.skipped]
    out_path = None
    if fmt != "table":
        text = to_jsonl(rows) if fmt == "jsonl" else to_csv(rows)
        atomic_write_text(output if output is not None else "-", text)
        out_path = Path(output) if output is not None and os.fspath(output) != "-" else None
    return PredictResult(rows=rows, skipped=skipped, run_dir=Path(run_dir), checkpoint=checkpoint, threshold=t,
                         output=out_path, format=fmt, explained=explained)


def to_jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def to_csv(rows: list[dict[str, Any]]) -> str:
    """Long format ``image,rank,label,score``: one line per listed label, an image with none gets
    one line with empty label and score (so every image read is accounted for)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["image", "rank", "label", "score"])
    for row in rows:
        if not row["labels"]:
            writer.writerow([row["image"], "", "", ""])
        for rank, item in enumerate(row["labels"], start=1):
            writer.writerow([row["image"], rank, item["label"], f"{item['score']:.6f}"])
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# Videos

def is_tfrecord_input(item: str | os.PathLike) -> bool:
    """A TFRecord file or quoted glob (``.tfrecord`` in the name), or a folder of such shards."""
    from mlgraph_cli.core.annotations import TFRECORD_MARK

    p = Path(item)
    if p.is_dir():
        return any(TFRECORD_MARK in q.name for q in p.iterdir() if q.is_file())
    return TFRECORD_MARK in p.name


def predict_videos(inputs: Sequence[str | os.PathLike], run_dir: str | os.PathLike, *, topk: int | None,
                   threshold: float | None, fmt: str, output: str | os.PathLike | None,
                   explain: str | os.PathLike | None = None, checkpoint: str = "best", device: str = "auto",
                   batch_size: int = 16, image_size: int | None = None, segments: bool = False,
                   progress: ProgressHook = NULL_PROGRESS) -> PredictResult:
    """Label the videos of YouTube-8M TFRecords with a video run (see the module docstring)."""
    from mlgraph_cli.core.run_config import RunConfig
    from mlgraph_cli.core.device import resolve_device
    from mlgraph_cli.core.predict import VideoPredictor, load_run, select_labels
    from mlgraph_cli.core.video.yt8m import RECORDS_FIX, expand_inputs

    config = RunConfig.read(run_dir).to_json()
    if config.get("modality") != "video":
        first = next(os.fspath(i) for i in inputs if is_tfrecord_input(i))
        raise MismatchError(f"{first}: YouTube-8M TFRecords, but {Path(run_dir) / 'config.json'} is an image run "
                            f"(pass images, or a run trained on features from `mlgraph import-yt8m`)")
    for flag, value in (("--explain", explain), ("--image-size", image_size)):
        if value is not None:
            raise MlgraphError(f"{flag}: for image runs only; {run_dir} is a video run (drop {flag})")
    files = expand_inputs(inputs)
    dev = resolve_device(device)
    run = load_run(run_dir, checkpoint, device=dev)
    t = threshold if threshold is not None else run.threshold
    predictor = VideoPredictor(run, dev, batch_size=batch_size, max_frames=(config.get("data") or {}).get("frames"))

    def listed(scores) -> list[dict[str, Any]]:
        return [{"label": name, "score": round(score, 6)}
                for name, score in select_labels(scores, run.label_names, topk=topk, threshold=t)]

    rows = []
    for item in predictor(files, segments=segments, progress=progress):
        row: dict[str, Any] = {"video": item.id, "labels": listed(item.scores)}
        if segments:
            row["segments"] = [{"start": int(s), "labels": listed(sc)}
                               for s, sc in zip(item.segment_starts, item.segment_scores)]
        rows.append(row)
    skipped = [(s.path, s.reason) for s in predictor.skipped]
    if not rows:
        where, reason = skipped[0] if skipped else (os.fspath(files[0]), "the file has no records")
        raise input_error(where, f"no readable YouTube-8M record ({reason})", RECORDS_FIX)
    out_path = None
    if fmt != "table":
        text = to_jsonl(rows) if fmt == "jsonl" else to_video_csv(rows)
        atomic_write_text(output if output is not None else "-", text)
        out_path = Path(output) if output is not None and os.fspath(output) != "-" else None
    return PredictResult(rows=rows, skipped=skipped, run_dir=Path(run_dir), checkpoint=checkpoint, threshold=t,
                         output=out_path, format=fmt, modality="video")


def to_video_csv(rows: list[dict[str, Any]]) -> str:
    """Long format ``video,start,rank,label,score``: the video's labels with an empty ``start``, then
    each segment's with its first frame; a video or segment with no listed label gets one line with
    empty label and score."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["video", "start", "rank", "label", "score"])
    for row in rows:
        parts = [("", row["labels"])] + [(seg["start"], seg["labels"]) for seg in row.get("segments", [])]
        for start, labels in parts:
            if not labels:
                writer.writerow([row["video"], start, "", "", ""])
            for rank, item in enumerate(labels, start=1):
                writer.writerow([row["video"], start, rank, item["label"], f"{item['score']:.6f}"])
    return buf.getvalue()


def _predict_clips(clips, run_dir, *, topk, threshold, fmt, output, explain, checkpoint, device, batch_size,
                   segment_seconds, progress) -> PredictResult:
    """Video files (MP4, MKV, ...) with a run trained on `mlgraph extract CLIPS/` features."""
    from mlgraph_cli.core.video.clip_explain import predict_clip_files
    from mlgraph_cli.core.video.clip_predict import to_clip_csv

    rows, skipped, explained, t = predict_clip_files(
        clips, run_dir, topk=topk, threshold=threshold, checkpoint=checkpoint, device=device, batch_size=batch_size,
        segment_seconds=segment_seconds, explain=explain, progress=progress)
    if not rows:
        where, reason = skipped[0]
        raise input_error(where, f"no readable video file ({reason})", "pass MP4/MKV/WebM/AVI/MOV files that play")
    out_path = None
    if fmt != "table":
        atomic_write_text(output if output is not None else "-", to_jsonl(rows) if fmt == "jsonl" else to_clip_csv(rows))
        out_path = Path(output) if output is not None and os.fspath(output) != "-" else None
    return PredictResult(rows=rows, skipped=skipped, run_dir=Path(run_dir), checkpoint=checkpoint, threshold=t,
                         output=out_path, format=fmt, explained=explained, modality="video")
