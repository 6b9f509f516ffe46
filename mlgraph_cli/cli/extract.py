"""``mlgraph extract``: run images through a CNN backbone and store its feature maps."""

from __future__ import annotations

from typing import Annotated, Literal, Optional

import typer

from mlgraph_cli.cli._common import progress_bar, handle_errors, load_project, summary
from mlgraph_cli.cli._options import config_option, plain_option
from mlgraph_cli.core.features.config import SPLITS, ExtractConfig  # plain data: no torch
from mlgraph_cli.core.graph.config import LABEL_ORDERS

EPILOG = ("Example: mlgraph extract images/ --annotations annotations.json -o features.h5 "
          "--backbone resnet18 --weights none --image-size 64")


def extract(
    images: Annotated[Optional[list[str]], typer.Argument(
        help="Images: a folder (searched recursively), files, globs or a .txt list. With --annotations, the "
             "folder their file names are relative to. An ultralytics YOLO data.yaml: its --split images, with "
             "their labels. Default: \\[dataset] images (or val_images/test_images with --split).",
        show_default=False)] = None,
    *,
    images_option: Annotated[Optional[str], plain_option(
        "--images", help="The same as IMAGES (the images folder).")] = None,
    annotations: Annotated[Optional[str], plain_option(
        "--annotations", "-a", help="Annotations whose labels are stored with the features (any format "
                                    "build-graph reads). Default: \\[dataset] annotations when IMAGES is left out.")] = None,
    output: Annotated[Optional[str], plain_option(
        "-o", "--output", help="Features file (.h5). Default: \\[artifacts] features (val_features, "
                               "test_features with --split), or features.h5.")] = None,
    split: Annotated[Literal[SPLITS], typer.Option(
        "--split", help="In a project: which \\[dataset] images/annotations to read and which \\[artifacts] "
                        "file to write. A YOLO dataset: which of its splits to read.")] = "train",
    backbone: Annotated[Optional[str], config_option(ExtractConfig, "backbone",
        "--backbone", "-b", help="efficientnet-lite0 (ImageNet weights ship with it) or a torchvision "
                                 "CNN: resnet50, resnet101 (the paper's), convnext_tiny, ...; timm/NAME with timm "
                                 "installed.")] = None,
    weights: Annotated[Optional[str], config_option(ExtractConfig, "weights",
        "--weights", "-w", help="DEFAULT, a torchvision weights name (IMAGENET1K_V2 or "
                                "ResNet101_Weights.IMAGENET1K_V2; downloaded into $TORCH_HOME/hub/checkpoints "
                                "unless --offline), a state-dict file (.pth/.safetensors), or none (random).")] = None,
    image_size: Annotated[Optional[int], config_option(ExtractConfig, "image_size", min=1, help="Square input side in "
                                                       "px; the whole image is resized (no crop).")] = None,
    layer: Annotated[Optional[list[str]], plain_option(
        "--layer", "-l", help="Stage to keep (default: the last; resnet: layer1..layer4, efficientnet-lite0: "
                              "stem, stage1..stage7, head). Twice: the deeper one is `features`, the other "
                              "`features_aux` (for --head ms-cma).")] = None,
    batch_size: Annotated[Optional[int], config_option(ExtractConfig, "batch_size", min=1,
                                                       help="Images per forward pass.")] = None,
    workers: Annotated[Optional[int], plain_option("--workers", min=0, help="Processes decoding and resizing "
                                                   "images (0: the main process). Default: from the cores: 0 up to 4 "
                                                   "on the CPU, one per 4 cores above; with a GPU one per core but one.")] = None,
    threads: Annotated[Optional[int], plain_option("--threads", min=1, help="Torch threads for the forward pass. "
                                                   "Default: the cores not used by --workers (shared among the "
                                                   "processes of a torchrun node).")] = None,
    device: Annotated[Optional[str], config_option(ExtractConfig, "device", help="auto (cuda if present, else cpu), "
                                                   "cpu, cuda, cuda:N.")] = None,
    format: Annotated[Optional[str], plain_option("--format", help="Annotation format: coco|voc|nuswide|"
                                                  "openimages|csv|jsonl|yolo (auto-detected when left out).")] = None,
    label_order: Annotated[Optional[Literal[LABEL_ORDERS]], config_option(
        ExtractConfig, "label_order", help="Must match `mlgraph build-graph --label-order`.")] = None,
    image_set: Annotated[Optional[str], plain_option("--image-set", help="VOC image set (default trainval) or "
                                                     "NUS-WIDE split of the annotations (a YOLO dataset's split: "
                                                     "--split).")] = None,
    labels: Annotated[Optional[str], plain_option(
        "--labels", help="The dataset's label set, so every split stores the same columns in the same order: a "
                         "file of one label per line, or the graph from `mlgraph build-graph` (its order). A label "
                         "no image of this split carries is stored as an all-zero column. Default: the project's "
                         "\\[artifacts] graph when it exists, else the labels of the annotations.")] = None,
    label_delimiter: Annotated[Optional[str], plain_option(
        "--label-delimiter", help="CSV delimiter between labels within a row (default ';'), as in "
                                  "`mlgraph build-graph`.")] = None,
    seed: Annotated[Optional[int], config_option(ExtractConfig, "seed",
                                                 help="Random init seed for --weights none.")] = None,
    fps: Annotated[Optional[float], config_option(ExtractConfig, "fps",
        "--fps", min=0.0, help="Video files: frames sampled per second of clip.")] = None,
    min_frames: Annotated[Optional[int], config_option(ExtractConfig, "min_frames",
        "--min-frames", min=0, help="Video files: at least this many frames, spread over a clip that --fps "
                                    "would sample more thinly (never more than the clip has; 0: no floor).")] = None,
    frames: Annotated[Optional[int], plain_option(
        "--frames", min=1, help="Video files: this many frames spread over each clip, instead of --fps.")] = None,
    max_frames: Annotated[Optional[int], config_option(ExtractConfig, "max_frames",
        "--max-frames", min=1, help="Video files: at most this many frames per clip (more are spread over the "
                                    "whole clip instead).")] = None,
    offline: Annotated[bool, typer.Option("--offline", help="Never download weights (also MLGRAPH_OFFLINE=1 or "
                                                           "HF_HUB_OFFLINE=1); a missing file is an error.")] = False,
    allow_outside_paths: Annotated[bool, typer.Option(
        "--allow-outside-paths", help="Read annotation file names that leave the images folder (absolute, or "
                                      "climbing out with ..). Off by default: an annotation file may come from "
                                      "anyone, and only this flag, never mlgraph.toml, turns it on.")] = False,
    shard: Annotated[Optional[str], plain_option(
        "--shard", help="I/N: extract only part I of N (0-based) into OUTPUT-stem.shard-I-of-N.h5, for job arrays; "
                        "join the parts with `mlgraph merge`. Under torchrun each rank does this by itself.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="List each skipped image on stderr.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no notes.")] = False,
) -> None:
    """Extract backbone feature maps (and labels) of a set of images into an HDF5 features file.

    Video files (.mp4, .mkv, .webm, .avi, .mov) instead of images: sampled frames (--fps,
    --min-frames, --frames, --max-frames) become one pooled vector each, stored as
    `mlgraph import-yt8m` stores clips.

    Resumable: run the same command again after an interruption and it continues where it stopped.
    Unreadable images (and clips) are skipped and listed in OUTPUT.skipped.txt.
    """
    from mlgraph_cli.errors import MlgraphError
    from mlgraph_cli.stages.extract import run_extract

    if images and images_option:
        raise MlgraphError("give the images folder once: as IMAGES or as --images, not both")
    if images_option:
        images = [images_option]
    overrides = dict(backbone=backbone, weights=weights, image_size=image_size, layers=layer or None,
                     batch_size=batch_size, workers=workers, threads=threads, device=device, format=format,
                     label_order=label_order, image_set=image_set, label_delimiter=label_delimiter, labels=labels,
                     seed=seed, offline=offline or None, fps=fps, min_frames=min_frames, frames=frames,
                     max_frames=max_frames)
    progress = progress_bar(quiet=quiet)
    try:
        result = run_extract(images, output, overrides, annotations=annotations, split=split,
                             project=load_project(), allow_outside_paths=allow_outside_paths, shard=shard,
                             progress=progress)
    finally:
        progress.stop()
    if not quiet:
        for note in result.notes:
            progress.log(note)
    if verbose:
        for s in result.skipped:
            progress.log(f"skipped {s.path}: {s.reason}")
    noun = result.noun
    if noun == "clip":  # video files: one pooled vector per sampled frame
        width, frames = result.shapes["features"][:2]
        shapes = f"{width} features x {frames} frames ({sampling_words(result.sampling)})"
        rate = f"{result.frames_per_s:,.1f} frames/s"
    else:
        shapes = ", ".join(f"{k} {'x'.join(map(str, v))}" for k, v in result.shapes.items())
        rate = f"{result.per_second:,.1f} img/s"
    labels = f", {result.labels} labels" if result.labels is not None else ", no labels"
    resumed = f", resumed after {result.resumed_from:,}" if result.resumed_from else ""
    summary(f"Wrote {result.output}: {result.rows:,} {noun}s{labels}; {shapes} "
            f"({result.backbone} {'+'.join(result.layers)}, {result.image_size} px, weights {result.weights}, "
            f"{result.device}); {rate}{resumed}.")
    if result.skipped:
        summary(f"Skipped {len(result.skipped):,} unreadable {noun}(s), listed in {result.skipped_report}"
                + ("" if verbose else " (--verbose lists them here)") + ".")


def sampling_words(sampling: dict) -> str:
    """How a clip's frames were chosen, in a few words: "1 fps, at least 16 a clip, at most 300"."""
    if sampling.get("frames"):
        return f"{sampling['frames']} spread over each clip, at most {sampling['max_frames']}"
    floor = f", at least {sampling['min_frames']} a clip" if sampling.get("min_frames", 0) > 1 else ""
    return f"{sampling['fps']:g} fps{floor}, at most {sampling['max_frames']}"


def register(app: typer.Typer) -> None:
    app.command("extract", epilog=EPILOG)(handle_errors(extract))
