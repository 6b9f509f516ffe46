"""Compose small grayscale items into a colour scene over a cluttered background.

A scene is a square RGB canvas. The background is clutter with no label: a smooth colour field,
random opaque shapes, striped/checked texture patches and pixel noise, so that a classifier has
to find the items rather than read the whole image. Each item (a 28 x 28 Fashion-MNIST
photograph, white-ish garment on black) is upscaled with a Lanczos filter, tinted with a random
colour, and pasted with its own intensity as alpha, so only the garment covers the clutter.
Items get a random size and position, with limited overlap between their boxes.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw


@dataclass(frozen=True)
class SceneConfig:
    """How scenes look. Sizes are fractions of the canvas side (0.18-0.40 is 40-90 px at 224).

    ``alpha_low``/``alpha_high``: item intensities (0-1) mapped to alpha 0 and 1, linear between,
    so the black surround is exactly transparent and dark garments stay opaque.
    ``max_overlap``: the largest intersection between two items' boxes, as a fraction of the
    smaller box. ``shapes``/``patches``: inclusive ranges of clutter counts per scene.
    """

    item_scale: tuple[float, float] = (0.18, 0.40)
    max_overlap: float = 0.25
    alpha_low: float = 0.04
    alpha_high: float = 0.20
    shapes: tuple[int, int] = (6, 14)
    patches: tuple[int, int] = (1, 4)
    noise_sigma: float = 8.0
    place_tries: int = 60


@dataclass(frozen=True)
class PlacedItem:
    """Where an item landed: its tight box ``(x, y, w, h)`` in canvas pixels, and its mask area
    (sum of alpha, in pixels, before any later item covered part of it)."""

    box: tuple[int, int, int, int]
    area: float


def render_background(rng: np.random.Generator, size: int, config: SceneConfig) -> np.ndarray:
    """Clutter with no label: ``size`` x ``size`` x 3 uint8."""
    # a smooth colour field: a 4 x 4 grid of random colours, bicubically interpolated
    coarse = rng.integers(40, 216, size=(4, 4, 3), dtype=np.uint8)
    canvas = Image.fromarray(coarse, "RGB").resize((size, size), Image.BICUBIC)
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(config.shapes[0], config.shapes[1] + 1))):
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        x0, y0 = (int(v) for v in rng.integers(-size // 8, size, size=2))
        w, h = (int(v) for v in rng.integers(size // 20, size // 3, size=2))
        kind = int(rng.integers(4))
        if kind == 0:
            draw.ellipse([x0, y0, x0 + w, y0 + h], fill=colour)
        elif kind == 1:
            draw.rectangle([x0, y0, x0 + w, y0 + h], fill=colour)
        elif kind == 2:
            pts = rng.integers(0, max(w, h), size=(3, 2)) + np.array([x0, y0])
            draw.polygon([tuple(int(v) for v in p) for p in pts], fill=colour)
        else:
            draw.line([x0, y0, x0 + w, y0 + h], fill=colour, width=int(rng.integers(2, 7)))
    out = np.asarray(canvas, dtype=np.float32).copy()
    for _ in range(int(rng.integers(config.patches[0], config.patches[1] + 1))):
        _texture_patch(rng, out)
    out += rng.normal(0.0, config.noise_sigma, size=out.shape).astype(np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _texture_patch(rng: np.random.Generator, canvas: np.ndarray) -> None:
    """Paint a rectangle of stripes or checks (two random colours) into ``canvas`` (H x W x 3 float)."""
    size = canvas.shape[0]
    w, h = (int(v) for v in rng.integers(size // 10, size // 4, size=2))
    x0, y0 = int(rng.integers(0, size - w)), int(rng.integers(0, size - h))
    period = float(rng.uniform(3.0, 10.0))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = float(rng.uniform(0, np.pi))
    phase = (xx * np.cos(angle) + yy * np.sin(angle)) / period
    if rng.random() < 0.5:
        mask = (np.floor(phase) % 2).astype(np.float32)  # stripes
    else:
        mask = ((np.floor(xx / period) + np.floor(yy / period)) % 2).astype(np.float32)  # checks
    a, b = rng.integers(0, 256, size=(2, 3)).astype(np.float32)
    canvas[y0:y0 + h, x0:x0 + w] = a + mask[..., None] * (b - a)


def _item_layers(rng: np.random.Generator, item: np.ndarray, side: int,
                 config: SceneConfig) -> tuple[np.ndarray, np.ndarray]:
    """Upscaled, tinted item: colour (side x side x 3 float, 0-255) and alpha (side x side, 0-1)."""
    img = Image.fromarray(item, "L").resize((side, side), Image.LANCZOS)
    intensity = np.asarray(img, dtype=np.float32) / 255.0
    if rng.random() < 0.5:
        intensity = intensity[:, ::-1]  # garments are left-right symmetric enough to mirror
    alpha = np.clip((intensity - config.alpha_low) / (config.alpha_high - config.alpha_low), 0.0, 1.0)
    hue, sat, val = rng.random(), rng.uniform(0.35, 0.95), rng.uniform(0.55, 1.0)
    tint = np.array(colorsys.hsv_to_rgb(hue, sat, val), dtype=np.float32) * 255.0
    # keep the photograph's shading (folds, seams, soles) in the tinted colour
    colour = tint * (0.3 + 0.7 * intensity)[..., None]
    return colour, alpha


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """Intersection of two ``(x, y, w, h)`` boxes as a fraction of the smaller one."""
    iw = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    ih = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    return iw * ih / max(1, min(a[2] * a[3], b[2] * b[3]))


def compose(rng: np.random.Generator, background: np.ndarray, items: list[np.ndarray],
            config: SceneConfig) -> tuple[np.ndarray, list[PlacedItem]]:
    """Paste ``items`` (28 x 28 uint8 each) onto a copy of ``background`` (S x S x 3 uint8).

    Returns the scene (S x S x 3 uint8) and one :class:`PlacedItem` per item, in order. Pixels
    outside every item's box are exactly the background's.
    """
    size = background.shape[0]
    canvas = background.astype(np.float32)
    lo, hi = config.item_scale
    placed: list[PlacedItem] = []
    for item in items:
        side = max(8, int(round(rng.uniform(lo, hi) * size)))
        colour, alpha = _item_layers(rng, item, side, config)
        rows, cols = np.flatnonzero(alpha.any(1)), np.flatnonzero(alpha.any(0))
        if len(rows) == 0:  # a blank photograph: nothing to paste, still a labelled item
            rows = cols = np.array([side // 2])
        ty, tx = int(rows[0]), int(cols[0])
        th, tw = int(rows[-1]) - ty + 1, int(cols[-1]) - tx + 1
        best, best_overlap = (0, 0), float("inf")
        for _ in range(config.place_tries):
            # the whole paste square stays on the canvas, so every box is within it
            x, y = int(rng.integers(0, size - side + 1)), int(rng.integers(0, size - side + 1))
            worst = max((_overlap((x + tx, y + ty, tw, th), p.box) for p in placed), default=0.0)
            if worst < best_overlap:
                best, best_overlap = (x, y), worst
            if worst <= config.max_overlap:
                break
        x, y = best
        region = canvas[y:y + side, x:x + side]
        region += alpha[..., None] * (colour - region)  # alpha blending; alpha 0 leaves it as is
        placed.append(PlacedItem((x + tx, y + ty, tw, th), round(float(alpha.sum()), 1)))
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8), placed
