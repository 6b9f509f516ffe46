"""``mlgraph train``: train a head on cached features (or a backbone + head on images) into a run folder."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from mlgraph_cli.cli._common import default_help, progress_bar, err, handle_errors, load_project, summary
from mlgraph_cli.core.training.config import DEFAULT_HEAD_HELP, MODALITY_DEFAULTS, TrainConfig  # plain dataclasses: no torch

EPILOG = ("Example: mlgraph train --features features.h5 --embeddings embeddings.h5 --head cma --epochs 20 "
          "-o runs/train/cma")
HELP_PANEL_DATA = "Data"
HELP_PANEL_OPT = "Optimisation"
HELP_PANEL_E2E = "End to end (images instead of features)"


class Head(str, Enum):
    cma = "cma"
    ms_cma = "ms-cma"
    gap = "gap"
    gmp = "gmp"
    mlgcn = "mlgcn"
    query = "query"
    probe = "probe"
    frame_max = "frame-max"


class Loss(str, Enum):
    bce = "bce"
    asl = "asl"


class SelectBy(str, Enum):
    mAP = "mAP"
    loss = "loss"
    CF1 = "CF1"


class Optimizer(str, Enum):
    adamw = "adamw"
    sgd = "sgd"


class Schedule(str, Enum):
    cosine = "cosine"
    onecycle = "onecycle"
    constant = "constant"


class Cache(str, Enum):
    auto = "auto"
    ram = "ram"
    disk = "disk"


def _d(name: str) -> str:
    return default_help(TrainConfig, name)


def _dm(name: str) -> str:
    """``[default: A on images, B on video]`` from the per-modality defaults."""
    image, video = MODALITY_DEFAULTS["image"][name], MODALITY_DEFAULTS["video"][name]
    return f"\\[default: {image:g} on images, {video:g} on video]"


def _opt(*names: str, help: str, panel: str | None = None, **kw):
    return typer.Option(*names, help=help, show_default=False, rich_help_panel=panel, **kw)


def train(
    *,
    features: Annotated[Optional[Path], _opt("--features", help="Training features (HDF5 from `mlgraph extract`, or "
                                             "`mlgraph import-yt8m` for video). Default: \\[artifacts] features.",
                                             panel=HELP_PANEL_DATA)] = None,
    val_features: Annotated[Optional[Path], _opt("--val-features", help="Validation features. Default: \\[artifacts] "
                                                 "val_features if it exists, else --val-fraction of the training "
                                                 "features.", panel=HELP_PANEL_DATA)] = None,
    embeddings: Annotated[Optional[Path], _opt("--embeddings", help="Label embeddings from `mlgraph embed` (cma, "
                                               "ms-cma, mlgcn; the query head's queries). Default: \\[artifacts] "
                                               "embeddings.",
                                               panel=HELP_PANEL_DATA)] = None,
    graph: Annotated[Optional[Path], _opt("--graph", help="Label graph from `mlgraph build-graph` (mlgcn's "
                                          "adjacency). Default: \\[artifacts] graph.", panel=HELP_PANEL_DATA)] = None,
    labels: Annotated[Optional[Path], _opt("--labels", help="The dataset's label set, the run's labels in order: a "
                                           "file of one label per line, or the graph from `mlgraph build-graph`. "
                                           "Features files lacking one of them read it as having no positive. "
                                           "Default: \\[artifacts] graph when it exists, else the training "
                                           "features' labels.", panel=HELP_PANEL_DATA)] = None,
    val_fraction: Annotated[Optional[float], _opt("--val-fraction", help="Share of the training data held out for "
                                                  "validation when no validation file is given; a reproducible split "
                                                  "by --seed, recorded in split.json. 0 = no validation. "
                                                  f"{_d('val_fraction')}", panel=HELP_PANEL_DATA)] = None,
    cache: Annotated[Optional[Cache], _opt("--cache", help="ram: load the features into memory; disk: read the file "
                                           "per batch; auto: ram when it fits in half the free memory. "
                                           f"{_d('cache')}", panel=HELP_PANEL_DATA)] = None,
    workers: Annotated[Optional[int], _opt("--workers", min=0, help=f"DataLoader worker processes. {_d('workers')}",
                                           panel=HELP_PANEL_DATA)] = None,
    head: Annotated[Optional[Head], _opt("--head", help="Classification head: query = label queries "
                                         "(Query2Label / ML-Decoder), probe = a linear probe fitted by logistic "
                                         "regression (one fit, --epochs does not apply); on video features cma, gap, "
                                         "gmp, query, probe are temporal and frame-max is a frame-level reference. "
                                         f"\\[default: {DEFAULT_HEAD_HELP}; cma on video]")] = None,
    epochs: Annotated[Optional[int], _opt("--epochs", min=1,
                                          help=f"Epochs. {_dm('epochs')}")] = None,
    seed: Annotated[Optional[int], _opt("--seed", help="Seed of the initial weights, batch order and split. "
                                        f"{_d('seed')}")] = None,
    threshold: Annotated[Optional[float], _opt("--threshold", help="Probability at which a label counts as "
                                               f"predicted (CP/CR/F1 and predict). {_d('threshold')}")] = None,
    output: Annotated[Optional[Path], _opt("-o", "--output", help="Run folder. Default: runs/train/exp, exp2, ... "
                                           "(\\[artifacts] runs in a project).")] = None,
    name: Annotated[Optional[str], _opt("--name", help="Run name under the runs folder (numbered if taken).")] = None,
    resume: Annotated[Optional[Path], _opt("--resume", help="Continue this stopped run exactly where its last "
                                           "checkpoint left it, with its own settings.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite the run in -o if there is one.")] = False,
    batch_size: Annotated[Optional[int], _opt("--batch-size", min=1, help="Global batch size (split over torchrun "
                                              f"processes). {_d('batch_size')}", panel=HELP_PANEL_OPT)] = None,
    lr: Annotated[Optional[float], _opt("--lr", help=f"Peak learning rate of the head. {_dm('lr')}",
                                        panel=HELP_PANEL_OPT)] = None,
    weight_decay: Annotated[Optional[float], _opt("--weight-decay", help="Weight decay (not on biases and norms). "
                                                  f"{_dm('weight_decay')[:-1]}; 1 for the video pooling heads]",
                                                  panel=HELP_PANEL_OPT)] = None,
    optimizer: Annotated[Optional[Optimizer], _opt("--optimizer", help=f"{_d('optimizer')}",
                                                   panel=HELP_PANEL_OPT)] = None,
    schedule: Annotated[Optional[Schedule], _opt("--schedule", help="Learning-rate schedule, stepped per batch. "
                                                 f"{_d('schedule')}", panel=HELP_PANEL_OPT)] = None,
    warmup_epochs: Annotated[Optional[float], _opt("--warmup-epochs", help="Linear warm-up (cosine) or rise share "
                                                   f"(onecycle). {_d('warmup_epochs')}", panel=HELP_PANEL_OPT)] = None,
    clip_grad: Annotated[Optional[float], _opt("--clip-grad", help=f"Max gradient norm, 0 = off. {_d('clip_grad')}",
                                               panel=HELP_PANEL_OPT)] = None,
    amp: Annotated[Optional[bool], _opt("--amp/--no-amp", help="Mixed precision (CUDA only). \\[default: on for "
                                        "CUDA]", panel=HELP_PANEL_OPT)] = None,
    probe_epochs: Annotated[Optional[int], _opt("--probe-epochs", min=0, help="cma only: epochs of the "
                                                "mean-pool probe the head starts from, before --epochs. "
                                                f"\\[default: {MODALITY_DEFAULTS['video']['probe_epochs']} "
                                                f"on video, {MODALITY_DEFAULTS['image']['probe_epochs']} on images]",
                                                panel=HELP_PANEL_OPT)] = None,
    loss: Annotated[Optional[Loss], _opt("--loss", help="bce: binary cross-entropy; asl: the asymmetric loss "
                                         f"(Ridnik et al., ICCV 2021). {_d('loss')}", panel=HELP_PANEL_OPT)] = None,
    asl_gamma_neg: Annotated[Optional[float], _opt("--asl-gamma-neg", min=0.0, help="ASL: focusing parameter of "
                                                   f"negative targets. {_d('asl_gamma_neg')}",
                                                   panel=HELP_PANEL_OPT)] = None,
    asl_gamma_pos: Annotated[Optional[float], _opt("--asl-gamma-pos", min=0.0, help="ASL: focusing parameter of "
                                                   f"positive targets. {_d('asl_gamma_pos')}",
                                                   panel=HELP_PANEL_OPT)] = None,
    asl_clip: Annotated[Optional[float], _opt("--asl-clip", min=0.0, max=0.99, help="ASL: probability margin; "
                                              "negatives below it add nothing to the loss. "
                                              f"{_d('asl_clip')}", panel=HELP_PANEL_OPT)] = None,
    patience: Annotated[Optional[int], _opt("--patience", min=0, help="Stop when the best epoch (--select-by) is "
                                            f"this many epochs back; 0 = never. {_dm('patience')}",
                                            panel=HELP_PANEL_OPT)] = None,
    select_by: Annotated[Optional[SelectBy], _opt("--select-by", help="Which epoch best.safetensors keeps: the "
                                                  "highest validation mAP or CF1, or the lowest validation loss; "
                                                  f"ties go to the lower validation loss. {_d('select_by')}",
                                                  panel=HELP_PANEL_OPT)] = None,
    device: Annotated[Optional[str], _opt("--device", help="auto, cpu, cuda, cuda:N. Under torchrun each process "
                                          f"takes cuda:LOCAL_RANK. {_d('device')}", panel=HELP_PANEL_OPT)] = None,
    images: Annotated[Optional[Path], _opt("--images", help="Image folder: train end to end, fine-tuning the "
                                           "backbone.", panel=HELP_PANEL_E2E)] = None,
    annotations: Annotated[Optional[Path], _opt("--annotations", help="Annotations of --images. Default: "
                                                "\\[dataset] annotations.", panel=HELP_PANEL_E2E)] = None,
    val_images: Annotated[Optional[Path], _opt("--val-images", help="Validation image folder.",
                                               panel=HELP_PANEL_E2E)] = None,
    val_annotations: Annotated[Optional[Path], _opt("--val-annotations", help="Validation annotations.",
                                                    panel=HELP_PANEL_E2E)] = None,
    backbone: Annotated[Optional[str], _opt("--backbone", help="As in `mlgraph extract`. "
                                            f"{_d('backbone')}",
                                            panel=HELP_PANEL_E2E)] = None,
    weights: Annotated[Optional[str], _opt("--weights", help="Backbone weights: a name, a file, or none. "
                                           f"{_d('weights')}", panel=HELP_PANEL_E2E)] = None,
    image_size: Annotated[Optional[int], _opt("--image-size", min=1, help="Input side in px. "
                                              "\\[default: 448 torchvision, 224 efficientnet-lite0]",
                                              panel=HELP_PANEL_E2E)] = None,
    layer: Annotated[Optional[list[str]], _opt("--layer", help="Backbone stage; twice for ms-cma.",
                                               panel=HELP_PANEL_E2E)] = None,
    backbone_lr_scale: Annotated[Optional[float], _opt("--backbone-lr-scale", help="Backbone lr = lr x this. "
                                                       f"{_d('backbone_lr_scale')}", panel=HELP_PANEL_E2E)] = None,
    tensorboard: Annotated[Optional[bool], _opt("--tensorboard/--no-tensorboard", help="Write TensorBoard event "
                                                "files into the run folder (pip install 'mlgraph[tensorboard]'). "
                                                "\\[default: on when tensorboard is installed]")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Train a classification head on cached features (or end to end on images) and write a run folder:
    best/last weights (safetensors), config.json, metrics.jsonl. Works under `torchrun` too.

    On video features from `mlgraph import-yt8m` the head is temporal (cma, gap, gmp over the frames)."""
    from mlgraph_cli.core.training.distributed import dist_info_from_env
    from mlgraph_cli.errors import MlgraphError
    from mlgraph_cli.stages.train import TrainingInterrupted, run_train
    from mlgraph_cli.stages.train.inputs import TrainInputs

    overrides = dict(
        head=head.value if head else None, epochs=epochs, seed=seed, threshold=threshold, batch_size=batch_size,
        lr=lr, weight_decay=weight_decay, optimizer=optimizer.value if optimizer else None,
        schedule=schedule.value if schedule else None, warmup_epochs=warmup_epochs, clip_grad=clip_grad, amp=amp,
        device=device, val_fraction=val_fraction, cache=cache.value if cache else None, workers=workers,
        backbone=backbone, weights=weights, image_size=image_size, layers=layer or None,
        backbone_lr_scale=backbone_lr_scale, probe_epochs=probe_epochs, patience=patience,
        loss=loss.value if loss else None, asl_gamma_neg=asl_gamma_neg, asl_gamma_pos=asl_gamma_pos, asl_clip=asl_clip,
        select_by=select_by.value if select_by else None, tensorboard=tensorboard,
    )
    inputs = TrainInputs(features=features, val_features=val_features, embeddings=embeddings, graph=graph,
                         images=images, annotations=annotations, val_images=val_images, val_annotations=val_annotations,
                         labels=labels)
    main = dist_info_from_env().is_main
    progress = progress_bar(quiet=quiet or not main)
    try:
        result = run_train(inputs, overrides, project=load_project(), resume=resume, run_dir=output, name=name,
                           force=force, progress=progress)
    except MlgraphError:
        if not main:  # every rank meets the same mistake; rank 0 alone reports it
            raise typer.Exit(1) from None
        raise
    except TrainingInterrupted as stop:
        progress.stop()
        if main:
            kept = ("keeps its last finished epoch; continue" if stop.kept
                    else "has no finished epoch yet; start it again")
            err.print(f"Interrupted: {stop.run_dir} {kept} with `mlgraph train --resume {stop.run_dir}`",
                      style="yellow", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(130) from None
    finally:
        progress.stop()
    if not result.is_main:
        return
    best = _best_line(result)
    start = f" (resumed after epoch {result.start_epoch})" if result.start_epoch else ""
    early = " (stopped early)" if result.stopped_early else ""
    plural = "s" if result.epochs_done != 1 else ""
    files = "best.safetensors, last.safetensors, metrics.jsonl" + (", curves.png" if result.curves else "")
    tuned = ""
    if result.thresholds is not None:
        t = result.thresholds
        kept = f", {len(t.fallback)} kept {t.global_threshold:g}" if t.fallback else ""
        tuned = f"; per-label thresholds {min(t.thresholds):.2f}-{max(t.thresholds):.2f} (best val F1{kept})"
    summary(f"Trained {result.epochs_done} epoch{plural}{start}{early}: {best}{tuned} -> {result.run_dir} ({files})")
    if result.event_log:
        summary(f"TensorBoard log in {result.run_dir}: open it with `tensorboard --logdir {result.run_dir.parent}`")


def _best_line(result) -> str:
    """``best val mAP 91.20 at epoch 7``, with the validation loss when the loss chose or broke a tie."""
    best = result.best or {}
    if result.best_map is None and best.get("val_loss") is None:
        return "no validation set, best = last"
    if result.select_by == "loss":
        text = f"best val loss {best['val_loss']:.4f} at epoch {result.best_epoch}"
        return text + (f" (val mAP {result.best_map:.2f})" if result.best_map is not None else "")
    value = result.best_map if result.select_by == "mAP" else best.get("val_CF1")
    shown = "n/a" if value is None else f"{value:.2f}"
    loss = f", val loss {best['val_loss']:.4f}" if best.get("val_loss") is not None else ""
    return f"best val {result.select_by} {shown} at epoch {result.best_epoch}{loss}"


def register(app: typer.Typer) -> None:
    app.command("train", epilog=EPILOG)(handle_errors(train))
