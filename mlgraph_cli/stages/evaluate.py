"""Stage: score a trained run on labelled data and report the metrics (``mlgraph/metrics@1``).

The data is a features file made with the run's own backbone settings (the fast path), or, for
any run, annotated images that go through the run's backbone (needed when the backbone was
fine-tuned end to end, since cached features no longer match it).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlgraph_cli.core.artifacts import atomic_write_text, maker, provenance, schema_tag
from mlgraph_cli.core.progress import NULL_PROGRESS, ProgressHook
from mlgraph_cli.errors import MismatchError, MlgraphError, input_error

COMMAND = "mlgraph evaluate"
# What must agree between a run's backbone and a features file for the maps to be the same.
BACKBONE_KEYS = ("name", "weights", "image_size", "layers")


@dataclass
class EvaluateResult:
    metrics: dict[str, Any]  # the JSON document written
    output: Path | None  # None when written to stdout
    run_dir: Path
    data: Path
    checkpoint: str
    skipped: list[str]


def evaluate(run_dir: str | os.PathLike, *, features: str | os.PathLike | None = None,
             images: str | os.PathLike | None = None, annotations: str | os.PathLike | None = None,
             output: str | os.PathLike | None = None, threshold: float | None = None, checkpoint: str = "best",
             device: str = "auto", batch_size: int = 64, progress: ProgressHook = NULL_PROGRESS) -> EvaluateResult:
    """Evaluate ``run_dir`` on ``features`` (or ``images`` + ``annotations``); write the metrics JSON
    to ``output`` (default ``RUN/eval-<data name>.json``; ``-`` = stdout)."""
    from mlgraph_cli.core.device import resolve_device
    from mlgraph_cli.core.metrics import multilabel_metrics
    from mlgraph_cli.core.predict import load_run

    if threshold is not None and not 0.0 < threshold < 1.0:
        raise MlgraphError(f"--threshold {threshold}: must be a probability between 0 and 1")
    dev = resolve_device(device)
    on_images = images is not None or annotations is not None
    run = load_run(run_dir, checkpoint, device=dev, with_backbone=on_images)
    if on_images:
        scores, targets, data, skipped = _score_images(run, images, annotations, dev, batch_size, progress)
    else:
        if features is None:
            raise MlgraphError(f"no evaluation data given (pass --features F.h5 made by `{maker('features')}`, "
                               "or --images DIR --annotations ANN)")
        scores, targets, data = _score_features(run, Path(features), dev, batch_size, progress)
        skipped = []
    t = threshold if threshold is not None else run.threshold
    metrics = multilabel_metrics(scores, targets, threshold=t, label_names=run.label_names)
    doc = {
        "schema": schema_tag("metrics"), **metrics,
        "run": os.fspath(Path(run_dir).resolve()), "checkpoint": checkpoint, "epoch": run.epoch,
        "head": run.head_name, "data": os.fspath(data.resolve()), "skipped_images": len(skipped),
        "provenance": provenance(COMMAND, {"run": run_dir, "data": data, "threshold": t, "checkpoint": checkpoint}),
    }
    out = Path(output) if output is not None else Path(run_dir) / f"eval-{data.stem}.json"
    atomic_write_text(out, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    return EvaluateResult(metrics=doc, output=None if os.fspath(out) == "-" else out, run_dir=Path(run_dir),
                          data=data, checkpoint=checkpoint, skipped=skipped)


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
    if sorted(names) != sorted(run.label_names):
        only_data = sorted(set(names) - set(run.label_names))
        only_run = sorted(set(run.label_names) - set(names))
        raise MismatchError(
            f"{path} and {run.run_dir / 'config.json'} have different label sets ({len(only_run)} only in the run: "
            f"{', '.join(map(repr, only_run[:4]))}; {len(only_data)} only in the data: "
            f"{', '.join(map(repr, only_data[:4]))}) (evaluate on data annotated with the run's labels, made by "
            f"`{maker('features')}`)")
    index = {n: i for i, n in enumerate(names)}
    return labels[:, [index[n] for n in run.label_names]]


def _score_features(run, path: Path, device, batch_size: int, progress: ProgressHook):
    from mlgraph_cli.core.features import open_features
    from mlgraph_cli.core.batches import FeatureSet, eval_loader
    from mlgraph_cli.core.training import score

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
    from mlgraph_cli.core.predict import Predictor
    from mlgraph_cli.stages.train_images import annotated_images

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
