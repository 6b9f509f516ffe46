"""Decoding images for `mlgraph extract`: how many workers and torch threads by default, and the
DataLoader that decodes and preprocesses in file order."""

from __future__ import annotations

import os
from dataclasses import replace

import torch
from torch.utils.data import DataLoader

from mlgraph_cli.core.media.images import SkippedImage, load_image


def resolve_parallelism(config, device_type: str):
    """Fill in ``workers`` and ``threads`` left to the default, from the cores this process may use.

    On the CPU the forward pass is nearly all the work (decoding a 224 px JPEG costs about 1 %
    of EfficientNet-Lite0's forward), so decoding workers only compete with torch's threads: none
    up to 4 cores, then one per 4 cores. With a GPU the forward is fast and decoding is the work:
    a worker per core but one. Processes of one node started together (torchrun's
    ``LOCAL_WORLD_SIZE``) share the cores. Threads: the cores left after the workers.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    cores = max(1, cores // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)))
    workers = config.workers
    if workers is None:
        workers = min(8, max(0, cores - 1)) if device_type == "cuda" else (0 if cores <= 4 else min(8, cores // 4))
    threads = config.threads if config.threads is not None else max(1, cores - (workers if device_type != "cuda" else 0))
    return replace(config, workers=int(workers), threads=int(threads))


class _Images:
    """Dataset: position -> (position, (3, S, S) tensor or None, skip reason or None)."""

    def __init__(self, paths: list[str], preprocess, max_pixels: int | None) -> None:
        self.paths, self.preprocess, self.max_pixels = paths, preprocess, max_pixels

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        image = load_image(self.paths[i], max_pixels=self.max_pixels)
        if isinstance(image, SkippedImage):
            return i, None, image.reason
        return i, self.preprocess(image), None


def _collate(items):
    """(positions, positions kept, (B, 3, S, S) tensor or None, [(position, reason)])."""
    kept = [(i, t) for i, t, _ in items if t is not None]
    batch = torch.stack([t for _, t in kept]).contiguous(memory_format=torch.channels_last) if kept else None
    return [i for i, _, _ in items], [i for i, _ in kept], batch, [(i, r) for i, t, r in items if t is None]


def image_loader(paths: list[str], preprocess, config, device):
    """Batches of decoded, preprocessed images in file order: (positions, kept, batch, [(position, reason)])."""
    workers = int(config.workers)
    return DataLoader(_Images(paths, preprocess, config.max_pixels), batch_size=int(config.batch_size),
                      shuffle=False, num_workers=workers, collate_fn=_collate,
                      pin_memory=device.type == "cuda", prefetch_factor=4 if workers else None)
