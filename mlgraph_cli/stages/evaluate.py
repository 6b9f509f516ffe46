"""Stage: score a trained run on labelled data and report the metrics (``mlgraph/metrics@1``),
at the run's global threshold and at its tuned per-label thresholds, with plots beside the JSON.

The data is a features file made with the run's own backbone settings, or annotated images that go
through the run's backbone (needed when it was fine-tuned end to end). A video run is scored on video
features: the usual report, plus ``GAP@20``, and with Segments ratings ``segment_MAP@K`` over the
rated segments, each scored on its 5 frames alone (core/evaluation/video_metrics.py; K = 100,000 as on Kaggle).
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlgraph_cli.core.device import resolve_device
from mlgraph_cli.core.evaluation.config import TUNED, EvaluateConfig
from mlgraph_cli.core.evaluation.metrics import multilabel_metrics, threshold_comparison
from mlgraph_cli.core.evaluation.plots import evaluation_plots, per_label_rows
from mlgraph_cli.core.evaluation.video_metrics import SEGMENT_TOP_K, VIDEO_TOP_K, segment_map, video_metrics
from mlgraph_cli.core.features.file import open_features
from mlgraph_cli.core.features.video_file import VideoFeatureFile
from mlgraph_cli.core.inference.frames import score_segments
from mlgraph_cli.core.inference.run import load_run
from mlgraph_cli.core.inference.scoring import Predictor
from mlgraph_cli.core.io.artifacts import maker, provenance, schema_tag
from mlgraph_cli.core.io.outputs import check_output, write_text
from mlgraph_cli.core.progress import NULL_PROGRESS, ProgressHook
from mlgraph_cli.core.project import merge_config
from mlgraph_cli.core.training.batches import FeatureSet, eval_loader, read_rows
from mlgraph_cli.core.training.data import annotated_images, is_video, modality_name
from mlgraph_cli.core.training.run_config import RunConfig
from mlgraph_cli.core.training.run_dir import find_run, run_files
from mlgraph_cli.core.training.trainer import score
from mlgraph_cli.errors import MismatchError, MlgraphError, input_error

COMMAND = "mlgraph evaluate"
# What must agree between a run's backbone and a features file for the maps to be the same.
BACKBONE_KEYS = ("name", "weights", "image_size", "layers")
VIDEO_FIX = "video features from `mlgraph import-yt8m`"
IMAGE_FIX = "image features from `mlgraph extract`"
# The report's key of a video run's MAP@K over rated segments (K from --top-k-segments).
SEGMENT_KEY = "segment_MAP@{k}"


@dataclass
class EvaluateResult:
    metrics: dict[str, Any]  # the JSON document written
    output: Path | None  # None when written to stdout
    run_dir: Path
    data: Path
    checkpoint: str
    skipped: list[str]
    config: EvaluateConfig = field(default_factory=EvaluateConfig)
    plots: list[Path] = field(default_factory=list)  # PNGs written beside the JSON (or in --plots DIR)
    warnings: list[str] = field(default_factory=list)  # plots that could not be drawn


def run_evaluate(run_dir: str | os.PathLike | None = None, *, features: str | os.PathLike | None = None,
                 images: str | os.PathLike | None = None, annotations: str | os.PathLike | None = None,
                 output: str | os.PathLike | None = None, plots: str | os.PathLike | None = None,
                 overrides: dict[str, Any] | None = None, project=None,
                 progress: ProgressHook = NULL_PROGRESS) -> EvaluateResult:
    """``mlgraph evaluate`` as one call: ``EvaluateConfig`` defaults, then the project's
    ``[evaluate]``, then ``overrides`` (flags; None = not given). Without ``run_dir`` the latest
    run under the project's runs folder (or runs/train); without data, the project's
    test_features if it exists, else its val_features."""
    config = merge_config(EvaluateConfig, project, "evaluate", overrides or {})
    run_path = find_run(run_dir, project.artifact("runs") if project is not None else None, flag="RUN_DIR")
    if features is None and images is None and annotations is None and project is not None:
        features = next((project.artifact(k) for k in ("test_features", "val_features")
                         if project.artifact(k).is_file()), None)
    return evaluate(run_path, config, features=features, images=images, annotations=annotations, output=output,
                    plots=plots, progress=progress)


def evaluate(run_dir: str | os.PathLike, config: EvaluateConfig | None = None, *,
             features: str | os.PathLike | None = None, images: str | os.PathLike | None = None,
             annotations: str | os.PathLike | None = None, output: str | os.PathLike | None = None,
             plots: str | os.PathLike | None = None, progress: ProgressHook = NULL_PROGRESS,
             **settings: Any) -> EvaluateResult:
    """Evaluate ``run_dir`` on ``features`` (or ``images`` + ``annotations``); write the metrics JSON
    to ``output`` (default ``RUN/eval-<data name>.json``; ``-`` = stdout) and, unless
    ``config.plots`` is off, ``<output stem>.pr.png`` and ``<output stem>.labels.png`` beside it
    (in ``plots`` when given; none for stdout without ``plots``). ``settings``: EvaluateConfig
    fields that replace ``config``'s (``device="cpu"``)."""
    config = dataclasses.replace(config or EvaluateConfig(), **settings).checked()
    dev = resolve_device(config.device)
    on_images = images is not None or annotations is not None
    saved = RunConfig.read(run_dir)
    inputs = [*run_files(run_dir), features, images, annotations]  # the run's config and weights are inputs too
    if output is not None and os.fspath(output) != "-":
        check_output(output, inputs)  # before the scoring: a wrong -o costs a second, not a run
    video = saved.modality == "video"
    if video and on_images:
        raise MismatchError(f"{Path(run_dir) / 'config.json'}: a video run, but --images/--annotations give images "
                            f"(evaluate it on {VIDEO_FIX}: `{COMMAND} {run_dir} --features F.h5`)")
    tuned = config.threshold == TUNED
    fixed = config.threshold if isinstance(config.threshold, float) else saved.threshold
    cut: float | list[float] = saved.label_thresholds(Path(run_dir)) if tuned else fixed
    run = load_run(run_dir, config.checkpoint, device=dev, with_backbone=on_images)
    extra: dict[str, Any] = {}
    if on_images:
        scores, targets, data, skipped = _score_images(run, images, annotations, dev, config.batch_size, progress)
    else:
        if features is None:
            what = "`mlgraph import-yt8m`" if video else f"`{maker('features')}`, or --images DIR --annotations ANN"
            raise MlgraphError(f"no evaluation data given (pass --features F.h5 made by {what})")
        data, skipped = Path(features), []
        check_modality(run, data)
        if video:
            scores, targets, extra = _score_videos(run, data, dev, config.batch_size, config.top_k_segments, progress)
        else:
            scores, targets, data = _score_features(run, data, dev, config.batch_size, progress)
    metrics = multilabel_metrics(scores, targets, threshold=cut, label_names=run.label_names)
    rows = [{**row, "threshold": t} for row, t in zip(per_label_rows(scores, targets, run.label_names, cut),
                                                       np.broadcast_to(cut, len(run.label_names)).tolist())]
    doc = {
        "schema": schema_tag("metrics"), **metrics, **extra, "threshold_mode": TUNED if tuned else "fixed",
        "thresholds": threshold_comparison(scores, targets, fixed=fixed, tuned=saved.thresholds),
        "per_label": rows, "split": saved.split_report(data),
        "run": os.fspath(Path(run_dir).resolve()), "checkpoint": config.checkpoint, "epoch": run.epoch,
        "head": run.head_name, "data": os.fspath(data.resolve()), "skipped_images": len(skipped),
        "provenance": provenance(COMMAND, {"run": run_dir, "data": data, "threshold": config.threshold or fixed,
                                           "checkpoint": config.checkpoint,
                                           "top_k_segments": extra.get("segment_top_k")}),
    }
    out = Path(output) if output is not None else Path(run_dir) / f"eval-{data.stem}.json"
    to_stdout = os.fspath(out) == "-"
    result = EvaluateResult(metrics=doc, output=None if to_stdout else out, run_dir=Path(run_dir), data=data,
                            checkpoint=config.checkpoint, skipped=skipped, config=config)
    if config.plots and (plots is not None or not to_stdout):  # none for stdout unless a folder is named
        stem = f"eval-{data.stem}" if to_stdout else out.stem
        doc["plots"], result.plots, result.warnings = evaluation_plots(scores, targets, run.label_names, rows,
                                                                       Path(plots or out.parent), stem, inputs)
    write_text(out, json.dumps(doc, indent=2, ensure_ascii=False) + "\n", inputs)
    return result


