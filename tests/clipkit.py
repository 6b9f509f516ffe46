"""Generated MP4 clips for tests and the video-files benchmark (written with PyAV).

``write_clip`` encodes an array of frames as H.264 (optionally with a phone's display rotation, or
with irregular timestamps for a variable frame rate). ``fashion_clips`` writes a labelled set in
which each labelled Fashion-MNIST item is on screen for only a few consecutive frames, pasted
(tinted, enlarged) over a moving textured background with moving distractor shapes on every
frame: what a clip is about is visible in a small share of its frames, the case where attention
over time should beat averaging all frames. ``ClipWorld.lasting`` makes sets of one clip length
(short, medium, long), for studies of how frames are sampled. Train, validation and test clips draw their items
from disjoint photographs. Seeded numpy: the same seed writes the same pixels.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import numpy as np

from mlgraph_cli.core.media.videos import require_av


def write_clip(path: str | os.PathLike, frames: np.ndarray, *, fps: float = 4.0, rotation: int = 0,
               times: Sequence[float] | None = None, codec: str = "libx264") -> Path:
    """Write (n, H, W, 3) uint8 ``frames`` (H, W even) as a video file.

    ``rotation``: display rotation in degrees counter-clockwise (a phone's portrait clip);
    ``times``: each frame's time in seconds (a variable frame rate), else n / fps evenly.
    """
    av = require_av()
    out = Path(path)
    n, h, w, _ = frames.shape
    rate = Fraction(fps).limit_denominator(1000)
    with av.open(os.fspath(out), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        if times is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        if rotation:
            stream.set_display_rotation(rotation)
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frames[i]), format="rgb24")
            if times is not None:
                frame.pts, frame.time_base = int(round(times[i] * 1000)), Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out


@dataclass(frozen=True)
class ClipWorld:
    """Sizes of a generated set: frame side (px), frames per clip, frames per second, on-screen run."""

    size: int = 96
    frames: int = 24
    fps: float = 4.0
    visible: tuple[int, int] = (3, 5)  # consecutive frames an item is on screen
    item_px: tuple[int, int] = (36, 52)  # pasted item side
    labels_per_clip: tuple[int, int] = (1, 3)
    distractors: int = 3

    @classmethod
    def lasting(cls, seconds: float, fps: float, **sizes) -> "ClipWorld":
        """Clips of ``seconds`` at ``fps`` (a short, medium or long set; items stay on screen for
        ``visible`` frames whatever the length, so a longer clip shows its labels in a smaller share)."""
        return cls(frames=max(1, round(seconds * fps)), fps=fps, **sizes)

    @property
    def seconds(self) -> float:
        return self.frames / self.fps


# Label groups that co-occur (half of the clips draw from one group), so the label graph has structure.
GROUPS = ((0, 1, 7), (2, 4, 9), (3, 5, 8), (6, 1, 9))


def _background(rng: np.random.Generator, world: ClipWorld) -> np.ndarray:
    """(frames, S, S, 3) float32: a colour texture drifting across the frame."""
    s, n = world.size, world.frames
    big = rng.uniform(0.15, 0.6, size=(s // 8 + 4, s // 8 + 4, 3)).astype(np.float32)
    big = np.kron(big, np.ones((8, 8, 1), np.float32))  # blocky texture, (S+32, S+32, 3)
    dx, dy = rng.integers(-2, 3, size=2)
    out = np.empty((n, s, s, 3), np.float32)
    for t in range(n):
        ox, oy = (16 + dx * t) % 32, (16 + dy * t) % 32
        out[t] = big[oy:oy + s, ox:ox + s]
    return out


def _paste(frame: np.ndarray, item: np.ndarray, x: int, y: int, color: np.ndarray) -> None:
    """Alpha-paste a grayscale item (0 = transparent) tinted with ``color`` at (x, y)."""
    h, w = item.shape
    alpha = (item.astype(np.float32) / 255.0)[..., None]  # (h, w, 1)
    region = frame[y:y + h, x:x + w]
    region[:] = region * (1 - alpha) + alpha * color[None, None, :]


def _resize(item: np.ndarray, side: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(item).resize((side, side), Image.Resampling.BILINEAR))


def make_clip(rng: np.random.Generator, world: ClipWorld, items: list[np.ndarray]) -> tuple[np.ndarray, list[range]]:
    """(frames, S, S, 3) uint8 and the frames each item is on screen."""
    frames = _background(rng, world)
    s, n = world.size, world.frames
    for _ in range(world.distractors):  # a moving coloured square on every frame
        side = int(rng.integers(10, 22))
        x, y = rng.integers(0, s - side, size=2).astype(float)
        vx, vy = rng.uniform(-3, 3, size=2)
        color = rng.uniform(0.2, 1.0, size=3).astype(np.float32)
        for t in range(n):
            xi, yi = int(x + vx * t) % (s - side), int(y + vy * t) % (s - side)
            frames[t, yi:yi + side, xi:xi + side] = color
    shown = []
    for item in items:
        length = int(rng.integers(world.visible[0], world.visible[1] + 1))
        first = int(rng.integers(0, n - length + 1))
        side = int(rng.integers(world.item_px[0], world.item_px[1] + 1))
        big = _resize(item, side)
        x, y = rng.integers(0, s - side + 1, size=2)
        color = rng.uniform(0.7, 1.0, size=3).astype(np.float32)
        for t in range(first, first + length):
            _paste(frames[t], big, int(x), int(y), color)
        shown.append(range(first, first + length))
    return np.clip(frames * 255, 0, 255).astype(np.uint8), shown


def fashion_clips(folder: str | os.PathLike, count: int, *, seed: int, world: ClipWorld = ClipWorld(),
                  pool: str = "train") -> Path:
    """Write ``count`` clips and ``labels.csv`` (``path,labels``, labels joined by ``;``) into ``folder``.

    ``pool``: which photographs items come from -- "train" (the subset's train part, even
    positions), "val" (train part, odd positions) or "test" (its t10k part), so no photograph is
    shared between splits.
    """
    from mlgraph_cli.core.datasets.fashion_mnist import LABELS, load_source

    src = load_source(None)
    part = 1 if pool == "test" else 0
    idx = np.flatnonzero(src.part == part)
    if pool != "test":
        idx = idx[(0 if pool == "train" else 1)::2]
    by_class = {c: idx[src.labels[idx] == c] for c in range(len(LABELS))}
    rng = np.random.default_rng(seed)
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for k in range(count):
        m = int(rng.integers(world.labels_per_clip[0], world.labels_per_clip[1] + 1))
        if rng.random() < 0.5:
            classes = rng.choice(GROUPS[int(rng.integers(len(GROUPS)))], size=min(m, 3), replace=False)
        else:
            classes = rng.choice(len(LABELS), size=m, replace=False)
        items = [src.images[int(rng.choice(by_class[int(c)]))] for c in classes]
        frames, _ = make_clip(rng, world, items)
        name = f"clip{k:04d}.mp4"
        write_clip(out / name, frames, fps=world.fps)
        rows.append((name, ";".join(LABELS[int(c)] for c in sorted(set(int(c) for c in classes)))))
    with open(out / "labels.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "labels"])
        writer.writerows(rows)
    return out / "labels.csv"
