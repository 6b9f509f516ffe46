"""What the train stage adds around the Trainer (rank 0 only): a note on the validation split
before training, and at the end the per-label thresholds and ``curves.png`` (docs/train.md).

- The note: how many validation images there are and which labels have no positive among them
  (their AP is left out of val mAP, so a tiny automatic split can read "val mAP 100.00").
- Thresholds: the ``best`` weights score the validation split once more and each label gets the
  threshold of its best F1 there (core/evaluation/thresholds.py); config.json records them as ``thresholds``.
  No validation split: ``thresholds`` stays null.
- ``selection`` in config.json: the metric that chose the best epoch (``--select-by``) and that epoch.
- ``curves.png``: losses, val mAP and learning rate from metrics.jsonl (core/evaluation/plots.py). A
  plotting failure never loses the run: it becomes a warning and the run stays as it is.
"""

from __future__ import annotations

from pathlib import Path
import numpy as np

from mlgraph_cli.core.evaluation import plots  # a module: tests replace plots.training_curves
from mlgraph_cli.core.evaluation.thresholds import TunedThresholds, tune_thresholds
from mlgraph_cli.core.models.classifier import score
from mlgraph_cli.core.progress import ProgressHook
from mlgraph_cli.core.training import checkpoint as ckpt
from mlgraph_cli.core.training.batches import eval_loader
from mlgraph_cli.core.training.run_config import RunConfig

CURVES = ckpt.CURVES


def validation_note(data) -> str | None:
    """One line on the validation split: its size and its labels without positives (None: no split)."""
    val = data.val_set
    if val is None or len(val) == 0:
        return "validation: none (no --val-features and --val-fraction 0): best = last epoch, no tuned thresholds"
    targets = np.asarray(val.targets)  # (N, C) 1 / 0 / -1
    missing = [name for name, k in zip(data.label_names, range(targets.shape[1])) if not (targets[:, k] == 1).any()]
    from_file = (data.data_info.get("val") or {}).get("source") != "split"
    where = "from the validation file" if from_file else "held out of the training file"
    noun = "video" if data.modality == "video" else "image"
    line = f"validation: {len(val):,} {noun}(s) {where}"
    if missing:
        shown = ", ".join(missing[:8]) + (", ..." if len(missing) > 8 else "")
        line += (f"; {len(missing)} of {len(data.label_names)} labels have no positive there ({shown}): "
                 "val mAP leaves them out and they keep the global threshold")
    if len(val) < 20:
        fix = ("put more into the --val-features file" if from_file
               else "pass --val-features, or a larger --val-fraction")
        line += f"; too few {noun}s for a reliable val mAP ({fix})"
    return line


def record_selection(run_dir: Path, result) -> None:
    """config.json's ``selection``: the metric that chose ``best.safetensors``, and the epoch it chose."""
    saved = RunConfig.read(run_dir)
    saved.selection = {"select_by": result.select_by, "tie_break": "val_loss", "epoch": result.best_epoch,
                       **(result.best or {})}
    saved.write(run_dir)


def tune_run_thresholds(prepared, config, run_dir: Path, device) -> TunedThresholds | None:
    """Score the validation split with ``best`` weights, choose per-label thresholds, write them
    into ``run_dir/config.json``. None when there is no validation split."""
    val = prepared.data.val_set
    if val is None or len(val) == 0:
        return None
    state, _ = ckpt.load_weights(ckpt.weights_path(run_dir, "best"), fix="re-train the run")
    model = prepared.model
    model.load_state_dict(state)
    scores, targets, _ = score(model, eval_loader(val, config.batch_size, config.workers), device)
    tuned = tune_thresholds(scores, targets, default=config.threshold)
    saved = RunConfig.read(run_dir)
    saved.thresholds = tuned.thresholds
    saved.write(run_dir)
    return tuned


def draw_curves(run_dir: Path, progress: ProgressHook) -> Path | None:
    """``run_dir/curves.png`` from metrics.jsonl; a failure is a warning, not a lost run."""
    try:
        return plots.training_curves(ckpt.read_metrics(run_dir), run_dir / CURVES)
    except Exception as exc:  # a plot is a view of the run; the weights and metrics are what matter
        progress.log(f"warning: {run_dir / CURVES} not written ({type(exc).__name__}: {exc}); the run is complete")
        return None