def check_modality(run, path: Path) -> None:
    """A video run evaluates on video features, an image run on image features: one line naming both."""
    video_run, video_data = run.modality == "video", is_video(path)
    if video_run != video_data:
        kind = "a video run" if video_run else "an image run"
        raise MismatchError(f"{path} holds {modality_name(video_data)}, but {run.run_dir / 'config.json'} is {kind} "
                            f"(evaluate it on {VIDEO_FIX if video_run else IMAGE_FIX})")


def check_features_fit(run, path: Path, ff) -> None:
    """The features must come from the backbone the run was trained on (same maps)."""
    run_file = run.run_dir / "config.json"
    if run.config.get("backbone_trained"):
        raise MismatchError(f"{run_file}: this run fine-tuned its backbone, so features cached from {path} no longer "
                            f"match it (evaluate on images: `{COMMAND} {run.run_dir} --images DIR --annotations ANN`)")
    want = run.config.get("backbone") or {}
    have = ff.attrs.get("backbone_config") or {}
    keys = BACKBONE_KEYS + (("init_seed",) if str(want.get("weights")).lower() == "none" else ())
    diffs = [k for k in keys if _norm(want.get(k)) != _norm(have.get(k))]
    if diffs:
        was = ", ".join(f"{k} {have.get(k)!r}" for k in diffs)
        should = ", ".join(f"{k} {want.get(k)!r}" for k in diffs)
        raise MismatchError(f"{path}: extracted with {was} but {run_file} was trained on {should} (extract the data "
                            f"with the run's settings: `mlgraph extract --backbone {want.get('name')} --weights "
                            f"{want.get('weights')} --image-size {want.get('image_size')}`)")


