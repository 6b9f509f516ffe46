"""``mlgraph train``: train a head on cached features (or a backbone + head on images) into a run folder."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from mlgraph_cli.cli._common import progress_bar, err, handle_errors, load_project, summary
from mlgraph_cli.cli._options import config_option, given, key_values, plain_option
from mlgraph_cli.core.graph.config import ADJACENCY_KINDS  # plain tuples and dataclasses: no torch
from mlgraph_cli.core.training.config import (CACHES, HEAD_CHOICES, LOSSES, OPTIMIZERS, SCHEDULES, SELECT_BY,
                                              TrainConfig)

EPILOG = ("Example: mlgraph train --features features.h5 --embeddings embeddings.h5 --head cma --epochs 20 "
          "-o runs/train/cma")
DATA, OPT, E2E, MORE = "Data", "Optimisation", "End to end (images instead of features)", "More"
_t = partial(config_option, TrainConfig)


def train(
    *,
    features: Annotated[Optional[Path], plain_option("--features", help="Training features (HDF5 from `mlgraph "
                                                     "extract`, or `mlgraph import-yt8m` for video). Default: "
                                                     "\\[artifacts] features.", panel=DATA)] = None,
    val_features: Annotated[Optional[Path], plain_option("--val-features", help="Validation features. Default: "
                                                         "\\[artifacts] val_features if it exists, else --val-fraction "
                                                         "of the training features.", panel=DATA)] = None,
    embeddings: Annotated[Optional[Path], plain_option("--embeddings", help="Label embeddings from `mlgraph embed` "
                                                       "(cma, ms-cma, mlgcn; the query head's queries). Default: "
                                                       "\\[artifacts] embeddings.", panel=DATA)] = None,
    graph: Annotated[Optional[Path], plain_option("--graph", help="Label graph from `mlgraph build-graph` (mlgcn's "
                                                  "adjacency). Default: \\[artifacts] graph.", panel=DATA)] = None,
    labels: Annotated[Optional[Path], plain_option("--labels", help="The dataset's label set, the run's labels in "
                                                   "order: a file of one label per line, or the graph from `mlgraph "
                                                   "build-graph`. Features files lacking one of them read it as having "
                                                   "no positive. Default: \\[artifacts] graph when it exists, else the "
                                                   "training features' labels.", panel=DATA)] = None,
    val_fraction: Annotated[Optional[float], _t("val_fraction", help="Share of the training data held out for "
                                                "validation when no validation file is given; a reproducible split by "
                                                "--seed, recorded in split.json. 0 = no validation.",
                                                panel=DATA)] = None,
    cache: Annotated[Optional[Literal[CACHES]], _t("cache", help="ram: load the features into memory; disk: read the "
                                                   "file per batch; auto: ram when it fits in half the free memory.",
                                                   panel=DATA)] = None,
    workers: Annotated[Optional[int], _t("workers", min=0, help="DataLoader worker processes.", panel=DATA)] = None,
    head: Annotated[Optional[Literal[HEAD_CHOICES]], _t("head", help="Classification head: query = label queries "
                                                        "(Query2Label / ML-Decoder), probe = a linear probe fitted by "
                                                        "logistic regression (one fit, --epochs does not apply); on "
                                                        "video features cma, gap, gmp, query, probe are temporal and "
                                                        "frame-max is a frame-level reference.")] = None,
    epochs: Annotated[Optional[int], _t("epochs", min=1, help="Epochs.")] = None,
    seed: Annotated[Optional[int], _t("seed", help="Seed of the initial weights, batch order and split.")] = None,
    threshold: Annotated[Optional[float], _t("threshold", help="Probability at which a label counts as predicted "
                                             "(CP/CR/F1 and predict).")] = None,
    output: Annotated[Optional[Path], plain_option("-o", "--output", help="Run folder. Default: runs/train/exp, exp2, "
                                                   "... (\\[artifacts] runs in a project).")] = None,
    name: Annotated[Optional[str], plain_option("--name", help="Run name under the runs folder (numbered if "
                                                "taken).")] = None,
    resume: Annotated[Optional[Path], plain_option("--resume", help="Continue this stopped run exactly where its last "
                                                   "checkpoint left it, with its own settings.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite the run in -o if there is one.")] = False,
    batch_size: Annotated[Optional[int], _t("batch_size", min=1, help="Global batch size (split over torchrun "
                                            "processes).", panel=OPT)] = None,
    lr: Annotated[Optional[float], _t("lr", help="Peak learning rate of the head.", panel=OPT)] = None,
    weight_decay: Annotated[Optional[float], _t("weight_decay", help="Weight decay (not on biases and norms).",
                                                panel=OPT)] = None,
    optimizer: Annotated[Optional[Literal[OPTIMIZERS]], _t("optimizer", help="sgd: with Nesterov momentum "
                                                             "(--momentum).", panel=OPT)] = None,
    schedule: Annotated[Optional[Literal[SCHEDULES]], _t("schedule", help="Learning-rate schedule, stepped per "
                                                         "batch.", panel=OPT)] = None,
    warmup_epochs: Annotated[Optional[float], _t("warmup_epochs", help="Linear warm-up (cosine) or rise share "
                                                 "(onecycle).", panel=OPT)] = None,
    clip_grad: Annotated[Optional[float], _t("clip_grad", help="Max gradient norm, 0 = off.", panel=OPT)] = None,
    amp: Annotated[Optional[bool], _t("amp", "--amp/--no-amp", help="Mixed precision (CUDA only).", panel=OPT)] = None,
    probe_epochs: Annotated[Optional[int], _t("probe_epochs", min=0, help="cma, ms-cma: epochs of the mean-pool probe "
                                              "the head starts from, before --epochs.", panel=OPT)] = None,
    loss: Annotated[Optional[Literal[LOSSES]], _t("loss", help="bce: binary cross-entropy; asl: the asymmetric loss "
                                                  "(Ridnik et al., ICCV 2021).", panel=OPT)] = None,
    asl_gamma_neg: Annotated[Optional[float], _t("asl_gamma_neg", min=0.0, help="ASL: focusing parameter of negative "
                                                 "targets.", panel=OPT)] = None,
    asl_gamma_pos: Annotated[Optional[float], _t("asl_gamma_pos", min=0.0, help="ASL: focusing parameter of positive "
                                                 "targets.", panel=OPT)] = None,
    asl_clip: Annotated[Optional[float], _t("asl_clip", min=0.0, max=0.99, help="ASL: probability margin; negatives "
                                            "below it add nothing to the loss.", panel=OPT)] = None,
    patience: Annotated[Optional[int], _t("patience", min=0, help="Stop when the best epoch (--select-by) is this "
                                          "many epochs back; 0 = never.", panel=OPT)] = None,
    select_by: Annotated[Optional[Literal[SELECT_BY]], _t("select_by", help="Which epoch best.safetensors keeps: the "
                                                          "highest validation mAP or CF1, or the lowest validation "
                                                          "loss; ties go to the lower validation loss.",
                                                          panel=OPT)] = None,
    device: Annotated[Optional[str], _t("device", help="auto, cpu, cuda, cuda:N. Under torchrun each process takes "
                                        "cuda:LOCAL_RANK.", panel=OPT)] = None,
    images: Annotated[Optional[Path], plain_option("--images", help="Image folder: train end to end, fine-tuning the "
                                                   "backbone.", panel=E2E)] = None,
    annotations: Annotated[Optional[Path], plain_option("--annotations", help="Annotations of --images. Default: "
                                                        "\\[dataset] annotations.", panel=E2E)] = None,
    val_images: Annotated[Optional[Path], plain_option("--val-images", help="Validation image folder.",
                                                       panel=E2E)] = None,
    val_annotations: Annotated[Optional[Path], plain_option("--val-annotations", help="Validation annotations.",
                                                            panel=E2E)] = None,
    backbone: Annotated[Optional[str], _t("backbone", help="As in `mlgraph extract`.", panel=E2E)] = None,
    weights: Annotated[Optional[str], _t("weights", help="Backbone weights: a name, a file, or none.",
                                         panel=E2E)] = None,
    image_size: Annotated[Optional[int], _t("image_size", min=1, help="Input side in px.", panel=E2E)] = None,
    layer: Annotated[Optional[list[str]], _t("layers", "--layer", help="Backbone stage; twice for ms-cma.",
                                             panel=E2E)] = None,
    backbone_lr_scale: Annotated[Optional[float], _t("backbone_lr_scale", help="Backbone lr = lr x this.",
                                                     panel=E2E)] = None,
    flip: Annotated[Optional[bool], _t("flip", "--flip/--no-flip", help="Random horizontal flips of the training "
                                       "images.", panel=E2E)] = None,
    head_option: Annotated[Optional[list[str]], plain_option(
        "--head-option", metavar="KEY=VALUE", help="An option of the head (e.g. hidden=512, init=random), the value "
                                                   "read as TOML; repeat for more. Merged over \\[train] head_options.",
        panel=MORE)] = None,
    momentum: Annotated[Optional[float], _t("momentum", min=0.0, help="SGD momentum (--optimizer sgd).",
                                            panel=MORE)] = None,
    min_lr_ratio: Annotated[Optional[float], _t("min_lr_ratio", min=0.0, help="Where the cosine and onecycle "
                                                "schedules end, as a share of --lr.", panel=MORE)] = None,
    shuffle: Annotated[Optional[bool], _t("shuffle", "--shuffle/--no-shuffle", help="Shuffle the training batches "
                                          "each epoch.", panel=MORE)] = None,
    adjacency: Annotated[Optional[Literal[ADJACENCY_KINDS]], _t("adjacency", help="mlgcn: the adjacency its graph "
                                                                "convolution reads (parameters: \\[train] "
                                                                "adjacency_params).", panel=MORE)] = None,
    tensorboard: Annotated[Optional[bool], _t("tensorboard", "--tensorboard/--no-tensorboard", help="Write "
                                              "TensorBoard event files into the run folder (pip install "
                                              "'mlgraph\\[tensorboard]').")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Train a classification head on cached features (or end to end on images) and write a run folder:
    best/last weights (safetensors), config.json, metrics.jsonl. Works under `torchrun` too.

    On video features from `mlgraph import-yt8m` the head is temporal (cma, gap, gmp over the frames)."""
    from mlgraph_cli.core.training.distributed import dist_info_from_env
    from mlgraph_cli.errors import MlgraphError
    from mlgraph_cli.stages.train import TrainingInterrupted, run_train
    from mlgraph_cli.stages.train.inputs import TrainInputs

    overrides = given(
        head=head, epochs=epochs, seed=seed, threshold=threshold, batch_size=batch_size, lr=lr,
        weight_decay=weight_decay, optimizer=optimizer, schedule=schedule, warmup_epochs=warmup_epochs,
        clip_grad=clip_grad, amp=amp, device=device, val_fraction=val_fraction, cache=cache, workers=workers,
        backbone=backbone, weights=weights, image_size=image_size, layers=layer or None, flip=flip,
        backbone_lr_scale=backbone_lr_scale, probe_epochs=probe_epochs, patience=patience, loss=loss,
        asl_gamma_neg=asl_gamma_neg, asl_gamma_pos=asl_gamma_pos, asl_clip=asl_clip, select_by=select_by,
        tensorboard=tensorboard, momentum=momentum, min_lr_ratio=min_lr_ratio, shuffle=shuffle, adjacency=adjacency,
        head_options=key_values(head_option, "--head-option") or None,
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
