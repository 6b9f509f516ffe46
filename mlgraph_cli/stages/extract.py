"""Stage: images (+ annotations) -> a resumable features file of backbone maps (``mlgraph/features@1``).

Images are decoded and resized in DataLoader workers while the main process runs the backbone
and appends each batch to ``.<output>.partial`` (see :mod:`mlgraph_cli.core.features.file`). A run
stopped at any point continues where it stopped when started again with the same inputs and
settings; changed inputs or settings start over. Unreadable images are skipped, never fatal: they
are listed in the file's ``skipped`` dataset and in ``<output>.skipped.txt``.
"""

from __future__ import annotations

import errno
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

from mlgraph_cli.core.features.config import ExtractConfig
from mlgraph_cli.core.features.plan import (
    ExtractPlan, labels_sha, plan_folder, plan_with_annotations, unique_skipped, write_skipped_report,
)
from mlgraph_cli.core.progress import NULL_PROGRESS, ProgressHook
from mlgraph_cli.core.features.workers import image_loader, resolve_parallelism
from mlgraph_cli.core.media.images import SkippedImage
from mlgraph_cli.core.features.shards import finished_shard, read_done, take_shard
from mlgraph_cli.errors import MlgraphError

# Test hook (tests/test_extract.py): after this many rows are on disk, touch the file named by
# the second variable and wait to be killed, so a kill lands at a known point.
PAUSE_ROWS_ENV = "MLGRAPH_EXTRACT_PAUSE_AFTER_ROWS"
PAUSE_FILE_ENV = "MLGRAPH_EXTRACT_PAUSE_FILE"


@dataclass
class ExtractResult:
    output: Path
    rows: int  # images written
    inputs: int  # images planned (written + skipped)
    skipped: list[SkippedImage]
    skipped_report: Path | None
    resumed_from: int  # inputs already done by an interrupted run (0 = fresh)
    shapes: dict[str, tuple[int, int, int]]
    backbone: str
    weights: str
    layers: list[str]
    image_size: int
    device: str
    seconds: float  # this run's extraction time (model building excluded)
    labels: int | None  # number of labels, None without annotations
    notes: list[str] = field(default_factory=list)
    provenance: Any = None  # what the file's provenance attribute holds

    @property
    def images_per_s(self) -> float:
        done = self.inputs - self.resumed_from
        return done / self.seconds if self.seconds > 0 else 0.0


# split -> ([dataset] images key, [dataset] annotations key, [artifacts] key)
SPLIT_KEYS = {"train": ("images", "annotations", "features"),
              "val": ("val_images", "val_annotations", "val_features"),
              "test": ("test_images", "test_annotations", "test_features")}


def run_extract(images: Sequence[str | os.PathLike] | None, output: str | os.PathLike | None,
                overrides: dict[str, Any], *, annotations: str | os.PathLike | None = None, split: str = "train",
                project=None, allow_outside_paths: bool = False, shard: str | None = None,
                progress: ProgressHook = NULL_PROGRESS) -> ExtractResult:
    """``mlgraph extract`` as one call. Paths left out (None) come from ``project`` (its ``split``
    images and, with them, its annotations and format; ``[artifacts]`` features, or features.h5);
    ``overrides``: ExtractConfig values from flags (None = not given), over ``[extract]``."""
    from mlgraph_cli.core.project import merge_config, resolve_input, resolve_output
    from mlgraph_cli.core.features.shards import parse_shard

    img_key, ann_key, out_key = SPLIT_KEYS[split]
    overrides = dict(overrides)
    if not images and project is not None:
        images = [str(resolve_input(None, project, dataset=img_key, what=f"{img_key} folder",
                                    fix="e.g. `mlgraph extract images/`"))]
        if annotations is None and project.dataset_path(ann_key) is not None:
            annotations = str(project.dataset_path(ann_key))
            if overrides.get("format") is None:
                overrides["format"] = project.dataset.get("format") or None
    config = merge_config(ExtractConfig, project, "extract", overrides)
    dest = resolve_output(output, project, out_key, "features.h5")
    return extract(images, dest, config, annotations=annotations, allow_outside_paths=allow_outside_paths,
                   progress=progress, shard=parse_shard(shard) if shard else None)


