"""What ``mlgraph predict`` scores, behind one interface: images, YouTube-8M records, video files.

``mlgraph predict`` runs one loop (stages/predict.py) over a :class:`Scorer`: it loads the run,
yields one :class:`Scored` per readable input (its name, its (C,) probabilities, per segment its
fields and probabilities, and a way to draw its explanation), and keeps the inputs it could not
read with their reasons. What differs between the three is only how an input is read and scored:

- :class:`ImageScorer`: images through the run's backbone and head (core/inference/scoring.py);
  rows ``{"image": path, ...}``; explanations are attention maps over the image (explain.py);
- :class:`RecordScorer`: YouTube-8M records, whose frames are already features, through the run's
  temporal head (records.py); rows ``{"video": id, ...}``, segments ``{"start": frame}``;
- :class:`ClipScorer`: the sampled frames of video files through the backbone, then the temporal
  head (clips.py); rows ``{"video": path, ...}``, segments ``{"start": s, "end": e}`` in seconds;
  explanations are strips of thumbnails with each frame's weight (explain_clips.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator, Sequence

import numpy as np

from mlgraph_cli.core.inference.clips import load_clip_run, run_sampling, score_clips
from mlgraph_cli.core.inference.explain import explain_image
from mlgraph_cli.core.inference.explain_clips import explain_strip
from mlgraph_cli.core.inference.records import VideoPredictor
from mlgraph_cli.core.inference.run import LoadedRun, load_run
from mlgraph_cli.core.inference.scoring import Predictor, Skipped
from mlgraph_cli.core.media.images import SkippedImage
from mlgraph_cli.core.progress import ProgressHook

# (label column, name, score, threshold) of each label an explanation shows
Shown = Sequence[tuple[int, str, float, float]]


@dataclass
class Scored:
    """One input scored: ``name`` (the row's image path, video id or clip path), ``scores`` (C,)
    probabilities, per segment its fields and (C,) probabilities, and ``sheet`` drawing its
    explanation (a PIL image) for the labels chosen, when one was asked for."""

    name: str
    scores: np.ndarray
    path: Path | None = None  # the input file, for the explanation's name (None: a record)
    segments: list[tuple[dict[str, Any], np.ndarray]] | None = None
    sheet: Callable[[Shown], Any] | None = None


@dataclass
class Scorer:
    """The part of ``mlgraph predict`` that differs by input: subclasses read and score."""

    run: LoadedRun
    device: Any
    batch_size: int = 16
    skipped: list[Skipped] = field(default_factory=list)

    key: ClassVar[str] = "image"  # the row's name field
    noun: ClassVar[str] = "image"  # one input, for messages
    segment_fields: ClassVar[tuple[str, ...]] = ()  # the fields of a segment row besides its labels

    def __call__(self, files: Sequence[Path], *, explain: bool, segments: bool,
                 progress: ProgressHook) -> Iterator[Scored]:
        raise NotImplementedError


class ImageScorer(Scorer):
    """Images through the run's backbone and head."""

    @classmethod
    def load(cls, run_dir, cfg, device) -> "ImageScorer":
        return cls(load_run(run_dir, cfg.checkpoint, device=device, with_backbone=True, image_size=cfg.image_size),
                   device, cfg.batch_size)

    def __call__(self, files, *, explain, segments, progress):
        predictor = Predictor(self.run, self.device, batch_size=self.batch_size, skipped=self.skipped)
        for item in predictor(files, explain=explain, progress=progress):
            sheet = (lambda shown, item=item: explain_image(item.image, item.maps, shown)) if explain else None
            yield Scored(os.fspath(item.path), item.scores, path=item.path, sheet=sheet)


class RecordScorer(Scorer):
    """YouTube-8M records: their frames through the run's temporal head; segments of 5 frames."""

    key, noun, segment_fields = "video", "YouTube-8M record", ("start",)

    @classmethod
    def load(cls, run_dir, cfg, device) -> "RecordScorer":
        return cls(load_run(run_dir, cfg.checkpoint, device=device), device, cfg.batch_size)

    def __call__(self, files, *, explain, segments, progress):
        predictor = VideoPredictor(self.run, self.device, batch_size=self.batch_size, skipped=self.skipped,
                                   max_frames=(self.run.config.get("data") or {}).get("frames"))
        for item in predictor(files, segments=segments, progress=progress):
            parts = ([({"start": int(s)}, sc) for s, sc in zip(item.segment_starts, item.segment_scores)]
                     if segments else None)
            yield Scored(item.id, item.scores, segments=parts)


@dataclass
class ClipScorer(Scorer):
    """Video files: sampled frames through the backbone, then the run's temporal head; segments of
    ``segment_seconds``."""

    key, noun, segment_fields = "video", "video file", ("start", "end")
    segment_seconds: float | None = None

    @classmethod
    def load(cls, run_dir, cfg, device) -> "ClipScorer":
        return cls(load_clip_run(run_dir, cfg.checkpoint, device), device, cfg.batch_size,
                   segment_seconds=cfg.segment_seconds)

    def __call__(self, files, *, explain, segments, progress):
        progress.start("Predicting", total=len(files), unit="clip")
        for item in score_clips(files, self.run, self.device, sampling=run_sampling(self.run.config),
                                segment_seconds=self.segment_seconds if segments else None, explain=explain,
                                batch_size=self.batch_size):
            progress.advance(1)
            if isinstance(item, SkippedImage):
                self.skipped.append(Skipped(item.path, item.reason))
                continue
            parts = [({"start": s, "end": e}, sc) for s, e, sc in item.segments] if segments else None
            sheet = (lambda shown, item=item: explain_strip(item, [(k, n, s) for k, n, s, _ in shown])) if explain \
                else None
            yield Scored(item.path, item.scores, path=Path(item.path), segments=parts, sheet=sheet)
        progress.stop()


SCORERS: dict[str, type[Scorer]] = {"image": ImageScorer, "record": RecordScorer, "clip": ClipScorer}
