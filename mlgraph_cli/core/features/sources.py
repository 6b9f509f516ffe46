"""Sources of the extraction loop that run a backbone: image files and the sampled frames of video files.

Both plan the same way (core/features/plan.py), build the same backbone and describe it the same
way in the file (:func:`backbone_attrs`); they differ in what one input becomes:

- :class:`ImageSource`: an image is decoded and resized in DataLoader workers (core/features/workers.py)
  and its maps (D, H, W) are stored per kept stage;
- :class:`ClipSource`: a clip's sampled frames (core/media/videos.py) go through the backbone and
  each frame's map is averaged over its locations (global average pooling), giving one D-vector
  per frame, stored as ``mlgraph import-yt8m`` stores videos: (D, T, 1) zero-padded past the
  clip's length. T is the most frames any planned clip gets, found from the headers (probed
  once, when the source is made) before any frame is decoded.
"""

from __future__ import annotations

import json
import os
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader

from mlgraph_cli.core.features.backbones.build import backbone_config
from mlgraph_cli.core.features.config import ExtractConfig
from mlgraph_cli.core.features.extraction import Layout, Rows
from mlgraph_cli.core.features.plan import ExtractPlan, labels_sha
from mlgraph_cli.core.features.shards import sub_plan
from mlgraph_cli.core.features.workers import image_loader
from mlgraph_cli.core.media.images import SkippedImage
from mlgraph_cli.core.media.videos import ClipInfo, Sampling, probe, read_frames, require_av
from mlgraph_cli.core.progress import NULL_PROGRESS, ProgressHook
from mlgraph_cli.errors import MlgraphError

CLIPS_PER_WRITE = 8


def backbone_attrs(backbone) -> dict[str, Any]:
    """What a features file says of the backbone that made it."""
    bcfg = backbone_config(backbone)
    return {"backbone": backbone.name, "weights": backbone.weights, "image_size": backbone.image_size,
            "layers": backbone.layers, "preprocessing": bcfg["preprocessing"], "backbone_config": bcfg}


def _plan_attrs(plan: ExtractPlan) -> dict[str, Any]:
    return {"images_root": os.fspath(plan.root.resolve()),
            "annotations": os.fspath(plan.annotations.resolve()) if plan.annotations else ""}


def _labels(plan: ExtractPlan, kept: list[int]):
    return plan.labels[kept] if plan.labels is not None else None


class _BackboneSource:
    """What image and clip sources share: a plan, a backbone on a device, the extract settings."""

    def __init__(self, plan: ExtractPlan, backbone, config: ExtractConfig, device: torch.device) -> None:
        self.plan, self.backbone, self.config, self.device = plan, backbone, config, device
        self.extra_attrs: dict[str, Any] = {}  # a shard's own keys (core/features/shards.py)

    @property
    def total(self) -> int:
        return len(self.plan.paths)

    @property
    def label_names(self) -> list[str] | None:
        return self.plan.label_names

    @property
    def where(self):
        return self.plan.root

    def finish_attrs(self) -> dict[str, Any]:
        return {}


class ImageSource(_BackboneSource):
    """Images through the backbone: maps of every kept stage."""

    noun, unit = "image", "img"

    @property
    def description(self) -> str:
        return f"Extracting {self.backbone.name}"

    def layout(self) -> Layout:
        return Layout(shapes=dict(self.backbone.out_shapes))

    def attrs(self) -> dict[str, Any]:
        return {**backbone_attrs(self.backbone), "outputs": self.backbone.outputs, **_plan_attrs(self.plan),
                "annotations_format": self.plan.annotations_format or "", **self.extra_attrs}

    def identity(self) -> tuple[list[str], dict[str, Any]]:
        """Inputs in order, their labels, every setting that changes a number. Batch size, workers
        and device do not, so a resumed run may change them."""
        base = {k: v for k, v in self.attrs().items() if k not in self.extra_attrs}
        return ([f"{i}\t{f}" for i, f in zip(self.plan.ids, self.plan.files)],
                dict(base, labels_sha=labels_sha(self.plan.labels), label_names=self.plan.label_names,
                     max_pixels=self.config.max_pixels))

    def shard(self, start: int, stop: int, extra: dict[str, Any]) -> "ImageSource":
        """The inputs [start, stop) of this source, its file saying which shard it holds."""
        part = ImageSource(sub_plan(self.plan, start, stop), self.backbone, self.config, self.device)
        part.extra_attrs = dict(extra)
        return part

    def rows(self, start: int) -> Iterator[Rows]:
        """Decode (workers) -> forward (here) -> rows, batch by batch, from input ``start`` on."""
        # Channels-last: oneDNN's convolutions (CPU) and cuDNN's run up to 1.5x faster in this layout
        # than in the default NCHW one; the batch is built in it (core/features/workers.py).
        backbone = self.backbone.to(memory_format=torch.channels_last)
        plan = self.plan
        loader = image_loader(plan.paths[start:], backbone.preprocessor, self.config, self.device)
        with torch.inference_mode():
            for positions, ok, batch, bad in loader:
                kept = [start + i for i in ok]  # indices into the plan
                maps = {}
                if batch is not None:
                    out = backbone(batch.to(self.device, non_blocking=True))  # {name: (B, D, H, W)}
                    maps = {k: v.to(torch.float16).contiguous().cpu().numpy() for k, v in out.items()}
                yield Rows(maps, [plan.ids[r] for r in kept], [plan.files[r] for r in kept], _labels(plan, kept),
                           consumed=len(positions), skipped=[f"{plan.files[start + i]}\t{why}" for i, why in bad])