def extract(images: Sequence[str | os.PathLike] | None, output: str | os.PathLike, config: ExtractConfig, *,
            annotations: str | os.PathLike | None = None, allow_outside_paths: bool = False,
            progress: ProgressHook = NULL_PROGRESS, shard: tuple[int, int] | None = None) -> ExtractResult:
    """Extract backbone maps of ``images`` (folder, files, globs, .txt lists) into ``output``.

    With ``annotations`` the images are the annotated ones (file names joined to the single
    ``images`` folder) and their labels are stored; without, every image found is used.
    ``shard`` (I, N) writes only part I of N, to ``<output stem>.shard-I-of-N.h5`` (see
    :mod:`mlgraph_cli.core.features.shards`). Under ``torchrun`` each rank writes the shard of its rank and
    rank 0 merges them into ``output`` once all are there.
    """
    from mlgraph_cli.core.training.distributed import dist_info_from_env
    from mlgraph_cli.core.features.shards import merge_shards, shard_path, wait_for_shards
    from mlgraph_cli.core.features.clips import extract_clips, wants_clips

    info = dist_info_from_env()
    if wants_clips(images, annotations):  # video files: per-frame vectors (core/features/clips.py)
        if shard is not None or info.enabled:
            raise MlgraphError("video files are extracted in one process (drop --shard, or run without torchrun)")
        return extract_clips(images, output, config, annotations=annotations,
                             allow_outside_paths=allow_outside_paths, progress=progress)
    if shard is not None or not info.enabled:
        return _extract(images, output, config, annotations, allow_outside_paths, progress, shard, 0)
    n = info.world_size
    result = _extract(images, output, config, annotations, allow_outside_paths, progress, (info.rank, n),
                      info.local_rank)
    if not info.is_main:
        return result
    paths = [shard_path(output, i, n) for i in range(n)]
    wait_for_shards(paths, progress)
    merged, rows = merge_shards(paths, output, extra_attrs={"provenance": result.provenance})
    skipped = unique_skipped(read_done(merged)[0])
    for p in paths:  # the merged file holds everything they held
        p.unlink(missing_ok=True)
        write_skipped_report(p, [])
    return replace(result, output=merged, rows=rows, inputs=rows + len(skipped), skipped=skipped,
                   skipped_report=write_skipped_report(Path(output), skipped))


def _extract(images, output, config: ExtractConfig, annotations, allow_outside_paths: bool, progress: ProgressHook,
             shard: tuple[int, int] | None, local_rank: int) -> ExtractResult:
    import torch

    from mlgraph_cli.core.io.hdf5 import h5_read_strings
    from mlgraph_cli.core.io.artifacts import provenance
    from mlgraph_cli.core.features.backbones.build import backbone_config, build_backbone
    from mlgraph_cli.core.device import resolve_device
    from mlgraph_cli.core.features.file import FeatureWriter, partial_path, plan_digest
    from mlgraph_cli.core.io.outputs import check_output_not_input

    dest = Path(output)
    check_output_not_input(dest, [annotations, *(images or [])])
    plan = (plan_with_annotations(images, Path(annotations), format=config.format, label_order=config.label_order,
                                  image_set=config.image_set, allow_outside_paths=allow_outside_paths,
                                  progress=progress)
            if annotations else plan_folder(images))
    device = resolve_device(config.device)
    if device.type == "cuda" and shard is not None and local_rank:  # torchrun: the GPU of this rank
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)  # pinned memory and kernels on this GPU, not all on GPU 0
    config = resolve_parallelism(config, device.type)
    torch.set_num_threads(int(config.threads))
    backbone = build_backbone(config.backbone, config.weights, config.layers, config.image_size, device,
                              seed=config.seed, offline=config.offline or None)
    bcfg = backbone_config(backbone)
    attrs: dict[str, Any] = {
        "backbone": backbone.name, "weights": backbone.weights, "image_size": backbone.image_size,
        "layers": backbone.layers, "outputs": backbone.outputs, "preprocessing": bcfg["preprocessing"],
        "backbone_config": bcfg, "images_root": os.fspath(plan.root.resolve()),
        "annotations": os.fspath(plan.annotations.resolve()) if plan.annotations else "",
        "annotations_format": plan.annotations_format or "",
    }
    # What identifies the output: inputs in order, their labels, every setting that changes a
    # number. Batch size, workers and device do not, so a resumed run may change them.
    digest_attrs = dict(attrs, labels_sha=labels_sha(plan.labels), label_names=plan.label_names,
                        max_pixels=config.max_pixels)
    digest = plan_digest([f"{i}\t{f}" for i, f in zip(plan.ids, plan.files)], digest_attrs)
    if shard is not None:  # this process's part of the plan, in a file of its own (core/features/shards.py)
        plan, dest, digest, attrs = take_shard(plan, dest, digest, attrs, shard, int(config.batch_size))
        if finished_shard(dest, digest):
            progress.log(f"{dest}: this shard is already complete")
            return _result(dest, plan, backbone, device, 0.0, *read_done(dest)[::-1], 0, {})
    writer = FeatureWriter(dest, shapes=dict(backbone.out_shapes), plan=digest, attrs=attrs,
                           label_names=plan.label_names)
    start = writer.inputs_done
    if writer.discarded:
        progress.log(f"{writer.path}: an interrupted run with other images or settings was "
                     "found; starting over")
    if writer.resumed:
        again = f"; {writer.dropped:,} row(s) were not on disk as counted and are extracted again" if writer.dropped else ""
        progress.log(f"Resuming {dest}: {start:,} of {len(plan.paths):,} images were done by an interrupted run{again}")
    t0 = time.perf_counter()
    try:
        _run_batches(plan, start, backbone, writer, config, device, progress)
        progress.stop()
        seconds = time.perf_counter() - t0
        skipped = unique_skipped(h5_read_strings(writer.file["skipped"]))
        rows, inputs = writer.rows_done, writer.inputs_done
        if rows == 0 and shard is None:  # a file of no images would only fail later, in train
            writer.close()
            partial_path(dest).unlink(missing_ok=True)
            report = write_skipped_report(dest, skipped)
            raise MlgraphError(f"{plan.root}: none of the {inputs:,} images could be read (reasons in {report}; "
                               "check the images, or pass the right folder)")
        params = dict(images=[os.fspath(p) for p in (images or [])], annotations=annotations,
                      output=dest, **{k: getattr(config, k) for k in config.__dataclass_fields__})
        prov = provenance("mlgraph extract", params)
        writer.finish({"provenance": prov, "skipped_count": len(skipped)})
    except KeyboardInterrupt:
        progress.stop()
        progress.log("Stopped; run the same command again to resume where it stopped")
        raise
    except OSError as exc:  # the disk filled up, went read-only, failed: what is written is kept
        progress.stop()
        raise _write_failed(exc, writer, len(plan.paths)) from None
    finally:
        writer.close()
    return _result(dest, plan, backbone, device, seconds, prov, [f"{x.path}\t{x.reason}" for x in skipped], start,
                   {"rows": rows, "inputs": inputs})


