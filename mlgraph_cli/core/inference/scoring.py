"""Scoring images with a loaded run, and choosing which labels to list."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from mlgraph_cli.core.inference.explain import explanation_maps
from mlgraph_cli.core.inference.run import LoadedRun
from mlgraph_cli.core.media.images import SkippedImage, load_image
from mlgraph_cli.core.progress import NULL_PROGRESS, ProgressHook


@dataclass
class ImageScores:
    """Scores of one image: probabilities (C,) and, with ``maps``, its (C, H, W) explanation."""

    path: Path
    scores: np.ndarray
    maps: np.ndarray | None = None
    size: tuple[int, int] = (0, 0)  # original (width, height)
    image: Any = None  # the decoded PIL image, kept only for explanations


@dataclass
class Skipped:
    path: str
    reason: str


@dataclass
class Predictor:
    """Score images with a :class:`LoadedRun` (built ``with_backbone=True``)."""

    run: LoadedRun
    device: torch.device
    batch_size: int = 16
    skipped: list[Skipped] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.run.model.backbone is None:
            raise ValueError("Predictor needs a run loaded with_backbone=True")

    @torch.no_grad()
    def __call__(self, paths: Sequence[Path], *, explain: bool = False,
                 progress: ProgressHook = NULL_PROGRESS) -> Iterator[ImageScores]:
        """Yield scores image by image, in input order; unreadable files go to ``self.skipped``."""
        model = self.run.model
        pre = model.backbone.preprocessor
        progress.start("Predicting", total=len(paths), unit="img")
        for start in range(0, len(paths), self.batch_size):
            batch, tensors = [], []
            for p in paths[start:start + self.batch_size]:
                image = load_image(p)
                if isinstance(image, SkippedImage):
                    self.skipped.append(Skipped(os.fspath(p), image.reason))
                    continue
                batch.append((Path(p), image))
                tensors.append(pre(image))  # (3, S, S)
            if tensors:
                x = torch.stack(tensors).to(self.device)  # (B, 3, S, S)
                main, aux = model.maps(x)
                head_in = model.head_input(main, aux)
                probs = torch.sigmoid(model.head(head_in).float()).cpu().numpy()  # (B, C)
                maps = explanation_maps(model.head, head_in).cpu().numpy() if explain else None  # (B, C, H, W)
                for j, (p, image) in enumerate(batch):
                    yield ImageScores(path=p, scores=probs[j], maps=None if maps is None else maps[j],
                                      size=image.size, image=image if explain else None)
            progress.advance(len(paths[start:start + self.batch_size]))
        progress.stop()


def select_labels(scores: np.ndarray, names: Sequence[str], *, topk: int | None,
                  threshold: float | Sequence[float]) -> list[tuple[str, float]]:
    """(label, score) pairs, highest first, that are among the ``topk`` best and >= ``threshold``
    (one probability, or one per label in label order)."""
    cut = np.broadcast_to(np.asarray(threshold, dtype=np.float64), scores.shape)  # (C,)
    order = np.argsort(-scores, kind="stable")
    if topk is not None:
        order = order[:topk]
    return [(names[i], float(scores[i])) for i in order if scores[i] >= cut[i]]

