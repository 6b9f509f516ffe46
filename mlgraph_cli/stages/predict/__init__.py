"""Stage: label images with a trained run; optionally draw where the model looked.

Output rows are ``{"image": "<path>", "labels": [{"label": "<name>", "score": <0..1>}, ...]}``,
highest score first; a label is listed when it is among the ``topk`` best *and* its score
reaches the threshold (the run's unless given; ``"tuned"``: the run's per-label thresholds).
Unreadable files are skipped and reported; when no input at all can be read it is an error.

A video run (trained on ``mlgraph import-yt8m`` features) labels YouTube-8M TFRecords instead:
``{"video": "<id>", "labels": [...]}`` per video and, with ``segments``, ``"segments": [{"start": s,
"labels": [...]}, ...]`` for each 5-frame window (frames s to s + 4) of the clip. Corrupt records
are skipped and reported as unreadable images are.

Settings: :class:`PredictConfig` defaults, then the project's ``[predict]`` table, then the
caller's ``overrides``; the run is ``model``, else the project's latest, else ``./runs/train``'s.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from mlgraph_cli.core.io.outputs import check_output, write_output, write_text
from mlgraph_cli.core.inference.config import TUNED, PredictConfig, auto_threads
from mlgraph_cli.core.progress import NULL_PROGRESS, ProgressHook
from mlgraph_cli.errors import MismatchError, MlgraphError, input_error

# core.annotations' TFRECORD_MARK, spelt here: importing that package pulls scipy, a third of a
# second of start-up that predict on images never needs.
TFRECORD_MARK = ".tfrecord"
IMAGE_FIX = ("folders are searched for .jpg, .jpeg, .png, .bmp, .gif, .webp, .tif files; pass image files, a folder, "
             "a glob or a .txt list")


@dataclass
class PredictResult:
    rows: list[dict[str, Any]]
    skipped: list[tuple[str, str]]  # (path, reason)
    run_dir: Path
    checkpoint: str
    threshold: float | str  # a probability, or "tuned" (per label)
    output: Path | None  # where jsonl/csv went (None: stdout or table)
    format: str
    explained: list[Path] = field(default_factory=list)
    modality: str = "image"  # "video": rows are videos (and their segments)
    threads: int = 0  # torch CPU threads used


def resolve_config(overrides: dict[str, Any] | None, project=None) -> PredictConfig:
    """PredictConfig defaults, then ``[predict]`` of ``project``, then ``overrides`` (None = not given)."""
    from mlgraph_cli.core.project import merge_config

    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    try:
        PredictConfig(**given)  # a bad flag is named as the flag, not as a [predict] setting
    except ValueError as exc:
        raise MlgraphError(str(exc)) from None
    return merge_config(PredictConfig, project, "predict", given)


def output_format(format: str | None, output: str | os.PathLike | None) -> str:
    """The format to write: as given, else from ``-o``'s suffix (``.csv`` -> csv, else jsonl), else a table."""
    if format is not None:
        if format == "table" and output is not None and os.fspath(output) != "-":
            raise MlgraphError("--format table prints to the terminal (use --format jsonl or csv with -o FILE)")
        return format
    if output is None:
        return "table"
    return "csv" if os.fspath(output).lower().endswith(".csv") else "jsonl"


