"""Stage: images or video files (+ annotations) -> a resumable features file (``mlgraph/features@1``).

The inputs decide the source (core/features/sources.py): images give backbone maps; video files
give one pooled vector per sampled frame, stored as ``mlgraph import-yt8m`` stores videos. Either
way one loop writes the file (core/features/extraction.py): rows are appended to
``.<output>.partial``; a run stopped at any point continues where it stopped when started again
with the same inputs and settings; changed inputs or settings start over. Unreadable inputs are
skipped, never fatal: they are listed in the file's ``skipped`` dataset and in
``<output>.skipped.txt``.

Images may be extracted in shards (``--shard I/N``, or one per rank under ``torchrun``) and
merged back into the file one process writes (core/features/shards.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import h5py
import torch

from mlgraph_cli.core.annotations import YAML_SUFFIXES, yolo_yaml
from mlgraph_cli.core.device import resolve_device
from mlgraph_cli.core.features.backbones.build import build_backbone
from mlgraph_cli.core.features.config import ExtractConfig, default_layers
from mlgraph_cli.core.features.extraction import Extracted, extract_rows, source_digest
from mlgraph_cli.core.features.plan import plan_for, unique_skipped, wants_clips, write_skipped_report
from mlgraph_cli.core.features.shards import (finished_shard, merge_shards, parse_shard, read_done, shard_of,
                                              shard_path, wait_for_shards)
from mlgraph_cli.core.features.sources import ClipSource, ImageSource
from mlgraph_cli.core.features.workers import resolve_parallelism
from mlgraph_cli.core.io.outputs import check_output
from mlgraph_cli.core.media.images import SkippedImage
from mlgraph_cli.core.progress import NULL_PROGRESS, ProgressHook
from mlgraph_cli.core.project import merge_config, resolve_input, resolve_output
from mlgraph_cli.core.training.distributed import dist_info_from_env
from mlgraph_cli.errors import MlgraphError

# split -> ([dataset] images key, [dataset] annotations key, [artifacts] key)
SPLIT_KEYS = {"train": ("images", "annotations", "features"),
              "val": ("val_images", "val_annotations", "val_features"),
              "test": ("test_images", "test_annotations", "test_features")}


@dataclass
class ExtractResult:
    """What ``mlgraph extract`` reports. ``noun``: "image" or "clip" (what ``rows`` and ``inputs`` count)."""

    output: Path
    noun: str
    rows: int  # inputs written
    inputs: int  # inputs planned (written + skipped)
    skipped: list[SkippedImage]
    skipped_report: Path | None
    resumed_from: int  # inputs already done by an interrupted run (0 = fresh)
    shapes: dict[str, tuple[int, int, int]]  # dataset -> (D, H, W); clips: {"features": (D, T, 1)}
    backbone: str
    weights: str
    layers: list[str]
    image_size: int
    device: str
    seconds: float  # this run's extraction time (model building excluded)
    labels: int | None  # number of labels, None without annotations
    notes: list[str] = field(default_factory=list)
    provenance: Any = None  # what the file's provenance attribute holds
    frames: int = 0  # clips: frames decoded and run through the backbone by this run
    sampling: dict[str, Any] = field(default_factory=dict)  # clips: how frames were sampled

    @property
    def per_second(self) -> float:
        """Inputs (images or clips) per second of this run."""
        done = self.inputs - self.resumed_from
        return done / self.seconds if self.seconds > 0 else 0.0

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def run_extract(images: Sequence[str | os.PathLike] | None, output: str | os.PathLike | None,
                overrides: dict[str, Any], *, annotations: str | os.PathLike | None = None, split: str = "train",
                project=None, allow_outside_paths: bool = False, shard: str | None = None,
                progress: ProgressHook = NULL_PROGRESS) -> ExtractResult:
    """``mlgraph extract`` as one call. Paths left out (None) come from ``project`` (its ``split``
    images and, with them, its annotations and format; ``[artifacts]`` features, or features.h5);
    ``overrides``: ExtractConfig values from flags (None = not given), over ``[extract]``.

    A YOLO dataset (``data.yaml``, given as IMAGES or as annotations) holds its own splits:
    ``split`` picks one (unless ``image_set`` is given), and the images are those it names. In a
    project whose ``[dataset] annotations`` is such a dataset, ``--split val`` reads its val split
    when no ``val_annotations`` is set.

    With annotations, the label columns are the declared ones (``labels``: a label file or a
    graph); in a project they default to its graph's labels once ``mlgraph build-graph`` wrote it.
    """
    img_key, ann_key, out_key = SPLIT_KEYS[split]
    overrides = dict(overrides)
    fmt = overrides.get("format")
    if annotations is None and images and len(images) == 1 and Path(images[0]).suffix.lower() in YAML_SUFFIXES \
            and Path(images[0]).is_file():
        annotations, images = images[0], None  # `mlgraph extract data.yaml --split val`
    if not images and project is not None:
        project_fmt = project.dataset.get("format") or None
        if annotations is None:
            annotations = project.dataset_path(ann_key)
            if annotations is None and _yolo(project.dataset_path("annotations"), project_fmt):
                annotations = project.dataset_path("annotations")  # one dataset yaml for every split
            if annotations is not None and fmt is None:
                fmt = overrides["format"] = project_fmt
        if _yolo(annotations, fmt):  # the yaml names its images
            images = [str(project.dataset_path(img_key))] if project.dataset_path(img_key) else None
        else:
            images = [str(resolve_input(None, project, dataset=img_key, what=f"{img_key} folder",
                                        fix="e.g. `mlgraph extract images/`"))]
    if annotations is not None and overrides.get("image_set") is None and _yolo(annotations, fmt):
        overrides["image_set"] = split
    if annotations is not None and overrides.get("labels") is None and project is not None \
            and "labels" not in project.section("extract") and project.artifact("graph").is_file():
        overrides["labels"] = str(project.artifact("graph"))  # every split gets the graph's label columns
    config = merge_config(ExtractConfig, project, "extract", overrides)
    dest = resolve_output(output, project, out_key, "features.h5")
    return extract(images, dest, config, annotations=annotations, allow_outside_paths=allow_outside_paths,
                   progress=progress, shard=parse_shard(shard) if shard else None)


def _yolo(path: str | os.PathLike | None, fmt: str | None) -> bool:
    """Whether ``path`` is an ultralytics YOLO dataset (its yaml, or the folder holding data.yaml)."""
    if path is None or (fmt is not None and fmt != "yolo"):
        return False
    return fmt == "yolo" or yolo_yaml(Path(path)) is not None


def extract(images: Sequence[str | os.PathLike] | None, output: str | os.PathLike, config: ExtractConfig, *,
            annotations: str | os.PathLike | None = None, allow_outside_paths: bool = False,
            progress: ProgressHook = NULL_PROGRESS, shard: tuple[int, int] | None = None) -> ExtractResult:
    """Extract backbone features of ``images`` (folder, files, globs, .txt lists; images or video
    files) into ``output``.

    With ``annotations`` the inputs are the annotated ones (file names joined to the single
    ``images`` folder) and their labels are stored; without, every input found is used. ``shard``
    (I, N) writes only part I of N, to ``<output stem>.shard-I-of-N.h5``. Under ``torchrun`` each
    rank writes the shard of its rank and rank 0 merges them into ``output`` once all are there.
    """
    info = dist_info_from_env()
    clips = wants_clips(images, annotations, label_delimiter=config.label_delimiter)
    if clips:
        if shard is not None or info.enabled:
            raise MlgraphError("video files are extracted in one process (drop --shard, or run without torchrun)")
        ClipSource.check(config)
    if shard is None and info.enabled:  # torchrun: this rank's shard, merged by rank 0 below
        shard = (info.rank, info.world_size)
    dest = Path(output)
    check_output(dest, [annotations, *(images or [])], stream_ok=False)  # before anything is read
    plan = plan_for(images, annotations, config, video=clips, allow_outside_paths=allow_outside_paths,
                    progress=progress)
    device = resolve_device(config.device)
    if device.type == "cuda" and shard is not None and info.local_rank:  # torchrun: the GPU of this rank
        device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)  # pinned memory and kernels on this GPU, not all on GPU 0
    config = resolve_parallelism(config, device.type)
    if not config.layers:  # the stages stored by default (core/features/config.py)
        config = replace(config, layers=default_layers(config.backbone, video=clips))
    torch.set_num_threads(int(config.threads))
    backbone = build_backbone(config.backbone, config.weights, config.layers, config.image_size, device,
                              seed=config.seed, offline=config.offline or None)
    source = ClipSource(plan, backbone, config, device, progress) if clips else ImageSource(plan, backbone, config,
                                                                                             device)
    digest = source_digest(source)
    if shard is not None:  # this process's part of the plan, in a file of its own (core/features/shards.py)
        start, stop, keys, digest = shard_of(source.total, digest, shard, int(config.batch_size))
        source, dest = source.shard(start, stop, keys), shard_path(dest, *shard)
    params = dict(images=[os.fspath(p) for p in (images or [])], annotations=annotations, output=dest,
                  **{k: getattr(config, k) for k in config.__dataclass_fields__})
    if shard is not None and finished_shard(dest, digest):
        progress.log(f"{dest}: this shard is already complete")
        done = _done(dest)
    else:
        done = extract_rows(source, dest, command="mlgraph extract", params=params, progress=progress,
                            digest=digest, allow_empty=shard is not None)
    result = _result(done, source, device)
    if info.enabled and shard is not None and info.is_main:
        result = _merge_ranks(result, Path(output), info.world_size, progress)
    return result


def _done(dest: Path) -> Extracted:
    """A finished shard, as the loop would have reported it (nothing run)."""
    lines, prov = read_done(dest)
    skipped = unique_skipped(lines)
    with h5py.File(dest, "r") as f:
        rows, inputs = int(f.attrs["rows_done"]), int(f.attrs["inputs_done"])
    return Extracted(output=dest, rows=rows, inputs=inputs, skipped=skipped,
                     skipped_report=write_skipped_report(dest, skipped), resumed_from=inputs, seconds=0.0,
                     provenance=prov, complete=False)


def _result(done: Extracted, source, device) -> ExtractResult:
    backbone = source.backbone
    clip = source.noun == "clip"
    layout = source.layout()
    return ExtractResult(output=done.output, noun=source.noun, rows=done.rows, inputs=done.inputs,
                         skipped=done.skipped, skipped_report=done.skipped_report, resumed_from=done.resumed_from,
                         shapes={"features": (layout.channels, layout.frames, 1)} if clip else dict(layout.shapes),
                         backbone=backbone.name, weights=backbone.weights, layers=list(backbone.layers),
                         image_size=backbone.image_size, device=str(device), seconds=done.seconds,
                         labels=len(source.label_names) if source.label_names is not None else None,
                         notes=list(source.plan.notes), provenance=done.provenance,
                         frames=source.decoded if clip else 0,
                         sampling=source.sampling.to_dict() if clip else {})


def _merge_ranks(result: ExtractResult, output: Path, n: int, progress: ProgressHook) -> ExtractResult:
    """Rank 0 under torchrun: wait for every rank's shard, merge them into ``output``, remove them."""
    paths = [shard_path(output, i, n) for i in range(n)]
    wait_for_shards(paths, progress)
    merged, rows = merge_shards(paths, output, extra_attrs={"provenance": result.provenance})
    skipped = unique_skipped(read_done(merged)[0])
    for p in paths:  # the merged file holds everything they held
        p.unlink(missing_ok=True)
        write_skipped_report(p, [])
    return replace(result, output=merged, rows=rows, inputs=rows + len(skipped), skipped=skipped,
                   skipped_report=write_skipped_report(output, skipped))
