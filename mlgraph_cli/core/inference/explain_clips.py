"""Explanation strips for video files, and the driver behind ``mlgraph predict CLIP.mp4``.

A strip is one PNG per clip: for each listed label, a row of the sampled frames' thumbnails with,
under each, a bar as high as that frame's weight for the label (the temporal attention a_k(t) of
a ``video-cma`` run; for pooling heads each frame's share of the per-frame probabilities), the
frame's time, and the label's score at the left. A frame the head leans on stands out as a tall
bar under the picture that shows the object.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from mlgraph_cli.core.media.images import SkippedImage, common_root
from mlgraph_cli.core.progress import NULL_PROGRESS, ProgressHook
from mlgraph_cli.core.inference.clips import ClipScores, load_clip_run, run_sampling, score_clips

LABEL_PX = 110  # left margin holding the label name and score
BAR_PX = 36  # height of the attention bars under the thumbnails


def explain_strip(item: ClipScores, labels: Sequence[tuple[int, str, float]]):
    """A PIL image: one row per (label column, name, score), thumbnails over attention bars."""
    from PIL import Image, ImageDraw

    thumbs = item.thumbnails  # (T, h, w, 3)
    t, h, w, _ = thumbs.shape
    row_h = h + BAR_PX + 14
    sheet = Image.new("RGB", (LABEL_PX + t * (w + 2), 16 + row_h * len(labels)), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((4, 2), Path(item.path).name, fill="black")
    for r, (k, name, score) in enumerate(labels):
        y = 16 + r * row_h
        draw.text((4, y + 4), name[:16], fill="black")
        draw.text((4, y + 18), f"{score:.2f}", fill="black")
        weights = item.attention[k] if item.attention is not None else np.zeros(t)
        top = float(weights.max()) if weights.size and weights.max() > 0 else 1.0
        for j in range(t):
            x = LABEL_PX + j * (w + 2)
            sheet.paste(Image.fromarray(thumbs[j]), (x, y))
            bar = int(round(BAR_PX * float(weights[j]) / top))
            draw.rectangle([x, y + h + BAR_PX - bar, x + w - 1, y + h + BAR_PX], fill=(220, 60, 30))
            draw.text((x + 1, y + h + BAR_PX + 1), f"{item.times[j]:.1f}s", fill="gray")
    return sheet


def predict_clip_files(paths: Sequence[Path], run_dir: str | os.PathLike, *, topk: int | None,
                       threshold: float | Callable[[Any], Sequence[float]] | None, checkpoint: str = "best",
                       device: str = "auto",
                       batch_size: int = 16, segment_seconds: float | None = None,
                       explain: str | os.PathLike | None = None,
                       progress: ProgressHook = NULL_PROGRESS) -> tuple[list[dict[str, Any]], list[tuple[str, str]],
                                                                          list[Path], float]:
    """Rows (see core/inference/clips.py), skipped (path, reason), explanation PNGs, threshold used.

    threshold: one probability, None for the run's own, or a function of the loaded run giving one
    threshold per label (how the predict stage passes ``--threshold tuned``)."""
    from mlgraph_cli.core.io.outputs import write_output
    from mlgraph_cli.core.device import resolve_device
    from mlgraph_cli.core.inference.scoring import select_labels

    dev = resolve_device(device)
    run = load_clip_run(run_dir, checkpoint, dev)
    t = threshold(run) if callable(threshold) else (threshold if threshold is not None else run.threshold)
    names = list(run.label_names)

    def listed(scores) -> list[dict[str, Any]]:
        return [{"label": n, "score": round(s, 6)} for n, s in select_labels(scores, names, topk=topk, threshold=t)]

    explain_dir = Path(explain) if explain is not None else None
    root = common_root(list(paths))
    rows, skipped, explained = [], [], []
    progress.start("Predicting", total=len(paths), unit="clip")
    for item in score_clips(paths, run, dev, sampling=run_sampling(run.config), segment_seconds=segment_seconds,
                            explain=explain_dir is not None, batch_size=batch_size):
        progress.advance(1)
        if isinstance(item, SkippedImage):
            skipped.append((item.path, item.reason))
            continue
        row: dict[str, Any] = {"video": item.path, "labels": listed(item.scores)}
        if segment_seconds:
            row["segments"] = [{"start": s, "end": e, "labels": listed(sc)} for s, e, sc in item.segments]
        rows.append(row)
        if explain_dir is not None:
            shown = select_labels(item.scores, names, topk=topk, threshold=t) or \
                select_labels(item.scores, names, topk=1, threshold=0.0)
            index = {n: i for i, n in enumerate(names)}
            sheet = explain_strip(item, [(index[n], n, s) for n, s in shown])
            rel = os.path.relpath(item.path, root) if root else Path(item.path).name
            dest = explain_dir / (rel.replace(os.sep, "__").replace("..", "_") + ".png")
            with write_output(dest) as tmp:
                sheet.save(tmp, format="PNG")
            explained.append(dest)
    progress.stop()
    return rows, skipped, explained, t
