"""Training a classification head (optionally with its backbone) on multi-label targets: the one
trainer of the toolkit, for image maps and video frames alike.

The :class:`Trainer` is the one call a stage makes (ultralytics' trainer facade): it runs the
epochs, validates on rank 0, writes ``best`` / ``last`` weights, ``metrics.jsonl`` and the
resume state into a run directory, and continues a stopped run exactly. Without a run directory
it trains in memory (the probe start below uses it so).

Choices, and why:
- Loss: BCE with logits (or ASL, ``config.loss``; core/training/losses.py) over the known targets (1
  or 0); -1 (VOC difficult, Open Images unverified) is masked out. Validation uses the same loss.
- Batches and their order: see :mod:`mlgraph_cli.core.training.batches` (a seeded DistributedSampler in
  every run, so a resumed run and an N-process run see the same batches as a straight one).
- Resume: at each epoch's end the model, optimiser, schedule, gradient scaler and every rank's
  RNG states are saved; restoring them continues the run bit for bit (tests/test_train.py).
- Schedules step per optimiser step (core/training/optim.py); mixed precision (fp16 autocast +
  GradScaler) only on CUDA. ``best`` is the epoch that ``select_by`` prefers (mAP, loss or CF1;
  ties to the lower validation loss: core/training/selection.py); early stopping (``patience``)
  counts epochs since it.
- A loss that is not finite stops the run with one line naming the epoch; the last finished
  epoch stays on disk.
- A head fitted in closed form (``head.fitted``: the converged linear probe) is fitted once in
  place of the run's one epoch (core/training/fitting.py); the rest of the run is as for any head.
- Video: batches carry the mask of real frames and a temporal head (``head.modality ==
  "video"``) is called as ``head(x, mask)``. Temporal CMA starts from a mean-pool linear probe
  (``core.probe.probe_start``, docs/video.md), trained by this same Trainer.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.distributed as tdist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset

from mlgraph_cli.core.models.classifier import Classifier, inputs_on, score
from mlgraph_cli.core.progress import NULL_PROGRESS, ProgressHook
from mlgraph_cli.core.training import checkpoint as ckpt
from mlgraph_cli.core.training import distributed as dist_util
from mlgraph_cli.core.training.batches import eval_loader, make_loader
from mlgraph_cli.core.training.config import TrainConfig
from mlgraph_cli.core.training.fitting import fit_head
from mlgraph_cli.core.training.losses import make_loss
from mlgraph_cli.core.training.optim import extend_schedule, make_optimizer, make_scheduler, param_groups
from mlgraph_cli.core.training.run_config import DIGEST_KEY
from mlgraph_cli.core.training.selection import figures, is_better, resumed_best
from mlgraph_cli.errors import MlgraphError

__all__ = ["Classifier", "TrainConfig", "TrainResult", "Trainer", "score", "seed_everything"]


# ---------------------------------------------------------------------------------------------
# The trainer

@dataclass
class TrainResult:
    """What a finished (or resumed and finished, or early-stopped) run produced."""

    run_dir: Path | None
    epochs_done: int
    start_epoch: int
    best_epoch: int | None
    best_map: float | None  # validation mAP of the best epoch (whatever chose it)
    last: dict[str, Any]
    is_main: bool
    stopped_early: bool = False
    thresholds: Any = None  # core.thresholds.TunedThresholds once the train stage has tuned them
    curves: Path | None = None  # RUN/curves.png when drawn
    event_log: bool = False  # TensorBoard event files were written into the run folder
    validation_note: str | None = None  # the validation split's size and labels without positives
    select_by: str = "mAP"  # what chose the best epoch (TrainConfig.select_by)
    best: dict[str, Any] | None = None  # the best epoch's val_loss, val_mAP, val_CF1


class Trainer:
    """Train ``model`` on ``train_set``, validate on ``val_set`` (rank 0, whole set, no padding),
    write checkpoints to ``run_dir`` (rank 0 alone; None: keep nothing on disk).

    config: resolved (no unset epochs / lr). device: this rank's torch device. weights_digest:
    stored in the weights' metadata (core/training/run_config.py binds weights to their config.json).
    on_epoch_end(row) runs after each epoch's files are written (a test interrupts a run there,
    as Ctrl-C would). label: how progress names the phase ("epoch", "probe").
    """

    def __init__(self, model: Classifier, train_set: Dataset, val_set: Dataset | None, *, config: TrainConfig,
                 label_names: Sequence[str], run_dir: str | Path | None, device: torch.device,
                 dist: dist_util.DistInfo = dist_util.DistInfo(), progress: ProgressHook = NULL_PROGRESS,
                 on_epoch_end: Callable[[dict[str, Any]], None] | None = None, weights_digest: str | None = None,
                 label: str = "epoch") -> None:
        self.model = model.to(device)
        self.train_set, self.val_set = train_set, val_set
        self.config, self.label_names = config, list(label_names)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.device, self.dist, self.progress = device, dist, progress
        self.on_epoch_end, self.digest, self.label = on_epoch_end, weights_digest, label
        self.amp = device.type == "cuda" and config.amp is not False
        self.loss = make_loss(config)  # BCE or ASL (core/training/losses.py), for training and the validation loss

    def _wrapped(self) -> nn.Module:
        if not self.dist.enabled:
            return self.model
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(self.model, device_ids=ids)

    def fit(self, resume: dict[str, Any] | None = None) -> TrainResult:
        """Run the remaining epochs (all of them, or those after ``resume['epoch']``). A state whose
        schedule was made for fewer epochs (``--resume --epochs N`` extends a run) has its schedule
        fitted again to ``config.epochs`` (core/training/optim.py, ``extend_schedule``)."""
        cfg, dist, device, model = self.config, self.dist, self.device, self.model
        seed_everything(cfg.seed + dist.rank)  # per-rank dropout masks; rank 0 matches a 1-process run
        net = self._wrapped()
        loader = make_loader(self.train_set, batch_size=cfg.batch_size, dist=dist, shuffle=cfg.shuffle,
                             seed=cfg.seed, workers=cfg.workers, pin=device.type == "cuda")
        steps = len(loader)
        optimizer = make_optimizer(param_groups(model, cfg), cfg)
        scheduler = make_scheduler(optimizer, cfg, steps)
        scaler = torch.amp.GradScaler(device.type, enabled=self.amp)
        start, best, best_epoch = 0, None, None
        if resume is not None:
            model.load_state_dict(resume["model"])
            optimizer.load_state_dict(resume["optimizer"])
            if int(resume.get("schedule_epochs") or cfg.epochs) != cfg.epochs:
                extend_schedule(scheduler, int(resume["scheduler"]["last_epoch"]))
            else:
                scheduler.load_state_dict(resume["scheduler"])
            scaler.load_state_dict(resume["scaler"])
            start, best_epoch = int(resume["epoch"]), resume.get("best_epoch")
            best = resumed_best(resume)
            states = resume["rng"]
            ckpt.set_rng_state(states[dist.rank] if len(states) == dist.world_size else states[0], device)
            if len(states) != dist.world_size and dist.rank:  # another world size: fresh streams
                seed_everything(cfg.seed + dist.rank + 1000 * start)
        last: dict[str, Any] = {}
        epoch, stopped = start, False
        for epoch in range(start + 1, cfg.epochs + 1):
            t0 = time.perf_counter()
            loader.sampler.sampler.set_epoch(epoch)  # a new permutation per epoch, same on all ranks
            if getattr(model.head, "fitted", False):  # solved in closed form: the fit is the run's one epoch
                train_loss = self._fit_head()
            else:
                train_loss = self._train_epoch(net, loader, optimizer, scheduler, scaler, epoch, steps)
            row: dict[str, Any] = {"epoch": epoch, "train_loss": train_loss, "val_loss": None, "val_mAP": None,
                                   "val_CF1": None, "val_OF1": None, "lr": optimizer.param_groups[0]["lr"]}
            improved = self.val_set is None
            if dist.is_main and self.val_set is not None:
                m, row["val_loss"] = self._validate(epoch)
                row.update(val_mAP=m["mAP"], val_CF1=m["CF1"], val_OF1=m["OF1"])
                # a missing figure (mAP is None when no validation label has a positive) ranks lowest
                improved = is_better(row, best, cfg.select_by)
            row["seconds"] = round(time.perf_counter() - t0, 3)
            if improved:
                best_epoch, best = epoch, figures(row)
            row.update(select_by=cfg.select_by, best_epoch=best_epoch)
            if self.run_dir is not None:
                self._save(epoch, row, improved, optimizer, scheduler, scaler, best, best_epoch)
            last = row
            if dist.is_main:
                self.progress.log(_epoch_line(row, cfg.epochs, self.label))
            if self.on_epoch_end is not None:
                self.on_epoch_end(row)
            stopped = bool(cfg.patience) and best_epoch is not None and epoch - best_epoch >= cfg.patience
            stopped = bool(dist_util.broadcast_object(dist, stopped))
            if stopped and epoch < cfg.epochs:
                if dist.is_main:
                    self.progress.log(f"early stop: no better validation {cfg.select_by} for {cfg.patience} "
                                      f"epochs (best at epoch {best_epoch})")
                break
        return TrainResult(run_dir=self.run_dir, epochs_done=epoch, start_epoch=start, best_epoch=best_epoch,
                           best_map=(best or {}).get("val_mAP"), last=last, is_main=dist.is_main,
                           stopped_early=stopped and epoch < cfg.epochs, select_by=cfg.select_by, best=best)

    def _validate(self, epoch: int) -> tuple[dict[str, Any], float]:
        # lazy: start-up — metrics loads scipy; a predict on images must not (tests/test_predict.py)
        from mlgraph_cli.core.evaluation.metrics import multilabel_metrics

        cfg = self.config
        self.progress.start(f"validate {epoch}/{cfg.epochs}", total=len(self.val_set), unit="images")
        scores, targets, val_loss = score(self.model, eval_loader(self.val_set, cfg.batch_size, cfg.workers),
                                          self.device, self.progress, amp=self.amp, loss=self.loss)
        self.progress.stop()
        return multilabel_metrics(scores, targets, threshold=cfg.threshold, label_names=self.label_names), val_loss

    def _train_epoch(self, net, loader, optimizer, scheduler, scaler, epoch: int, steps: int) -> float:
        cfg, device = self.config, self.device
        net.train()
        if self.dist.is_main:
            self.progress.start(f"{self.label} {epoch}/{cfg.epochs}", total=steps, unit="batches")
        loss_sum, known = 0.0, 0
        for batch in loader:
            if len(batch["y"]) == 0:  # every image of the batch was unreadable
                continue
            x, aux, mask = inputs_on(batch, device)
            y = batch["y"].to(device, non_blocking=True)
            with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=self.amp):
                logits = net(x, aux, mask)
            loss = self.loss(logits, y)
            if not torch.isfinite(loss):
                self._diverged(epoch, float(loss.detach()))
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if cfg.clip_grad > 0:
                scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
                nn.utils.clip_grad_norm_(self.model.parameters(), cfg.clip_grad)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            n = int((y >= 0).sum())
            loss_sum += float(loss.detach()) * n
            known += n
            if self.dist.is_main:
                self.progress.advance(1)
        if self.dist.is_main:
            self.progress.stop()
        loss_sum, known = dist_util.all_reduce_sum(self.dist, [loss_sum, float(known)], device)
        return loss_sum / max(known, 1.0)

    def _fit_head(self) -> float:
        """A fitted head (core/training/fitting.py) solves its problem on rank 0; every rank takes its weights."""
        loss = None
        if self.dist.is_main:
            loss, _ = fit_head(self.model, self.train_set, self.val_set, batch_size=self.config.batch_size,
                               workers=self.config.workers, device=self.device, loss=self.loss,
                               progress=self.progress)
        if self.dist.enabled:
            mine = {k: v.cpu() for k, v in self.model.head.state_dict().items()}
            state, loss = dist_util.broadcast_object(self.dist, (mine, loss))
            self.model.head.load_state_dict(state)
        return float(loss)

    def _diverged(self, epoch: int, value: float) -> None:
        where = f"{self.run_dir}: " if self.run_dir is not None else ""
        kept = (f"the run keeps epoch {epoch - 1}; " if epoch > 1 and self.run_dir is not None else "")
        raise MlgraphError(f"{where}the training loss became {value} in {self.label} {epoch} (training diverged; "
                           f"{kept}start again with a lower --lr, e.g. `mlgraph train --lr "
                           f"{self.config.lr / 10:g} --force -o RUN`)")

    def _save(self, epoch, row, improved, optimizer, scheduler, scaler, best, best_epoch) -> None:
        """metrics line, then weights, then the resume state: a run killed in between resumes from
        the previous epoch and drops the extra metrics line (see stages/train/__init__.py)."""
        rngs = self._gather_rng()
        if not self.dist.is_main:
            dist_util.barrier(self.dist)
            return
        state = self.model.state_dict()
        meta = {"schema": "mlgraph/run@1", "epoch": str(epoch), "val_mAP": str(row["val_mAP"]),
                "val_loss": str(row["val_loss"]), "select_by": self.config.select_by}
        if self.digest is not None:
            meta[DIGEST_KEY] = self.digest
        ckpt.append_metrics(self.run_dir, row)
        ckpt.save_weights(ckpt.weights_path(self.run_dir, "last"), state, meta)
        if improved:
            ckpt.save_weights(ckpt.weights_path(self.run_dir, "best"), state, meta)
        ckpt.save_resume(self.run_dir / ckpt.RESUME, {
            "epoch": epoch, "model": state, "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "rng": rngs,
            "best_map": (best or {}).get("val_mAP"), "best": best, "best_epoch": best_epoch,
            "world_size": self.dist.world_size, "schedule_epochs": self.config.epochs,
            **({DIGEST_KEY: self.digest} if self.digest is not None else {}),  # whose resume state this is
        })
        dist_util.barrier(self.dist)

    def _gather_rng(self) -> list[dict[str, Any]]:
        """Every rank's RNG state, in rank order (on rank 0; an in-memory exchange between our own
        processes). The file only ever holds tensors and numbers."""
        mine = ckpt.rng_state(self.device)
        if not self.dist.enabled:
            return [mine]
        box: list[Any] = [None] * self.dist.world_size
        tdist.all_gather_object(box, mine)
        return box


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global RNGs."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def _epoch_line(row: dict[str, Any], epochs: int, label: str = "epoch") -> str:
    text = f"{label} {row['epoch']}/{epochs}: train loss {row['train_loss']:.4f}"
    if row.get("val_mAP") is not None:
        text += (f", val loss {row['val_loss']:.4f}, val mAP {row['val_mAP']:.2f}, "
                 f"CF1 {row['val_CF1']:.2f}, OF1 {row['val_OF1']:.2f}")
    return text + f", lr {row['lr']:.3g}, {row['seconds']:.1f} s"
