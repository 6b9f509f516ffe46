"""Settings of ``mlgraph import-yt8m``: a plain dataclass (no numpy), so the command's help can
show its defaults without loading the reader."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ImportYt8mConfig:
    """Options of ``mlgraph import-yt8m`` (and the project's ``[import-yt8m]`` table)."""

    vocabulary: str | None = None  # vocabulary.csv: label names, columns = its classes
    segment_classes: str | None = None  # segment_label_ids.csv: keep only these classes as columns
    max_frames: int = 300  # T: longer videos are cut (YouTube-8M videos have at most 300 seconds)
    batch_size: int = 64  # videos per write

    def __post_init__(self) -> None:
        if not isinstance(self.max_frames, int) or self.max_frames < 1:
            raise ValueError(f"max_frames must be a whole number >= 1, not {self.max_frames!r}")
        if self.max_frames > 10**5:  # (B, 1152, T) would not fit in memory; YouTube-8M videos have <= 300 frames
            raise ValueError(f"max_frames must be at most 100000, not {self.max_frames!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"batch_size must be a whole number >= 1, not {self.batch_size!r}")
