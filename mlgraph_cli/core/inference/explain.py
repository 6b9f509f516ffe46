"""Explanations: per-label maps of where the model looked, drawn over the image with PIL.

Heads with attention (cma, ms-cma, query) show their attention maps a_k (docs/method.md, "CMA:
cross-modality attention"; for query, each label's query's attention averaged over its heads).
Heads without (gap, gmp, mlgcn, probe) show a class activation map instead:
the head applied to each location's feature vector on its own, which for gap is exactly CAM
(Zhou et al., CVPR 2016, w_k . X(h, w) + b_k) and for gmp / mlgcn the logit each location alone
would give.

A map whose values barely differ (attention spread evenly: the label's score then comes from the
whole image) has no "where" to show: stretching it to [0, 1] would paint noise, or a blank panel
when it is exactly flat. Such a panel shows the plain image and says "uniform" in its caption.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

# An "inferno"-like colour ramp (dark purple -> red -> yellow): perceptually ordered, readable
# over photographs. Anchor colours at 0, 0.25, 0.5, 0.75, 1.
_RAMP = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], dtype=np.float32)
# A map whose spread (max - min) is below this share of its largest magnitude counts as uniform.
UNIFORM_SPREAD = 0.01
FONT_SIZE = 15
CAPTION = 24  # px of the caption strip under the panels
BELOW = (128, 128, 128)  # caption colour of a label under its threshold


def explanation_maps(head, x) -> torch.Tensor:
    """Per-label maps (B, C, H, W): attention a_k for heads that have it, else the head applied to
    each location alone (CAM for gap; see the module docstring)."""
    if hasattr(head, "attention"):
        return head.attention(x).float()
    b, d, h, w = x.shape
    per_location = x.permute(0, 2, 3, 1).reshape(b * h * w, d, 1, 1)  # (B*H*W, D, 1, 1)
    logits = head(per_location).float()  # (B*H*W, C)
    return logits.reshape(b, h, w, -1).permute(0, 3, 1, 2)  # (B, C, H, W)


def colorize(values: np.ndarray) -> np.ndarray:
    """(H, W) in [0, 1] -> (H, W, 3) uint8 through :data:`_RAMP` (linear between anchors)."""
    v = np.clip(values, 0.0, 1.0) * (len(_RAMP) - 1)
    lo = np.floor(v).astype(int).clip(0, len(_RAMP) - 2)
    t = (v - lo)[..., None]
    return (_RAMP[lo] * (1 - t) + _RAMP[lo + 1] * t).round().astype(np.uint8)


def is_uniform(m: np.ndarray) -> bool:
    """Whether a map's spread is under :data:`UNIFORM_SPREAD` of its largest magnitude."""
    lo, hi = float(m.min()), float(m.max())
    return hi - lo <= UNIFORM_SPREAD * max(abs(lo), abs(hi), 1e-12)


def panel_size(size: tuple[int, int], longest: int) -> tuple[int, int]:
    """(width, height) of one panel: the image scaled so its longer side is ``longest`` px."""
    w, h = size
    scale = longest / max(w, h)
    return max(1, round(w * scale)), max(1, round(h * scale))


def caption_font():
    """A TrueType font at :data:`FONT_SIZE` px (Pillow >= 10.1 ships one), else PIL's bitmap font."""
    try:
        return ImageFont.load_default(size=FONT_SIZE)
    except TypeError:  # Pillow < 10.1: no size argument
        return ImageFont.load_default()


def caption_text(name: str, score: float, threshold: float, uniform: bool) -> str:
    """``"dress 0.60"``, plus ``" < 0.50"`` for a label under its threshold and ``" · uniform"``
    for a map with nothing to show."""
    text = f"{name} {score:.2f}"
    if score < threshold:
        text += f" < {threshold:.2f}"
    return text + (" · uniform" if uniform else "")


def explain_image(image, maps: np.ndarray, labels: Sequence[tuple[int, str, float, float]], *,
                  longest: int = 256, alpha: float = 0.5):
    """One PNG-ready PIL image: a panel per (label index, name, score, threshold), side by side.

    Each panel is the image (scaled to ``longest`` px on its longer side) blended with that
    label's map, stretched over the whole image (the backbone saw the whole image stretched to a
    square) and scaled to [0, 1] by its own min and max; a uniform map leaves the image plain.
    The caption strip below (:data:`CAPTION` px) holds the label and score, grey when the score
    is under the label's threshold. Size: (len(labels) * panel width, panel height + CAPTION).
    """
    pw, ph = panel_size(image.size, longest)
    base = np.asarray(image.convert("RGB").resize((pw, ph), Image.Resampling.BILINEAR), dtype=np.float32)
    sheet = Image.new("RGB", (pw * max(1, len(labels)), ph + CAPTION), "white")
    draw, font = ImageDraw.Draw(sheet), caption_font()
    for n, (k, name, score, threshold) in enumerate(labels):
        m = maps[k].astype(np.float32)  # (H, W)
        uniform = is_uniform(m)
        if uniform:
            panel = base
        else:
            m = (m - m.min()) / (m.max() - m.min())
            up = np.asarray(Image.fromarray(m).resize((pw, ph), Image.Resampling.BILINEAR))  # (ph, pw)
            panel = (1 - alpha) * base + alpha * colorize(up).astype(np.float32)
        sheet.paste(Image.fromarray(panel.round().clip(0, 255).astype(np.uint8)), (n * pw, 0))
        text = caption_text(fit(draw, name, caption_text("", score, threshold, uniform), font, pw - 8), score,
                            threshold, uniform)
        draw.text((n * pw + 4, ph + 3), text, fill=BELOW if score < threshold else "black", font=font)
    return sheet


def fit(draw, name: str, rest: str, font, width: int) -> str:
    """``name`` cut with an ellipsis so that ``name + rest`` fits ``width`` px (the score stays whole)."""
    if draw.textlength(name + rest, font=font) <= width:
        return name
    while len(name) > 1 and draw.textlength(name + "…" + rest, font=font) > width:
        name = name[:-1]
    return name + "…"


def explain_names(paths: Sequence[Path], root: Path | None, folder: Path, protected: Iterable[Path] = ()) -> list[Path]:
    """Where each image's sheet goes in ``folder``: its path under ``root`` with separators as
    ``__`` and its own suffix kept, plus ``.png`` (``photo.jpg`` -> ``photo.jpg.png``, so
    ``photo.png`` is never its target). Names are unique (``-2``, ``-3`` before ``.png`` where two
    images would share one; case-insensitive, for file systems that are) and never a ``protected``
    file (the inputs)."""
    guarded = {os.path.normcase(os.path.realpath(p)) for p in protected}
    taken: set[str] = set()
    out = []
    for path in paths:
        try:
            rel = path.resolve().relative_to(root.resolve()) if root is not None else Path(path.name)
        except ValueError:
            rel = Path(path.name)
        stem = "__".join(rel.parts)
        name, n = f"{stem}.png", 1
        while name.lower() in taken or os.path.normcase(os.path.realpath(folder / name)) in guarded:
            n += 1
            name = f"{stem}-{n}.png"
        taken.add(name.lower())
        out.append(folder / name)
    return out
