"""Stage: label images, YouTube-8M records or video files with a trained run; optionally draw where
the model looked.

One loop for the three kinds of input (the scorer, core/inference/scorers.py, is the only part
that differs): the inputs say which kind they are, the run must be of the matching modality, each
readable input becomes a row, unreadable ones are skipped and reported (when none at all can be
read it is an error), and the rows are written as JSONL, CSV or a table.

Rows: ``{"image": "<path>", "labels": [{"label": "<name>", "score": <0..1>}, ...]}`` for images,
``{"video": "<id or path>", "labels": [...]}`` for videos and, with ``segments``, ``"segments":
[{"start": s, "labels": [...]}, ...]`` per 5-frame window of a YouTube-8M record (frames s to
s + 4) or ``{"start": s, "end": e, ...}`` per ``segment_seconds`` window of a video file (seconds).
A label is listed when it is among the ``topk`` best *and* its score reaches the threshold (the
run's unless given; ``"tuned"``: the run's per-label thresholds), highest score first.

Settings: :class:`PredictConfig` defaults, then the project's ``[predict]`` table, then the
caller's ``overrides``; the run is ``model``, else the project's latest, else ``./runs/train``'s.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch

from mlgraph_cli.core.device import resolve_device
from mlgraph_cli.core.inference.clips import clip_inputs
from mlgraph_cli.core.inference.config import TUNED, PredictConfig, auto_threads
from mlgraph_cli.core.inference.explain import explain_names
from mlgraph_cli.core.inference.output import to_csv, to_jsonl
from mlgraph_cli.core.inference.scorers import SCORERS, Scorer
from mlgraph_cli.core.inference.scoring import select_labels
from mlgraph_cli.core.io.outputs import check_output, write_output, write_text
from mlgraph_cli.core.media.images import common_root, list_images
from mlgraph_cli.core.media.yt8m.files import RECORDS_FIX, expand_inputs
from mlgraph_cli.core.progress import NULL_PROGRESS, ProgressHook
from mlgraph_cli.core.project import merge_config
from mlgraph_cli.core.training.run_config import RunConfig, tuned_thresholds
from mlgraph_cli.core.training.run_dir import find_run, run_files
from mlgraph_cli.errors import MismatchError, MlgraphError, input_error

# core.annotations' TFRECORD_MARK, spelt here: importing that package pulls scipy, a third of a
# second of start-up that predict on images never needs.
TFRECORD_MARK = ".tfrecord"
FIXES = {"image": ("folders are searched for .jpg, .jpeg, .png, .bmp, .gif, .webp, .tif files; pass image files, a "
                   "folder, a glob or a .txt list"),
         "record": RECORDS_FIX, "clip": "pass MP4/MKV/WebM/AVI/MOV files that play"}


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
    """Score every input of ``inputs`` (image files, folders, globs, .txt lists; YouTube-8M TFRecords,
    quoted globs, folders of shards; video files) with a run of the matching modality. ``config``
    given is used as is; else it is resolved from ``overrides`` and ``project``."""
    cfg = config if config is not None else resolve_config(overrides, project)
    run_dir = find_run(model, project.artifact("runs") if project is not None else None, flag="--model RUN_DIR")
    fmt = output_format(cfg.format, output)
    kind, files = _inputs(inputs)
    _check_run(kind, inputs, run_dir, cfg, explain)
    protected = [*inputs, *files, *run_files(run_dir)]  # a .txt list is an input as much as the images it names
    if output is not None and os.fspath(output) != "-":
        check_output(output, protected)  # before any scoring
    explain_dir = Path(explain) if explain is not None else None
    if explain_dir is not None and explain_dir.exists() and not explain_dir.is_dir():
        raise input_error(explain_dir, f"is a file, and --explain writes one PNG per {'image' if kind == 'image' else 'video'} "
                                       "into a folder",
                          "pass a folder name to --explain")
    with torch_threads(cfg.threads, len(files) if kind != "record" else None) as threads:
        scorer = SCORERS[kind].load(run_dir, cfg, resolve_device(cfg.device))
        rows, explained = _score(scorer, files, cfg, explain_dir, progress)
    skipped = [(s.path, s.reason) for s in scorer.skipped]
    if not rows:
        raise none_readable(skipped or [(os.fspath(files[0]), "the file has no records")], scorer.noun, FIXES[kind])
    out_path = None
    if fmt != "table":
        text = to_jsonl(rows) if fmt == "jsonl" else to_csv(rows, key=scorer.key,
                                                             segment_fields=scorer.segment_fields)
        write_text(output if output is not None else "-", text, protected)
        out_path = Path(output) if output is not None and os.fspath(output) != "-" else None
    return PredictResult(rows=rows, skipped=skipped, run_dir=Path(run_dir), checkpoint=cfg.checkpoint,
                         threshold=shown_threshold(cfg, scorer.run), output=out_path, format=fmt, explained=explained,
                         modality="image" if kind == "image" else "video", threads=threads)


def _score(scorer: Scorer, files: list[Path], cfg: PredictConfig, explain_dir: Path | None,
           progress: ProgressHook) -> tuple[list[dict[str, Any]], list[Path]]:
    """The one loop: each scored input becomes a row (and, with ``explain_dir``, a PNG)."""
    names = scorer.run.label_names
    cuts = label_thresholds(cfg, scorer.run)
    index = {n: i for i, n in enumerate(names)}
    sheets = dict(zip(files, explain_names(files, common_root(files), explain_dir, protected=files))) \
        if explain_dir is not None else {}

    def listed(scores) -> list[dict[str, Any]]:
        return [{"label": n, "score": round(s, 6)} for n, s in select_labels(scores, names, topk=cfg.topk,
                                                                              threshold=cuts)]

    rows, explained = [], []
    for item in scorer(files, explain=explain_dir is not None, segments=cfg.segments, progress=progress):
        row: dict[str, Any] = {scorer.key: item.name, "labels": listed(item.scores)}
        if item.segments is not None:
            row["segments"] = [{**fields, "labels": listed(scores)} for fields, scores in item.segments]
        rows.append(row)
        if item.sheet is not None:
            # The listed labels; the best label alone (drawn as under its threshold) when none passes.
            chosen = [(n, s) for n, s in select_labels(item.scores, names, topk=cfg.topk, threshold=cuts)] or \
                select_labels(item.scores, names, topk=1, threshold=0.0)
            sheet = item.sheet([(index[n], n, s, float(cuts[index[n]])) for n, s in chosen])
            dest = sheets[item.path]
            with write_output(dest, files, flag="--explain") as tmp:
                sheet.save(tmp, format="PNG")
            explained.append(dest)
    return rows, explained


def _inputs(inputs: Sequence[str | os.PathLike]) -> tuple[str, list[Path]]:
    """("clip" | "record" | "image", the input files): what the inputs are, decided once."""
    clips = clip_inputs(inputs)
    if clips is not None:
        return "clip", list(clips)
    if any(is_tfrecord_input(i) for i in inputs):
        return "record", expand_inputs(inputs)
    paths = list_images(list(inputs))
    if not paths:
        raise MlgraphError(f"{', '.join(os.fspath(i) for i in inputs)}: no images found ({FIXES['image']})")
    return "image", paths


def _check_run(kind: str, inputs, run_dir, cfg: PredictConfig, explain) -> None:
    """The run must read what the inputs are; options for one kind only are refused on the others."""
    saved = RunConfig.read(run_dir)
    where = Path(run_dir) / "config.json"
    shown = ", ".join(os.fspath(i) for i in inputs)
    if kind == "image":
        if cfg.segments:
            raise MlgraphError("--segments scores the segments of videos (pass video files or YouTube-8M TFRecords "
                               "and a video run, or drop --segments)")
        if saved.modality == "video":  # trained on clips of video files (a frame backbone) or on YouTube-8M records
            fix = (f"pass video files (.mp4, .mkv, ...) or their folder: `mlgraph predict clips/ --model {run_dir}`"
                   if saved.backbone else
                   f"pass YouTube-8M TFRecords: `mlgraph predict videos.tfrecord --model {run_dir}`")
            raise MismatchError(f"{shown}: images, but {where} is a video run ({fix})")
    elif kind == "record":
        if saved.modality != "video":
            first = next(os.fspath(i) for i in inputs if is_tfrecord_input(i))
            raise MismatchError(f"{first}: YouTube-8M TFRecords, but {where} is an image run "
                                f"(pass images, or a run trained on features from `mlgraph import-yt8m`)")
        for flag, value in (("--explain", explain), ("--image-size", cfg.image_size)):
            if value is not None:
                raise MlgraphError(f"{flag}: for image runs only; {run_dir} is a video run (drop {flag})")


def label_thresholds(cfg: PredictConfig, run) -> list[float]:
    """One threshold per label (label order): the flag's, the run's tuned ones, or the run's own."""
    if cfg.threshold == TUNED:  # their count was checked when config.json was read (RunConfig)
        return tuned_thresholds(run.thresholds, run.run_dir)
    t = run.threshold if cfg.threshold is None else float(cfg.threshold)
    return [t] * len(run.label_names)


def shown_threshold(cfg: PredictConfig, run) -> float | str:
    return TUNED if cfg.threshold == TUNED else (run.threshold if cfg.threshold is None else float(cfg.threshold))


def none_readable(skipped: list[tuple[str, str]], noun: str, fix: str) -> MlgraphError:
    """The one-line error for inputs of which not one could be read: the first reason, and a count."""
    where, reason = skipped[0]
    more = f"; {len(skipped) - 1} more skipped" if len(skipped) > 1 else ""
    return input_error(where, f"no readable {noun} among the inputs ({reason}{more})", fix)


@contextmanager
def torch_threads(threads: int, items: int | None) -> Iterator[int]:
    """Run the block with ``threads`` torch CPU threads (0: :func:`auto_threads` for ``items``,
    None = unknown), and give the process its own count back afterwards."""
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
