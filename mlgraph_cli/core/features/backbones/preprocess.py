"""The input a backbone expects: a whole image stretched to a square, scaled and normalised.

Preprocessing resizes the *whole* image to a square of ``size`` (no centre crop: in a multi-label
image the objects near the edges count as much as the one in the middle), scales to [0, 1] and
normalises with the weights' mean and std. It is a plain dict (:meth:`Preprocess.to_dict`) stored
in every features file and run config, so predict rebuilds exactly the same input.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from mlgraph_cli.errors import MlgraphError


@dataclass(frozen=True)
class Preprocess:
    """PIL RGB image -> (3, size, size) float32 tensor: stretch-resize, /255, (x - mean) / std."""

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resize: str = "stretch"  # whole image to size x size, aspect ratio not kept, no crop
    interpolation: str = "bilinear"  # PIL, antialiased when shrinking
    scale: float = 1 / 255

    def __call__(self, image) -> torch.Tensor:
        if image.size != (self.size, self.size):
            image = image.resize((self.size, self.size), Image.Resampling.BILINEAR)
        x = np.asarray(image, dtype=np.float32) * self.scale  # (S, S, 3) in [0, 1]
        x = (x - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))  # (3, S, S)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(mean=list(self.mean), std=list(self.std), color="RGB", exif_transpose=True)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Preprocess":
        if d.get("resize", "stretch") != "stretch" or d.get("interpolation", "bilinear") != "bilinear":
            raise MlgraphError(f"unsupported preprocessing {d.get('resize')}/{d.get('interpolation')} "
                               "(re-run `mlgraph extract` with this version)")
        return cls(size=int(d["size"]), mean=tuple(map(float, d["mean"])), std=tuple(map(float, d["std"])),
                   scale=float(d.get("scale", 1 / 255)))
