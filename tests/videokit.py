"""Generated clips where each label is visible in only a few frames (benchmarks, tests).

A "world" fixes what labels look like; clips are then sampled from it (train and test share the
world, not the clips):

- Labels fall into ``groups`` latent groups (contexts); a clip picks one group, sometimes two,
  and carries each label of its group(s) with probability ``p_label`` (at least one): labels of a
  group co-occur, which is what the label graph and its embeddings see.
- A clip has T frames (uniform in ``frames``). Frame t = clip scene vector (a random part plus
  its group's context vector) + per-frame noise + for each carried label k visible at t, ``signal``
  times the label's unit prototype p_k. Label k is visible in one run of ``visible`` consecutive
  frames (uniform in the range), so a clip-level average dilutes it about T / visible times.

:func:`write_clips` writes clips as a video features file (the layout of ``mlgraph import-yt8m``),
so benchmarks and tests train them through ``mlgraph train``. Everything is numpy and seeded. Shapes: features (N, D, T_max) float32 zero-padded, mask (N, T_max)
bool, labels (N, C) int8, visible (N, C, T_max) bool (where each carried label is visible).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class World:
    """Label prototypes (C, D) unit rows, group context vectors (G, D), and the group of each label (C,)."""

    prototypes: np.ndarray
    contexts: np.ndarray
    group_of: np.ndarray

    @property
    def num_labels(self) -> int:
        return int(self.prototypes.shape[0])

    @property
    def dim(self) -> int:
        return int(self.prototypes.shape[1])


@dataclass
class Clips:
    features: np.ndarray  # (N, D, T) float32
    mask: np.ndarray  # (N, T) bool
    labels: np.ndarray  # (N, C) int8
    visible: np.ndarray  # (N, C, T) bool

    def __len__(self) -> int:
        return int(self.features.shape[0])


def make_world(*, num_labels: int, groups: int, dim: int, context: float, seed: int) -> World:
    """Random unit prototypes, one context vector of norm ``context`` per group, labels dealt to
    groups round-robin (label k in group k mod G)."""
    rng = np.random.default_rng(seed)
    p = rng.normal(size=(num_labels, dim))
    p /= np.linalg.norm(p, axis=1, keepdims=True)
    g = rng.normal(size=(groups, dim))
    g *= context / np.linalg.norm(g, axis=1, keepdims=True)
    return World(prototypes=p.astype(np.float32), contexts=g.astype(np.float32),
                 group_of=np.arange(num_labels) % groups)


def sample_clips(world: World, num_clips: int, *, frames: tuple[int, int], visible: tuple[int, int],
                 signal: float, noise: float, scene: float, p_label: float, p_two_groups: float,
                 seed: int) -> Clips:
    """Sample ``num_clips`` clips from ``world`` (see the module docstring for the parameters)."""
    rng = np.random.default_rng(seed)
    c, d = world.num_labels, world.dim
    groups = world.contexts.shape[0]
    t_max = frames[1]
    x = np.zeros((num_clips, d, t_max), np.float32)
    mask = np.zeros((num_clips, t_max), bool)
    y = np.zeros((num_clips, c), np.int8)
    vis = np.zeros((num_clips, c, t_max), bool)
    members = [np.flatnonzero(world.group_of == g) for g in range(groups)]
    for i in range(num_clips):
        t = int(rng.integers(frames[0], frames[1] + 1))
        chosen = rng.choice(groups, size=2 if rng.random() < p_two_groups else 1, replace=False)
        base = scene * rng.normal(size=d) / np.sqrt(d) + world.contexts[chosen].sum(0)  # (D,) the clip's scene
        clip = base[:, None] + noise * rng.normal(size=(d, t)) / np.sqrt(d)  # (D, T)
        for g in chosen:
            carried = members[g][rng.random(len(members[g])) < p_label]
            if len(carried) == 0:
                carried = rng.choice(members[g], size=1)
            for k in carried:
                v = int(rng.integers(visible[0], min(visible[1], t) + 1))
                start = int(rng.integers(0, t - v + 1))
                clip[:, start:start + v] += signal * world.prototypes[k][:, None]
                vis[i, k, start:start + v] = True
                y[i, k] = 1
        x[i, :, :t] = clip
        mask[i, :t] = True
    return Clips(features=x, mask=mask, labels=y, visible=vis)


def write_clips(path, clips: Clips, label_names: list[str], *, prefix: str = "clip", batch: int = 256):
    """Write ``clips`` as a video features file (the layout of ``mlgraph import-yt8m``), float16 as
    stored there; returns the path. For benchmarks and tests that train through ``mlgraph train``."""
    from pathlib import Path

    from mlgraph_cli.core.features.video_file import VideoFeatureWriter

    n, d, t = clips.features.shape
    attrs = {"record_kind": "frame", "feature_layout": "generated", "label_class_ids": list(range(len(label_names)))}
    writer = VideoFeatureWriter(path, channels=d, frames=t, plan=f"generated-{Path(path).name}", attrs=attrs,
                                label_names=label_names)
    lengths = clips.mask.sum(1).astype(np.int32)
    for start in range(0, n, batch):
        stop = min(n, start + batch)
        ids = [f"{prefix}{i:05d}" for i in range(start, stop)]
        writer.append({"features": clips.features[start:stop, :, :, None]}, ids,
                      [f"generated#{i}" for i in range(start, stop)], clips.labels[start:stop], stop - start,
                      lengths=lengths[start:stop])
    return writer.finish()
