"""``mlgraph extract`` on video files: sampled frames -> image backbone -> a video features file.

Each clip's sampled frames (core/media/videos.py) go through the image backbone; the map of each
frame is averaged over its locations (global average pooling), giving one D-vector per frame.
Clips are stored as ``mlgraph import-yt8m`` stores YouTube-8M videos (core/features/video_file.py):
``features`` (N, D, T, 1) float16 zero-padded past each clip's ``lengths``, so ``build-graph``,
``embed``, ``train`` and ``evaluate`` read them unchanged. T is the most frames any planned clip
gets (at most ``max_frames``), found from the headers before any frame is decoded.

Two passes: a probe of every file's header (duration; unreadable files and files with no video
stream are skipped here with their reason) and the extraction, clips decoded in DataLoader
workers while the main process runs the backbone. Resumable as image extraction is: the same
command continues an interrupted run; other inputs or settings start over.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mlgraph_cli.core.features.plan import ExtractPlan, labels_sha, unique_skipped, write_skipped_report
from mlgraph_cli.core.media.images import SkippedImage, common_root, list_images, real_path, relative_names
from mlgraph_cli.core.progress import NULL_PROGRESS, ProgressHook
from mlgraph_cli.core.media.videos import (
    VIDEO_SUFFIXES, ClipInfo, Sampling, is_video_path, probe, read_frames, require_av,
)
from mlgraph_cli.errors import MlgraphError, input_error

CLIPS_PER_WRITE = 8
TABULAR_SUFFIXES = (".csv", ".tsv", ".jsonl")


@dataclass
class ClipExtractResult:
    """What ``mlgraph extract`` reports for video files (the image result's fields, plus frames)."""

    output: Path
    rows: int  # clips written
    inputs: int  # clips planned (written + skipped)
    skipped: list[SkippedImage]
    skipped_report: Path | None
    resumed_from: int
    shapes: dict[str, tuple[int, int, int]]  # {"features": (D, T, 1)}
    backbone: str
    weights: str
    layers: list[str]
    image_size: int
    device: str
    seconds: float
    labels: int | None
    frames: int = 0  # frames decoded and run through the backbone by this run
    sampling: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    modality: str = "video"

    @property
    def images_per_s(self) -> float:
        """Clips per second of this run."""
        done = self.inputs - self.resumed_from
        return done / self.seconds if self.seconds > 0 else 0.0

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def wants_clips(images: Sequence[str | os.PathLike] | None, annotations: str | os.PathLike | None) -> bool:
    """Whether ``mlgraph extract`` was given video files: inputs that hold videos and no images,
    or CSV/JSONL annotations whose file names are videos."""
    if annotations is not None:
        if not str(annotations).lower().endswith(TABULAR_SUFFIXES) or not Path(annotations).is_file():
            return False
        from mlgraph_cli.core.annotations import load_annotations

        try:
            files = [f for f in load_annotations(Path(annotations)).files if f is not None]
        except MlgraphError:
            return False  # the image path reports it
        return bool(files) and all(is_video_path(f) for f in files)
    if not images:
        return False
    try:
        return only_videos(images)
    except MlgraphError:
        return False


def only_videos(inputs) -> bool:
    """Whether ``inputs`` name video files only (a folder: it holds videos and no images)."""
    videos = list_images(list(inputs), VIDEO_SUFFIXES)
    folders = [i for i in inputs if Path(i).is_dir()]
    return bool(videos) and all(is_video_path(p) for p in videos) and not (folders and list_images(folders))


def plan_clips(images, annotations, config, *, allow_outside_paths: bool, progress: ProgressHook) -> ExtractPlan:
    """The clips to read, with labels when ``annotations`` is given (as for images)."""
    from mlgraph_cli.core.features.plan import plan_with_annotations

    if annotations:
        return plan_with_annotations(images, Path(annotations), format=config.format, label_order=config.label_order,
                                     image_set=config.image_set, allow_outside_paths=allow_outside_paths,
                                     progress=progress)
    paths = [p for p in list_images(images, VIDEO_SUFFIXES) if is_video_path(p)]
    if not paths:
        shown = ", ".join(os.fspath(p) for p in images)
        raise input_error(shown, f"no video files found (looked for {', '.join(sorted(VIDEO_SUFFIXES))})",
                          "pass a folder of clips, video files, a glob or a .txt list")
    root = Path(images[0]) if len(images) == 1 and Path(images[0]).is_dir() else common_root(paths)
    files = relative_names(paths, root)
    return ExtractPlan(paths=[os.fspath(real_path(p)) for p in paths], files=files, ids=list(files), root=root)


def extract_clips(images, output: str | os.PathLike, config, *, annotations=None, allow_outside_paths: bool = False,
                  progress: ProgressHook = NULL_PROGRESS) -> ClipExtractResult:
    """Extract per-frame backbone vectors of the clips of ``images`` into ``output``.

    ``config``: the extract stage's settings (backbone, weights, image_size, layers, batch_size,
    workers, device, seed, format, label_order, image_set, offline, fps, frames, max_frames).
    """
    import torch

    from mlgraph_cli.core.io.hdf5 import h5_read_strings
    from mlgraph_cli.core.io.artifacts import provenance
    from mlgraph_cli.core.features.backbones.build import backbone_config, build_backbone
    from mlgraph_cli.core.features.workers import resolve_parallelism
    from mlgraph_cli.core.device import resolve_device
    from mlgraph_cli.core.features.file import partial_path, plan_digest
    from mlgraph_cli.core.io.outputs import check_output_not_input
    from mlgraph_cli.core.features.video_file import VideoFeatureWriter

    require_av()
    sampling = Sampling(float(config.fps), config.frames, int(config.max_frames))
    if config.layers and len(config.layers) > 1:
        raise MlgraphError("video files keep one backbone stage per frame (pass --layer once, or leave it out)")
    dest = Path(output)
    check_output_not_input(dest, [annotations, *(images or [])])
    plan = plan_clips(images, annotations, config, allow_outside_paths=allow_outside_paths, progress=progress)
    progress.start("Reading clip headers", total=len(plan.paths), unit="clip")
    infos: list[ClipInfo | SkippedImage] = []
    for path in plan.paths:
        infos.append(probe(path))
        progress.advance(1)
    progress.stop()
    times = [sampling.times(i.duration) if isinstance(i, ClipInfo) else None for i in infos]
    frames = max([len(t) for t in times if t is not None] or [1])
    device = resolve_device(config.device)
    config = resolve_parallelism(config, device.type)  # workers and threads left to the default: by cores
    torch.set_num_threads(int(config.threads))
    backbone = build_backbone(config.backbone, config.weights, config.layers, config.image_size, device,
                              seed=config.seed, offline=config.offline or None)
    bcfg = backbone_config(backbone)
    channels = backbone.out_shapes["features"][0]
    attrs: dict[str, Any] = {
        "backbone": backbone.name, "weights": backbone.weights, "image_size": backbone.image_size,
        "layers": backbone.layers, "preprocessing": bcfg["preprocessing"], "backbone_config": bcfg,
        "images_root": os.fspath(plan.root.resolve()), "source": "video-files", "record_kind": "frame",
        "annotations": os.fspath(plan.annotations.resolve()) if plan.annotations else "",
        "feature_layout": f"{backbone.name} {backbone.layers[-1]} map, global average pooled, per sampled frame",
        "sampling": json.dumps(sampling.to_dict()), "segment_frames": 5,
    }
    identity = [f"{i}\t{f}\t{_size(p)}" for i, f, p in zip(plan.ids, plan.files, plan.paths)]
    digest = plan_digest(identity, dict(attrs, labels_sha=labels_sha(plan.labels), label_names=plan.label_names,
                                        frames=frames))
    writer = VideoFeatureWriter(dest, channels=channels, frames=frames, plan=digest, attrs=attrs,
                                label_names=plan.label_names)
    start = writer.inputs_done
    if writer.resumed:
        progress.log(f"Resuming {dest}: {start:,} of {len(plan.paths):,} clips were done by an interrupted run")
    t0 = time.perf_counter()
    try:
        decoded = _run(plan, infos, times, start, backbone, writer, config, device, frames, progress)
        progress.stop()
        seconds = time.perf_counter() - t0
        skipped = unique_skipped(h5_read_strings(writer.file["skipped"]))
        rows, inputs = writer.rows_done, writer.inputs_done
        if rows == 0:
            writer.close()
            partial_path(dest).unlink(missing_ok=True)
            report = write_skipped_report(dest, skipped)
            raise MlgraphError(f"{plan.root}: none of the {inputs:,} clips could be read (reasons in {report}; "
                               "check the files, or pass the right folder)")
        params = dict(images=[os.fspath(p) for p in (images or [])], annotations=annotations, output=dest,
                      **{k: getattr(config, k) for k in config.__dataclass_fields__})
        writer.finish({"provenance": provenance("mlgraph extract", params), "skipped_count": len(skipped)})
    except KeyboardInterrupt:
        progress.stop()
        progress.log("Stopped; run the same command again to resume where it stopped")
        raise
    finally:
        writer.close()
    report = write_skipped_report(dest, skipped)
    return ClipExtractResult(output=dest, rows=rows, inputs=inputs, skipped=skipped, skipped_report=report,
                             resumed_from=start, shapes={"features": (channels, frames, 1)}, backbone=backbone.name,
                             weights=backbone.weights, layers=list(backbone.layers), image_size=backbone.image_size,
                             device=str(device), seconds=seconds, frames=decoded, sampling=sampling.to_dict(),
                             labels=len(plan.label_names) if plan.label_names is not None else None, notes=plan.notes)


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return -1


def frame_vectors(backbone, pictures, device, batch_size: int):
    """(n, S, S, 3) uint8 frames -> (n, D) float32 global-average-pooled backbone maps."""
    import torch

    pre = backbone.preprocessor
    mean = torch.tensor(pre.mean, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(pre.std, dtype=torch.float32).view(1, 3, 1, 1)
    out = []
    with torch.inference_mode():
        for s in range(0, len(pictures), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(pictures[s:s + batch_size])).permute(0, 3, 1, 2)  # (B, 3, S, S)
            x = (x.float() * float(pre.scale) - mean) / std
            maps = backbone(x.to(device))["features"]  # (B, D, H, W)
            out.append(maps.float().mean(dim=(2, 3)).cpu())  # (B, D)
    return torch.cat(out).numpy()


class _Clips:
    """Dataset: position -> (position, (n, S, S, 3) uint8 frames or None, skip reason or None)."""

    def __init__(self, paths, infos, times, size: int) -> None:
        self.paths, self.infos, self.times, self.size = paths, infos, times, size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        if isinstance(self.infos[i], SkippedImage):
            return i, None, self.infos[i].reason
        got = read_frames(self.paths[i], self.times[i], size=(self.size, self.size))
        if isinstance(got, SkippedImage):
            return i, None, got.reason
        return i, got[0], None


def _as_is(item):
    """Items stay numpy (module level, so DataLoader workers can pickle it)."""
    return item


def _run(plan: ExtractPlan, infos, times, start: int, backbone, writer, config, device, frames: int,
         progress: ProgressHook) -> int:
    """Decode (workers) -> forward (here) -> append, CLIPS_PER_WRITE clips at a time; returns frames done."""
    from torch.utils.data import DataLoader

    n = len(plan.paths)
    data = _Clips(plan.paths[start:], infos[start:], times[start:], backbone.image_size)
    workers = int(config.workers)
    loader = DataLoader(data, batch_size=None, shuffle=False, num_workers=workers, collate_fn=_as_is,
                        prefetch_factor=2 if workers else None)
    progress.start(f"Extracting {backbone.name} from clips", total=n - start, unit="clip")
    channels = backbone.out_shapes["features"][0]
    batch: list[tuple[int, np.ndarray]] = []
    skipped: list[str] = []
    consumed = decoded = 0

    def flush() -> None:
        nonlocal batch, skipped, consumed
        x = np.zeros((len(batch), channels, frames, 1), np.float16)  # (B, D, T, 1), zero padding
        lengths = np.zeros(len(batch), np.int32)
        for j, (_, vectors) in enumerate(batch):
            t = min(len(vectors), frames)
            x[j, :, :t, 0] = vectors[:t].T  # (t, D) -> (D, t)
            lengths[j] = t
        kept = [start + i for i, _ in batch]
        writer.append_videos(x, lengths, [plan.ids[r] for r in kept], [plan.files[r] for r in kept],
                             plan.labels[kept] if plan.labels is not None else None, consumed, skipped)
        progress.advance(consumed)
        batch, skipped, consumed = [], [], 0

    for i, pictures, reason in loader:
        consumed += 1
        if pictures is None:
            skipped.append(f"{plan.files[start + i]}\t{reason}")
        else:
            vectors = frame_vectors(backbone, pictures, device, int(config.batch_size))
            decoded += len(vectors)
            batch.append((i, vectors))
        if consumed >= CLIPS_PER_WRITE:
            flush()
    if consumed:
        flush()
    return decoded
