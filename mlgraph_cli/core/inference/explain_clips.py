"""Explanation strips for video files (``mlgraph predict CLIP.mp4 --explain DIR``).

A strip is one PNG per clip: for each listed label, a row of the sampled frames' thumbnails with,
under each, a bar as high as that frame's weight for the label (the temporal attention a_k(t) of
a ``video-cma`` run; for pooling heads each frame's share of the per-frame probabilities), the
frame's time, and the label's score at the left. A frame the head leans on stands out as a tall
bar under the picture that shows the object.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from mlgraph_cli.core.inference.clips import ClipScores

LABEL_PX = 110  # left margin holding the label name and score
BAR_PX = 36  # height of the attention bars under the thumbnails


def explain_strip(item: ClipScores, labels: Sequence[tuple[int, str, float]]):
    """A PIL image: one row per (label column, name, score), thumbnails over attention bars."""
    thumbs = item.thumbnails  # (T, h, w, 3)
    t, h, w, _ = thumbs.shape
    row_h = h + BAR_PX + 14
    sheet = Image.new("RGB", (LABEL_PX + t * (w + 2), 16 + row_h * len(labels)), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((4, 2), Path(item.path).name, fill="black")
    for r, (k, name, score) in enumerate(labels):
        y = 16 + r * row_h
        draw.text((4, y + 4), name[:16], fill="black")
        draw.text((4, y + 18), f"{score:.2f}", fill="black")
        weights = item.attention[k] if item.attention is not None else np.zeros(t)
        top = float(weights.max()) if weights.size and weights.max() > 0 else 1.0
        for j in range(t):
            x = LABEL_PX + j * (w + 2)
            sheet.paste(Image.fromarray(thumbs[j]), (x, y))
            bar = int(round(BAR_PX * float(weights[j]) / top))
            draw.rectangle([x, y + h + BAR_PX - bar, x + w - 1, y + h + BAR_PX], fill=(220, 60, 30))
            draw.text((x + 1, y + h + BAR_PX + 1), f"{item.times[j]:.1f}s", fill="gray")
    return sheet