def predict(inputs: Sequence[str | os.PathLike], *, model: str | os.PathLike | None = None,
            config: PredictConfig | None = None, overrides: dict[str, Any] | None = None, project=None,
            output: str | os.PathLike | None = None, explain: str | os.PathLike | None = None,
            progress: ProgressHook = NULL_PROGRESS) -> PredictResult:
    """Score every image of ``inputs`` (files, folders, globs, .txt lists) with a run; for a video
    run, every video of ``inputs`` (TFRecord files, quoted globs, folders of shards). ``config``
    given is used as is; else it is resolved from ``overrides`` and ``project``."""
    from mlgraph_cli.core.media.images import list_images
    from mlgraph_cli.core.training.run_config import RunConfig

    cfg = config if config is not None else resolve_config(overrides, project)
    from mlgraph_cli.core.training.run_dir import find_run

    run_dir = find_run(model, project.artifact("runs") if project is not None else None, flag="--model RUN_DIR")
    fmt = output_format(cfg.format, output)
    from mlgraph_cli.core.inference.clips import clip_inputs

    clips = clip_inputs(inputs)
    if clips is not None:  # video files (MP4, MKV, ...): core/inference/clips.py
        from mlgraph_cli.stages.predict.videos import predict_clips

        return predict_clips(clips, run_dir, cfg, fmt=fmt, output=output, explain=explain, progress=progress)
    if any(is_tfrecord_input(i) for i in inputs):
        from mlgraph_cli.stages.predict.videos import predict_videos

        return predict_videos(inputs, run_dir, cfg, fmt=fmt, output=output, explain=explain, progress=progress)
    if cfg.segments:
        raise MlgraphError("--segments scores the 5-frame segments of videos (pass YouTube-8M TFRecords and a video "
                           "run, or drop --segments)")
    shown = ", ".join(os.fspath(i) for i in inputs)
    paths = list_images(list(inputs))
    if not paths:
        raise MlgraphError(f"{shown}: no images found ({IMAGE_FIX})")
    protected = [*inputs, *paths]  # a .txt list is an input as much as the images it names
    check_rows_output(output, protected, run_dir)
    explain_dir = Path(explain) if explain is not None else None
    if explain_dir is not None and explain_dir.exists() and not explain_dir.is_dir():
        raise input_error(explain_dir, "is a file, and --explain writes one PNG per image into a folder",
                          "pass a folder name to --explain")
    saved = RunConfig.read(run_dir)
    if saved.modality == "video":  # trained on clips of video files (a frame backbone) or on YouTube-8M records
        fix = (f"pass video files (.mp4, .mkv, ...) or their folder: `mlgraph predict clips/ --model {run_dir}`"
               if saved.backbone else f"pass YouTube-8M TFRecords: `mlgraph predict videos.tfrecord --model {run_dir}`")
        raise MismatchError(f"{shown}: images, but {Path(run_dir) / 'config.json'} is a video run ({fix})")
    with torch_threads(cfg.threads, len(paths)) as threads:
        rows, skipped, explained, run = _score_images(paths, run_dir, cfg, explain_dir, progress)
    if not rows:
        raise none_readable(skipped, "image", IMAGE_FIX)
    out_path = write_rows(rows, fmt, output, video=False, inputs=[*protected, *run_inputs(run_dir)])
    return PredictResult(rows=rows, skipped=skipped, run_dir=Path(run_dir), checkpoint=cfg.checkpoint,
                         threshold=shown_threshold(cfg, run), output=out_path, format=fmt, explained=explained,
                         threads=threads)


def _score_images(paths: list[Path], run_dir: Path, cfg: PredictConfig, explain_dir: Path | None,
                  progress: ProgressHook):
    from mlgraph_cli.core.device import resolve_device
    from mlgraph_cli.core.media.images import common_root
    from mlgraph_cli.core.inference.scoring import Predictor, select_labels
    from mlgraph_cli.core.inference.explain import explain_image, explain_names
    from mlgraph_cli.core.inference.run import load_run

    dev = resolve_device(cfg.device)
    run = load_run(run_dir, cfg.checkpoint, device=dev, with_backbone=True, image_size=cfg.image_size)
    cuts = label_thresholds(cfg, run)
    predictor = Predictor(run, dev, batch_size=cfg.batch_size)
    dests = iter(explain_names(paths, common_root(paths), explain_dir, protected=paths) if explain_dir else ())
    by_path = dict(zip(paths, dests)) if explain_dir is not None else {}
    rows, explained = [], []
    for item in predictor(paths, explain=explain_dir is not None, progress=progress):
        chosen = select_labels(item.scores, run.label_names, topk=cfg.topk, threshold=cuts)
        rows.append({"image": os.fspath(item.path),
                     "labels": [{"label": name, "score": round(score, 6)} for name, score in chosen]})
        if explain_dir is not None:
            # Panels for the listed labels; the best label alone (marked as under its threshold) when none passes.
            shown = chosen or select_labels(item.scores, run.label_names, topk=1, threshold=0.0)
            index = {n: i for i, n in enumerate(run.label_names)}
            sheet = explain_image(item.image, item.maps, [(index[n], n, s, float(cuts[index[n]])) for n, s in shown])
            dest = by_path[item.path]
            with write_output(dest, paths, flag="--explain") as tmp:
                sheet.save(tmp, format="PNG")
            explained.append(dest)
    return rows, [(s.path, s.reason) for s in predictor.skipped], explained, run


