"""Stage: label images with a trained run; optionally draw where the model looked.

Output rows are ``{"image": "<path>", "labels": [{"label": "<name>", "score": <0..1>}, ...]}``,
highest score first; a label is listed when it is among the ``topk`` best *and* its score
reaches ``threshold`` (the run's threshold unless given). Unreadable files are skipped and
reported, never fatal.
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
from mlgraph_cli.errors import MlgraphError

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
            batch_size: int = 16, image_size: int | None = None,
            progress: ProgressHook = NULL_PROGRESS) -> PredictResult:
    """Score every image of ``inputs`` (files, folders, globs, .txt lists) with ``run_dir``."""
    from mlgraph_cli.core.device import resolve_device
    from mlgraph_cli.core.images import common_root, list_images
    from mlgraph_cli.core.predict import Predictor, check_prediction_options, explain_image, explain_name, load_run
    from mlgraph_cli.core.predict import select_labels

    check_prediction_options(topk, threshold)
    fmt = output_format(format, output)
    paths = list_images(list(inputs))
    if not paths:
        shown = ", ".join(os.fspath(i) for i in inputs)
        raise MlgraphError(f"{shown}: no images found (folders are searched for .jpg, .jpeg, .png, .bmp, .gif, "
                           ".webp, .tif files; pass image files, a folder, a glob or a .txt list)")
    dev = resolve_device(device)
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
