"""The video half of ``mlgraph predict``: label the clips of YouTube-8M TFRecords, or video files
(MP4, MKV, ...), with a video run (rows as described in the package docstring)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from mlgraph_cli.core.inference.config import PredictConfig
from mlgraph_cli.core.progress import NULL_PROGRESS, ProgressHook
from mlgraph_cli.errors import MismatchError, MlgraphError, input_error
from mlgraph_cli.stages.predict import PredictResult, is_tfrecord_input, label_thresholds, shown_threshold
from mlgraph_cli.stages.predict import check_rows_output, run_inputs, torch_threads, write_rows

CLIP_FIX = "pass MP4/MKV/WebM/AVI/MOV files that play"


def predict_videos(inputs: Sequence[str | os.PathLike], run_dir: Path, cfg: PredictConfig, *, fmt: str,
                   output: str | os.PathLike | None, explain: str | os.PathLike | None = None,
                   progress: ProgressHook = NULL_PROGRESS) -> PredictResult:
    """Label the videos of YouTube-8M TFRecords with a video run."""
    from mlgraph_cli.core.device import resolve_device
    from mlgraph_cli.core.inference.records import VideoPredictor
    from mlgraph_cli.core.inference.run import load_run
    from mlgraph_cli.core.inference.scoring import select_labels
    from mlgraph_cli.core.training.run_config import RunConfig
    from mlgraph_cli.core.media.yt8m.files import RECORDS_FIX, expand_inputs

    run_config = RunConfig.read(run_dir)
    if run_config.modality != "video":
        first = next(os.fspath(i) for i in inputs if is_tfrecord_input(i))
        raise MismatchError(f"{first}: YouTube-8M TFRecords, but {Path(run_dir) / 'config.json'} is an image run "
                            f"(pass images, or a run trained on features from `mlgraph import-yt8m`)")
    for flag, value in (("--explain", explain), ("--image-size", cfg.image_size)):
        if value is not None:
            raise MlgraphError(f"{flag}: for image runs only; {run_dir} is a video run (drop {flag})")
    files = expand_inputs(inputs)
    check_rows_output(output, [*inputs, *files], run_dir)
    with torch_threads(cfg.threads, None) as threads:
        dev = resolve_device(cfg.device)
        run = load_run(run_dir, cfg.checkpoint, device=dev)
        cuts = label_thresholds(cfg, run)
        predictor = VideoPredictor(run, dev, batch_size=cfg.batch_size, max_frames=run_config.data.get("frames"))

        def listed(scores) -> list[dict[str, Any]]:
            return [{"label": name, "score": round(score, 6)}
                    for name, score in select_labels(scores, run.label_names, topk=cfg.topk, threshold=cuts)]

        rows = []
        for item in predictor(files, segments=cfg.segments, progress=progress):
            row: dict[str, Any] = {"video": item.id, "labels": listed(item.scores)}
            if cfg.segments:
                row["segments"] = [{"start": int(s), "labels": listed(sc)}
                                   for s, sc in zip(item.segment_starts, item.segment_scores)]
            rows.append(row)
    skipped = [(s.path, s.reason) for s in predictor.skipped]
    if not rows:
        where, reason = skipped[0] if skipped else (os.fspath(files[0]), "the file has no records")
        raise input_error(where, f"no readable YouTube-8M record ({reason})", RECORDS_FIX)
    out_path = write_rows(rows, fmt, output, video=True, inputs=[*inputs, *files, *run_inputs(run_dir)])
    return PredictResult(rows=rows, skipped=skipped, run_dir=Path(run_dir), checkpoint=cfg.checkpoint,
                         threshold=shown_threshold(cfg, run), output=out_path, format=fmt, modality="video",
                         threads=threads)



def predict_clips(clips: Sequence[Path], run_dir: Path, cfg: PredictConfig, *, fmt: str,
                  output: str | os.PathLike | None, explain: str | os.PathLike | None = None,
                  progress: ProgressHook = NULL_PROGRESS) -> PredictResult:
    """Label video files with a run trained on `mlgraph extract CLIPS/` features: per clip, and per
    ``cfg.segment_seconds`` window with ``cfg.segments``."""
    from mlgraph_cli.core.training.run_config import RunConfig
    from mlgraph_cli.core.inference.explain_clips import predict_clip_files
    from mlgraph_cli.stages.predict import label_thresholds

    check_rows_output(output, clips, run_dir)
    with torch_threads(cfg.threads, len(clips)) as threads:
        rows, skipped, explained, _ = predict_clip_files(
            clips, run_dir, topk=cfg.topk, threshold=lambda run: label_thresholds(cfg, run),
            checkpoint=cfg.checkpoint, device=cfg.device, batch_size=cfg.batch_size,
            segment_seconds=cfg.segment_seconds if cfg.segments else None, explain=explain, progress=progress)
    if not rows:
        where, reason = skipped[0]
        raise input_error(where, f"no readable video file ({reason})", CLIP_FIX)
    out_path = write_rows(rows, fmt, output, video=True, clips=True, inputs=[*clips, *run_inputs(run_dir)])
    threshold = cfg.threshold if cfg.threshold is not None else RunConfig.read(run_dir).threshold
    return PredictResult(rows=rows, skipped=skipped, run_dir=Path(run_dir), checkpoint=cfg.checkpoint,
                         threshold=threshold, output=out_path, format=fmt, explained=explained, modality="video",
                         threads=threads)
