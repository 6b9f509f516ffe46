"""Batches for training and evaluation: datasets that take a list of indices and return a batch.

The sampler hands a dataset a whole batch of indices at once (``DataLoader(batch_size=None,
sampler=BatchSampler(...))``), so a features file is read one sorted selection per batch: h5py
reads a sorted selection far faster than the same rows one by one. The files are opened lazily in
each process (DataLoader workers included); ``in_ram`` copies the maps into memory once instead.

Video features (``mlgraph import-yt8m``, a :class:`~mlgraph_cli.core.features.video_file.VideoFeatureFile`)
are (D, T, 1) maps whose padded frames must not count: their batches carry ``mask`` (B, T) bool,
True for real frames, which the trainer hands to the head as ``head(x, mask)``.

Order: a :class:`~torch.utils.data.DistributedSampler` in every run (one replica when not
distributed). Its order is a function of (seed, epoch), so a resumed run sees the same batches,
and ``batch_size`` is the global batch: each of N ranks takes every N-th index of the same
permutation, in N times smaller batches, which gives the same gradient on average.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, DistributedSampler

from mlgraph_cli.core.training import distributed as dist_util


def read_rows(features, rows: np.ndarray, name: str = "features") -> np.ndarray:
    """Maps of ``rows`` (sorted) as float32 (B, D, H, W): one slice read per run of consecutive rows.

    h5py's list indexing goes through a point selection that was ~20x slower here than reading
    the same one-image chunks one by one (benchmarks/train_speed.py); consecutive rows (a whole
    file, a validation split) come in a single slice.
    """
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) == 0:
        shape = features.feature_shape if name == "features" else features.aux_shape
        return np.zeros((0, *shape), dtype=np.float32)
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    parts = []
    for run in np.split(rows, breaks):
        if len(run) == 1:
            parts.append(features.read(int(run[0]), name=name)[None])  # (1, D, H, W)
        else:
            parts.append(features.read(slice(int(run[0]), int(run[-1]) + 1), name=name))
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


class FeatureSet(Dataset):
    """Rows of a features file as batches ``{"x": (B, D, H, W) float32, "aux": ... | None,
    "y": (B, C) int8, "index": (B,) int64, "mask": (B, T) bool | None}`` (``mask`` for video
    features, whose file has a ``mask(rows)``; None for images).

    rows: which rows of the file (sorted), targets: their (len(rows), C) int8 labels in the
    run's label order. in_ram: copy the maps into memory once (float16, as stored) instead of
    reading the file per batch; the file is opened lazily per process either way.
    """

    def __init__(self, features, rows: np.ndarray, targets: np.ndarray, *, aux: bool = False,
                 in_ram: bool = False, chunk: int = 256, video: bool | None = None) -> None:
        self.features = features
        self.rows = np.asarray(rows, dtype=np.int64)
        self.targets = torch.from_numpy(np.ascontiguousarray(targets, dtype=np.int8))
        self.aux = aux
        self.in_ram = in_ram
        if video is None:  # the file's schema says (``modality`` attribute of a features file)
            video = features.attrs.get("modality") == "video"
        self.video = bool(video)  # a VideoFeatureFile: its mask(rows) of real frames comes with each batch
        self.path = getattr(features, "path", None)
        self._ram: dict[str, np.ndarray] = {}
        if in_ram:
            for name in ["features"] + (["features_aux"] if aux else []):
                parts = [read_rows(features, self.rows[i:i + chunk], name).astype(np.float16)
                         for i in range(0, len(self.rows), chunk)]
                self._ram[name] = np.concatenate(parts) if parts else read_rows(features, self.rows, name)
            features.close()

    def __len__(self) -> int:
        return len(self.rows)

    def _maps(self, positions: np.ndarray, name: str) -> torch.Tensor:
        if self.in_ram:
            # numpy's float16 -> float32 conversion is several times faster than torch's on CPU
            return torch.from_numpy(self._ram[name][positions].astype(np.float32))
        order = np.argsort(self.rows[positions], kind="stable")
        out = np.empty((len(positions), *self._shape(name)), dtype=np.float32)
        out[order] = read_rows(self.features, self.rows[positions][order], name)  # read in file order
        return torch.from_numpy(out)

    def _shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.features.feature_shape if name == "features" else self.features.aux_shape)

    def __getitem__(self, positions: Sequence[int]) -> dict[str, Any]:
        pos = np.asarray(positions, dtype=np.int64)
        return {
            "x": self._maps(pos, "features"),  # finite: checked as rows are read (core/features/checks.py)
            "aux": self._maps(pos, "features_aux") if self.aux else None,
            "y": self.targets[torch.from_numpy(pos)],
            "index": torch.from_numpy(pos),
            "mask": torch.from_numpy(self.features.mask(self.rows[pos])) if self.video else None,
        }


class TensorSet(Dataset):
    """In-memory rows batched like :class:`FeatureSet`: x (N, D, T) with every frame real, or
    (N, D, H, W) maps (the probe start of core/training/probe.py trains on pooled clips, T = 1, or pooled
    maps, H = W = 1), targets (N, C) int8."""

    def __init__(self, x: torch.Tensor, targets: torch.Tensor) -> None:
        self.x, self.targets = x, targets.to(torch.int8)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __getitem__(self, positions: Sequence[int]) -> dict[str, Any]:
        pos = torch.as_tensor(np.asarray(positions, dtype=np.int64))
        x = self.x[pos]
        return {"x": x, "aux": None, "y": self.targets[pos], "index": pos,
                "mask": torch.ones(x.shape[0], x.shape[-1], dtype=torch.bool)}


class ImageSet(Dataset):
    """Images and their targets for end-to-end training, batched like :class:`FeatureSet`.

    load: path -> PIL image or None (unreadable: dropped from its batch and counted in
    ``self.skipped``); preprocess: PIL -> (3, S, S) tensor; flip: random horizontal flips
    (drawn from torch's RNG, so a resumed run flips the same images).
    """

    def __init__(self, files: Sequence[str], targets: np.ndarray, *, load: Callable[[str], Any],
                 preprocess: Callable[[Any], torch.Tensor], flip: bool = False) -> None:
        self.files = list(files)
        self.targets = torch.from_numpy(np.ascontiguousarray(targets, dtype=np.int8))
        self.load, self.preprocess, self.flip = load, preprocess, flip
        self.skipped: list[str] = []

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, positions: Sequence[int]) -> dict[str, Any]:
        pos = np.asarray(positions, dtype=np.int64)
        flips = torch.rand(len(pos)) < 0.5 if self.flip else torch.zeros(len(pos), dtype=torch.bool)
        images, keep = [], []
        for j, i in enumerate(pos.tolist()):
            img = self.load(self.files[i])
            if img is None:
                self.skipped.append(self.files[i])
                continue
            t = self.preprocess(img)
            images.append(t.flip(-1) if flips[j] else t)  # (3, S, S), flipped along W
            keep.append(j)
        keep_t = torch.tensor(keep, dtype=torch.int64)
        x = torch.stack(images) if images else torch.empty(0)
        return {"x": x, "aux": None, "y": self.targets[torch.from_numpy(pos)][keep_t],
                "index": torch.from_numpy(pos)[keep_t], "mask": None}


def split_rows(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A reproducible (train_rows, val_rows) split of ``n`` rows: ``round(n * fraction)`` held out
    (at least one when fraction > 0), drawn with numpy's PCG64 seeded by ``seed``; both sorted."""
    if fraction <= 0:
        return np.arange(n), np.arange(0)
    k = min(max(1, round(n * fraction)), n - 1)
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[k:]), np.sort(perm[:k])


def make_loader(dataset: Dataset, *, batch_size: int, dist: dist_util.DistInfo, shuffle: bool, seed: int,
                workers: int = 0, pin: bool = False) -> DataLoader:
    """Batches of ``batch_size // world_size`` indices per rank from a DistributedSampler.

    With one process the sampler is a seeded shuffle of all indices; with N it gives each rank
    every N-th index of the same permutation (padded with repeats so all ranks take the same
    number of steps, as DDP requires).
    """
    per_rank = max(1, batch_size // dist.world_size)
    sampler = DistributedSampler(dataset, num_replicas=dist.world_size, rank=dist.rank, shuffle=shuffle,
                                 seed=seed, drop_last=False)
    batches = BatchSampler(sampler, batch_size=per_rank, drop_last=False)
    return DataLoader(dataset, sampler=batches, batch_size=None, num_workers=workers, pin_memory=pin)


def eval_loader(dataset: Dataset, batch_size: int, workers: int = 0) -> DataLoader:
    """Batches in file order over the whole set, for validation and evaluation (one process)."""
    batches = BatchSampler(range(len(dataset)), batch_size=batch_size, drop_last=False)
    return DataLoader(dataset, sampler=batches, batch_size=None, num_workers=workers)