class ClipSource(_BackboneSource):
    """Video files: sampled frames through the backbone, one pooled vector per frame."""

    noun, unit = "clip", "clip"

    def __init__(self, plan: ExtractPlan, backbone, config: ExtractConfig, device: torch.device,
                 progress: ProgressHook = NULL_PROGRESS) -> None:
        super().__init__(plan, backbone, config, device)
        self.sampling = Sampling(**config.sampling_fields())
        progress.start("Reading clip headers", total=len(plan.paths), unit="clip")
        self.infos: list[ClipInfo | SkippedImage] = []
        for path in plan.paths:
            self.infos.append(probe(path))
            progress.advance(1)
        progress.stop()
        self.times = [self.sampling.times(i.duration, i.fps) if isinstance(i, ClipInfo) else None
                      for i in self.infos]
        self.frames = max([len(t) for t in self.times if t is not None] or [1])
        self.decoded = 0  # frames decoded and run through the backbone by this run

    @staticmethod
    def check(config: ExtractConfig) -> None:
        """Settings video files cannot take, refused before a backbone is built."""
        require_av()
        if config.layers and len(config.layers) > 1:
            raise MlgraphError("video files keep one backbone stage per frame (pass --layer once, or leave it out)")

    @property
    def description(self) -> str:
        return f"Extracting {self.backbone.name} from clips"

    def layout(self) -> Layout:
        return Layout(channels=self.backbone.out_shapes["features"][0], frames=self.frames)

    def attrs(self) -> dict[str, Any]:
        return {**backbone_attrs(self.backbone), **_plan_attrs(self.plan), "source": "video-files",
                "record_kind": "frame", "sampling": json.dumps(self.sampling.to_dict()), "segment_frames": 5,
                "feature_layout": f"{self.backbone.name} {self.backbone.layers[-1]} map, global average pooled, "
                                  "per sampled frame"}

    def identity(self) -> tuple[list[str], dict[str, Any]]:
        sizes = [_size(p) for p in self.plan.paths]
        return ([f"{i}\t{f}\t{s}" for i, f, s in zip(self.plan.ids, self.plan.files, sizes)],
                dict(self.attrs(), labels_sha=labels_sha(self.plan.labels), label_names=self.plan.label_names,
                     frames=self.frames))

    def rows(self, start: int) -> Iterator[Rows]:
        """Decode (workers) -> forward (here) -> rows of ``CLIPS_PER_WRITE`` clips, from clip ``start`` on."""
        plan, n = self.plan, len(self.plan.paths)
        data = _Clips(plan.paths[start:], self.infos[start:], self.times[start:], self.backbone.image_size)
        workers = int(self.config.workers)
        loader = DataLoader(data, batch_size=None, shuffle=False, num_workers=workers, collate_fn=_as_is,
                            prefetch_factor=2 if workers else None)
        channels = self.backbone.out_shapes["features"][0]
        batch: list[tuple[int, np.ndarray]] = []
        skipped: list[str] = []
        consumed = 0
        for position, (i, pictures, reason) in enumerate(loader, start=1):
            consumed += 1
            if pictures is None:
                skipped.append(f"{plan.files[start + i]}\t{reason}")
            else:
                vectors = frame_vectors(self.backbone, pictures, self.device, int(self.config.batch_size))
                self.decoded += len(vectors)
                batch.append((i, vectors))
            if consumed >= CLIPS_PER_WRITE or start + position == n:
                yield self._rows(batch, skipped, consumed, start, channels)
                batch, skipped, consumed = [], [], 0

    def _rows(self, batch, skipped, consumed: int, start: int, channels: int) -> Rows:
        x = np.zeros((len(batch), channels, self.frames, 1), np.float16)  # (B, D, T, 1), zero padding
        lengths = np.zeros(len(batch), np.int32)
        for j, (_, vectors) in enumerate(batch):
            t = min(len(vectors), self.frames)
            x[j, :, :t, 0] = vectors[:t].T  # (t, D) -> (D, t)
            lengths[j] = t
        kept = [start + i for i, _ in batch]
        plan = self.plan
        return Rows({"features": x}, [plan.ids[r] for r in kept], [plan.files[r] for r in kept],
                    _labels(plan, kept), consumed=consumed, skipped=skipped, lengths=lengths)


def frame_vectors(backbone, pictures: np.ndarray, device, batch_size: int) -> np.ndarray:
    """(n, S, S, 3) uint8 frames -> (n, D) float32 global-average-pooled backbone maps."""
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


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return -1


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

