"""The settings of ``mlgraph evaluate`` (``[evaluate]`` in mlgraph.toml): defaults, then the
project's table, then flags (core.project.merge_config). A plain dataclass: no torch, no numpy,
so the CLI's help can show these defaults without importing either.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mlgraph_cli.core.training.config import CHECKPOINTS
from mlgraph_cli.errors import MlgraphError

TUNED = "tuned"


@dataclass
class EvaluateConfig:
    """threshold: a probability, ``"tuned"`` (the run's per-label thresholds, chosen on validation
    by ``mlgraph train``), or None (the run's global threshold, 0.5 unless trained with another).
    plots: write precision-recall curves and a per-label chart beside the metrics JSON.
    per_label: print the per-label table (the JSON always holds it). top_k_segments: K of a video
    run's segment MAP@K; None = 100,000, the Kaggle metric's."""

    threshold: float | str | None = field(default=None, metadata={"default": "the run's threshold, 0.5"})
    checkpoint: str = "best"
    device: str = "auto"
    batch_size: int = 64
    top_k_segments: int | None = field(default=None, metadata={"default": "100000, the Kaggle metric's"})
    plots: bool = True
    per_label: bool = False

    def checked(self) -> "EvaluateConfig":
        """This config with ``threshold`` parsed; a bad value is one line naming the option."""
        t = self.threshold
        if isinstance(t, str) and t != TUNED:
            try:
                t = float(t)
            except ValueError:
                raise MlgraphError(f"--threshold {t}: not a number (pass a probability such as 0.5, or "
                                   f"'{TUNED}' for the run's per-label thresholds)") from None
        if isinstance(t, bool) or (t is not None and t != TUNED and not (isinstance(t, (int, float)) and 0 < t < 1)):
            raise MlgraphError(f"--threshold {t}: must be a probability between 0 and 1, or '{TUNED}'")
        if self.checkpoint not in CHECKPOINTS:
            raise MlgraphError(f"--checkpoint {self.checkpoint}: choose one of {', '.join(CHECKPOINTS)}")
        if self.top_k_segments is not None and self.top_k_segments < 1:
            raise MlgraphError(f"--top-k-segments {self.top_k_segments}: must be at least 1")
        if self.batch_size < 1:
            raise MlgraphError(f"--batch-size {self.batch_size}: must be at least 1")
        self.threshold = float(t) if isinstance(t, (int, float)) else t
        return self
