"""The settings of ``mlgraph predict`` (``[predict]`` in mlgraph.toml): plain data, no torch.

Defaults live here alone: the stage fills what the caller leaves unset from this dataclass (then
the project's ``[predict]`` table, then flags), and the command's help shows these values.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlgraph_cli.core.features.config import MAX_IMAGE_SIZE
from mlgraph_cli.core.training.config import CHECKPOINTS

FORMATS = ("table", "jsonl", "csv")
TUNED = "tuned"  # --threshold tuned: the run's per-label thresholds (chosen on validation at train time)
MAX_AUTO_THREADS = 4  # more threads than this gain little for one backbone forward on CPU


@dataclass
class PredictConfig:
    """How to score: which labels to list, where to run, and how.

    ``threshold``: a probability, ``"tuned"`` (the run's per-label thresholds), or None (the
    run's single threshold). ``format``: None picks from ``-o``'s suffix. ``segments``: also score
5-frame segments (YouTube-8M) or ``segment_seconds`` windows (video files). ``threads``: torch CPU
    threads, 0 = automatic (see :func:`auto_threads`).
    """

    topk: int | None = None
    threshold: float | str | None = None
    format: str | None = None
    checkpoint: str = "best"
    device: str = "auto"
    batch_size: int = 16
    image_size: int | None = None
    segments: bool = False
    segment_seconds: float = 5.0
    threads: int = 0

    def __post_init__(self) -> None:
        self.threshold = parse_threshold(self.threshold)
        if self.topk is not None and (isinstance(self.topk, bool) or not isinstance(self.topk, int) or self.topk < 1):
            raise ValueError(f"--topk {self.topk}: must be at least 1")
        if self.format is not None and self.format not in FORMATS:
            raise ValueError(f"--format {self.format}: unknown (choose one of: {', '.join(FORMATS)})")
        if self.checkpoint not in CHECKPOINTS:
            raise ValueError(f"--checkpoint {self.checkpoint}: choose one of {', '.join(CHECKPOINTS)}")
        if self.image_size is not None and (isinstance(self.image_size, bool) or not isinstance(self.image_size, int)
                                            or not 1 <= self.image_size <= MAX_IMAGE_SIZE):
            raise ValueError(f"--image-size {self.image_size}: must be a whole number of px from 1 to {MAX_IMAGE_SIZE}")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"--batch-size {self.batch_size}: must be at least 1")
        if isinstance(self.segment_seconds, bool) or not isinstance(self.segment_seconds, (int, float)) \
                or not 0 < self.segment_seconds < float("inf"):
            raise ValueError(f"--segment-seconds {self.segment_seconds}: must be a positive number of seconds")
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 0:
            raise ValueError(f"--threads {self.threads}: must be 0 (automatic) or a number of threads")


def parse_threshold(value: float | str | None) -> float | str | None:
    """None, ``"tuned"`` or a probability in [0, 1] (given as a number or as text)."""
    if value is None or value == TUNED:
        return value
    try:
        number = float(value)
        if isinstance(value, bool) or not 0.0 <= number <= 1.0:
            raise ValueError
    except (TypeError, ValueError):
        raise ValueError(f"--threshold {value}: must be a probability between 0 and 1, or '{TUNED}'") from None
    return number


def auto_threads(images: int, cores: int, load: float = 0.0) -> int:
    """Torch threads when ``--threads`` is 0: one for a handful of images (start-up dominates the
    time), else the cores not busy with other work (``load``: the 1-minute load average), at
    least 1 and at most ``min(cores, MAX_AUTO_THREADS)``. Threads beyond the idle cores make
    torch's threads wait for each other: on a loaded 2-core machine 2 threads ran a one-image
    predict 1.7x slower than 1 (docs/benchmarks-speed.md)."""
    if images <= 4:
        return 1
    idle = int(cores - load + 1)  # + 1: the load counts this process too, once it runs
    return max(1, min(cores, MAX_AUTO_THREADS, idle))