def _norm(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def aligned_targets(labels: np.ndarray, names: list[str], run, path: Path) -> np.ndarray:
    """``labels`` (N, C') with columns reordered to the run's label order (same set required)."""
    made_by = "mlgraph import-yt8m" if run.modality == "video" else maker("features")
    if sorted(names) != sorted(run.label_names):
        only_data = sorted(set(names) - set(run.label_names))
        only_run = sorted(set(run.label_names) - set(names))
        raise MismatchError(
            f"{path} and {run.run_dir / 'config.json'} have different label sets ({len(only_run)} only in the run: "
            f"{', '.join(map(repr, only_run[:4]))}; {len(only_data)} only in the data: "
            f"{', '.join(map(repr, only_data[:4]))}) (evaluate on data annotated with the run's labels, made by "
            f"`{made_by}`)")
    index = {n: i for i, n in enumerate(names)}
    return labels[:, [index[n] for n in run.label_names]]


def _score_features(run, path: Path, device, batch_size: int, progress: ProgressHook):
    ff = open_features(path)
    if len(ff) == 0:
        raise input_error(path, "the features file holds no images", f"extract some with `{maker('features')}`")
    if ff.labels is None or ff.label_names is None:
        raise input_error(path, "no labels to evaluate against",
                          "extract it with `mlgraph extract IMAGES --annotations ANNOTATIONS`")
    check_features_fit(run, path, ff)
    multi = bool(getattr(run.model.head, "multi_scale", False))
    if multi and not ff.has_aux:
        raise input_error(path, "the ms-cma run needs two backbone stages but the file has one (no features_aux)",
                          "extract with the run's two `--layer` stages")
    targets = aligned_targets(ff.labels, list(ff.label_names), run, path)
    data = FeatureSet(ff, np.arange(len(ff)), targets, aux=multi)
    progress.start(f"Evaluating {path.name}", total=len(ff), unit="img")
    scores, targets, _ = score(run.model, eval_loader(data, batch_size), device, progress)
    progress.stop()
    return scores, targets, path


def _score_images(run, images, annotations, device, batch_size: int, progress: ProgressHook):
    ann_path = Path(annotations) if annotations is not None else None
    # reorder: the run's label order; a label the annotations never mention is all negative there
    files, targets, _ = annotated_images(Path(images) if images else None, ann_path,
                                         label_names=run.label_names, purpose="evaluating on images")
    predictor = Predictor(run, device, batch_size=batch_size)
    index = {os.fspath(Path(f)): i for i, f in enumerate(files)}
    rows, scores = [], []
    for item in predictor([Path(f) for f in files], progress=progress):
        rows.append(index[os.fspath(item.path)])
        scores.append(item.scores)
    if not scores:
        raise input_error(ann_path, "none of its images could be read", "check the --images folder")
    skipped = [s.path for s in predictor.skipped]
    return np.stack(scores), targets[rows], ann_path, skipped


# ---------------------------------------------------------------------------------------------
# Video runs

def _score_videos(run, path: Path, device, batch_size: int, top_k: int | None, progress: ProgressHook):
    """Probabilities and targets of every video of ``path``, and the video-only keys of the report:
    ``GAP@20``, and with Segments ratings ``segment_MAP@K`` and ``segments`` (the per-class detail)."""
    vf = VideoFeatureFile(path)
    if len(vf) == 0 or vf.labels is None or vf.label_names is None:
        what = "the features file holds no videos" if len(vf) == 0 else "no labels to evaluate against"
        raise input_error(path, what, "import labelled videos with `mlgraph import-yt8m RECORDS --vocabulary vocabulary.csv`")
    want = int(run.config["head"].get("in_channels", vf.feature_shape[0]))
    if vf.feature_shape[0] != want:
        raise MismatchError(f"{path}: frames of {vf.feature_shape[0]} features, but {run.run_dir / 'config.json'} was "
                            f"trained on {want} (import it with `mlgraph import-yt8m`)")
    targets = aligned_targets(vf.labels, list(vf.label_names), run, path)
    data = FeatureSet(vf, np.arange(len(vf)), targets)  # batches carry the mask of real frames
    progress.start(f"Evaluating {path.name}", total=len(vf), unit="videos")
    scores, targets, _ = score(run.model, eval_loader(data, batch_size), device, progress)
    progress.stop()
    gap = f"GAP@{VIDEO_TOP_K}"
    extra: dict[str, Any] = {"modality": "video", gap: video_metrics(scores, targets, k=VIDEO_TOP_K)[gap]}
    if len(vf.segments):
        extra.update(_segment_report(run, vf, device, batch_size, top_k, progress))
    return scores, targets, extra


def _segment_report(run, vf, device, batch_size: int, top_k: int | None, progress: ProgressHook) -> dict[str, Any]:
    """MAP@K over the rated segments: each segment scored on its own 5 frames (the rest of its clip
    masked), read a block of videos at a time so the file never has to fit in memory."""
    k = top_k or SEGMENT_TOP_K
    seg = vf.segments
    index = {n: i for i, n in enumerate(run.label_names)}
    column = np.array([index[n] for n in vf.label_names])[seg.label]  # (S,) the run's label column
    order = np.argsort(seg.video, kind="stable")  # segments grouped by video
    grouped = seg.video[order]
    videos = np.unique(seg.video)
    rated = np.empty(len(seg), np.float32)  # each segment's score for its rated class
    progress.start("Scoring segments", total=len(seg), unit="segments")
    for lo in range(0, len(videos), batch_size):
        block = videos[lo:lo + batch_size]  # sorted video rows
        pos = order[np.searchsorted(grouped, block[0], "left"):np.searchsorted(grouped, block[-1], "right")]
        x = read_rows(vf, block)  # (B, D, T, 1) float32
        probs = score_segments(run.model.head, x, vf.mask(block), np.searchsorted(block, seg.video[pos]),
                               seg.start[pos], batch_size=batch_size, device=device)  # (n, C)
        rated[pos] = probs[np.arange(len(pos)), column[pos]]
        progress.advance(len(pos))
    progress.stop()
    report = segment_map(rated, column, seg.score > 0, k=k, label_names=run.label_names)
    return {SEGMENT_KEY.format(k=k): report[f"MAP@{k}"], "segment_top_k": k,
            "segments": {"rated": len(seg), "positive": int((seg.score > 0).sum()), "classes": report["classes"],
                         "classes_without_positives": report["classes_without_positives"],
                         "per_label_ap": report["per_label_ap"]}}