def label_thresholds(cfg: PredictConfig, run) -> list[float]:
    """One threshold per label (label order): the flag's, the run's tuned ones, or the run's own."""
    if cfg.threshold == TUNED:  # their count was checked when config.json was read (RunConfig)
        from mlgraph_cli.core.training.run_config import tuned_thresholds

        return tuned_thresholds(run.thresholds, run.run_dir)
    t = run.threshold if cfg.threshold is None else float(cfg.threshold)
    return [t] * len(run.label_names)


def shown_threshold(cfg: PredictConfig, run) -> float | str:
    return TUNED if cfg.threshold == TUNED else (run.threshold if cfg.threshold is None else float(cfg.threshold))


def none_readable(skipped: list[tuple[str, str]], item: str, fix: str) -> MlgraphError:
    """The one-line error for inputs of which not one could be read: the first reason, and a count."""
    where, reason = skipped[0]
    more = f"; {len(skipped) - 1} more skipped" if len(skipped) > 1 else ""
    return input_error(where, f"no readable {item} among the inputs ({reason}{more})", fix)


def run_inputs(run_dir: str | os.PathLike) -> list[Path]:
    """The files of a run that predict reads (config.json, weights): never written over."""
    from mlgraph_cli.core.training.run_dir import run_files

    return run_files(run_dir)


def check_rows_output(output: str | os.PathLike | None, inputs: Sequence[str | os.PathLike], run_dir) -> None:
    """Refuse ``-o`` before any scoring when it names an input (the images, a list file, the records,
    the run's config.json or weights) or something it would replace."""
    if output is not None and os.fspath(output) != "-":
        check_output(output, [*inputs, *run_inputs(run_dir)])


def write_rows(rows: list[dict[str, Any]], fmt: str, output: str | os.PathLike | None, *, video: bool,
               clips: bool = False, inputs: Sequence[str | os.PathLike] = ()) -> Path | None:
    """Write jsonl / csv to ``output`` (or stdout), never over one of ``inputs``; return the file
    written, if any. ``clips``: rows of video files, whose segments have start and end times in seconds."""
    from mlgraph_cli.core.inference.output import to_csv, to_jsonl, to_video_csv
    from mlgraph_cli.core.inference.clips import to_clip_csv

    if fmt == "table":
        return None
    csv_rows = to_clip_csv if clips else (to_video_csv if video else to_csv)
    text = to_jsonl(rows) if fmt == "jsonl" else csv_rows(rows)
    write_text(output if output is not None else "-", text, inputs)
    return Path(output) if output is not None and os.fspath(output) != "-" else None


@contextmanager
def torch_threads(threads: int, items: int | None) -> Iterator[int]:
    """Run the block with ``threads`` torch CPU threads (0: :func:`auto_threads` for ``items``,
    None = unknown), and give the process its own count back afterwards."""
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    n = threads or auto_threads(items if items is not None else 1 << 30, cores, load)
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(before)


def is_tfrecord_input(item: str | os.PathLike) -> bool:
    """A TFRecord file or quoted glob (``.tfrecord`` in the name), or a folder of such shards."""
    p = Path(item)
    if p.is_dir():
        return any(TFRECORD_MARK in q.name for q in p.iterdir() if q.is_file())
    return TFRECORD_MARK in p.name