def _result(dest: Path, plan: ExtractPlan, backbone, device, seconds: float, prov, skipped_lines: list[str],
            start: int, counts: dict[str, int]) -> ExtractResult:
    skipped = unique_skipped(skipped_lines)
    rows = counts.get("rows", len(plan.paths) - len(skipped))
    return ExtractResult(output=dest, rows=rows, inputs=counts.get("inputs", len(plan.paths)), skipped=skipped,
                         skipped_report=write_skipped_report(dest, skipped), resumed_from=start,
                         shapes=dict(backbone.out_shapes), backbone=backbone.name, weights=backbone.weights,
                         layers=list(backbone.layers), image_size=backbone.image_size, device=str(device),
                         seconds=seconds, labels=len(plan.label_names) if plan.label_names is not None else None,
                         notes=plan.notes, provenance=prov)


def _run_batches(plan: ExtractPlan, start: int, backbone, writer, config: ExtractConfig, device,
                 progress: ProgressHook) -> None:
    """Decode (workers) -> forward (here) -> append, batch by batch, from input ``start`` on."""
    import torch

    # Channels-last: oneDNN's convolutions (CPU) and cuDNN's run up to 1.5x faster in this layout
    # than in the default NCHW one; the batch is built in it (see _collate), so nothing is copied.
    backbone = backbone.to(memory_format=torch.channels_last)
    loader = image_loader(plan.paths[start:], backbone.preprocessor, config, device)
    progress.start(f"Extracting {backbone.name}", total=len(plan.paths) - start, unit="img")
    pause_at = int(os.environ.get(PAUSE_ROWS_ENV, "0") or 0)
    with torch.inference_mode():
        for positions, ok, batch, bad in loader:
            kept = [start + i for i in ok]  # indices into the plan
            maps = {}
            if batch is not None:
                out = backbone(batch.to(device, non_blocking=True))  # {name: (B, D, H, W)}
                maps = {k: v.to(torch.float16).contiguous().cpu().numpy() for k, v in out.items()}
            writer.append(
                maps, [plan.ids[r] for r in kept], [plan.files[r] for r in kept],
                plan.labels[kept] if plan.labels is not None else None,
                inputs_consumed=len(positions),
                skipped=[f"{plan.files[start + i]}\t{reason}" for i, reason in bad],
            )
            progress.advance(len(positions))
            if pause_at and writer.rows_done >= pause_at:
                _pause_for_test()


def _write_failed(exc: OSError, writer, total: int) -> MlgraphError:
    """One line for a write that failed mid-run, naming the resumable partial file."""
    text = str(exc.strerror or exc)
    if "error message = '" in text:
        text = text.split("error message = '", 1)[1].split("'", 1)[0]
    fix = ("free some space" if exc.errno in (errno.ENOSPC, errno.EDQUOT) or "space" in text.lower()
           else "fix the disk")
    return MlgraphError(f"{writer.path}: {text}; {writer.rows_done:,} of {total:,} images are written and kept ({fix} "
                        f"and run the same command again to resume, or delete {writer.path} to start over)")


def _pause_for_test() -> None:
    marker = os.environ.get(PAUSE_FILE_ENV)
    if marker:
        Path(marker).touch()
    while True:  # wait for the test to kill this process
        time.sleep(1)
