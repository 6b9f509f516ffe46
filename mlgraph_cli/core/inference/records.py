"""Scoring YouTube-8M clips (and their 5-frame segments) with a video run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from mlgraph_cli.core.inference.frames import predict_videos, score_segments
from mlgraph_cli.core.inference.run import LoadedRun
from mlgraph_cli.core.inference.scoring import Skipped
from mlgraph_cli.core.media.yt8m.records import SEGMENT_FRAMES, iter_videos
from mlgraph_cli.core.media.yt8m.tfrecord import BadRecord
from mlgraph_cli.core.progress import NULL_PROGRESS, ProgressHook


@dataclass
class VideoScores:
    """Scores of one video: probabilities (C,), and with segments the first frame of each 5-frame
    segment (S,) and their probabilities (S, C). ``source`` is ``<tfrecord>#<record index>``."""

    id: str
    source: str
    scores: np.ndarray
    segment_starts: np.ndarray | None = None
    segment_scores: np.ndarray | None = None


@dataclass
class VideoPredictor:
    """Score YouTube-8M TFRecords (frame or video level) with a video :class:`LoadedRun`.

    Clips are read as ``mlgraph import-yt8m`` reads them (dequantised, rgb | audio, rounded to
    float16 as the features file stores them) and cut to ``max_frames`` (the run's T) as the import
    cuts them. Corrupt records go to ``self.skipped``.
    """

    run: LoadedRun
    device: torch.device
    batch_size: int = 16
    max_frames: int | None = None
    skipped: list[Skipped] = field(default_factory=list)

    def __call__(self, files: Sequence[Path], *, segments: bool = False,
                 progress: ProgressHook = NULL_PROGRESS) -> Iterator[VideoScores]:
        """Yield scores video by video, in record order."""
        batch: list[tuple[str, Any]] = []
        progress.start("Predicting", total=None, unit="videos")
        for path, index, item in iter_videos(files, unique_ids=False):  # scoring a video twice harms nothing
            if isinstance(item, BadRecord):
                self.skipped.append(Skipped(f"{path}#{index}", item.reason))
                continue
            batch.append((f"{path}#{index}", item))
            if len(batch) == self.batch_size:
                yield from self._score(batch, segments)
                progress.advance(len(batch))
                batch = []
        if batch:
            yield from self._score(batch, segments)
            progress.advance(len(batch))
        progress.stop()

    def _score(self, batch: list[tuple[str, Any]], segments: bool) -> Iterator[VideoScores]:
        head = self.run.model.head
        lengths = [min(len(rec.frames), self.max_frames or len(rec.frames)) for _, rec in batch]
        x = np.zeros((len(batch), batch[0][1].frames.shape[1], max(lengths)), np.float32)  # (B, D, T) zero padded
        mask = np.zeros((len(batch), max(lengths)), bool)  # (B, T)
        for i, ((_, rec), n) in enumerate(zip(batch, lengths)):
            x[i, :, :n] = rec.frames[:n].T.astype(np.float16)  # (T, D) -> (D, T), stored precision
            mask[i, :n] = True
        probs = predict_videos(head, x, mask, batch_size=len(batch), device=self.device)  # (B, C)
        seg_video = seg_start = seg_probs = None
        if segments:  # YouTube-8M Segments' windows: frames [5s, 5s + 5), one per 5 frames of the clip
            starts = [np.arange(0, n, SEGMENT_FRAMES) for n in lengths]
            seg_video = np.concatenate([np.full(len(s), i) for i, s in enumerate(starts)])
            seg_start = np.concatenate(starts)
            seg_probs = score_segments(head, x, mask, seg_video, seg_start, batch_size=max(self.batch_size, 64),
                                       device=self.device)  # (S, C)
        for i, (source, rec) in enumerate(batch):
            own = seg_video == i if segments else None
            yield VideoScores(id=rec.id, source=source, scores=probs[i],
                              segment_starts=seg_start[own] if segments else None,
                              segment_scores=seg_probs[own] if segments else None)

