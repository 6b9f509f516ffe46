"""The settings of ``mlgraph fit`` itself (``[fit]`` in mlgraph.toml). Everything about how a stage
works (backbone layers, learning rate, embedding method, ...) stays in that stage's own table."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class FitConfig:
    """val / test: shares of the annotated images drawn (seeded by ``seed``) for validation and for
    the test set when no file or split column names them; 0 = no such split (without a validation
    split, train holds out its own ``--val-fraction``; without a test split nothing is evaluated).
    split_column: the CSV column that names each image's split (train, val or test), used when
    the training CSV has it. folder: where a fit outside a project keeps its files."""

    val: float = 0.1
    test: float = 0.1
    seed: int = 0
    split_column: str = "split"
    folder: str = "runs/fit/exp"

    def __post_init__(self) -> None:
        checks = [
            (0.0 <= self.val < 1.0, f"val must be in [0, 1), not {self.val}"),
            (0.0 <= self.test < 1.0, f"test must be in [0, 1), not {self.test}"),
            (self.val + self.test < 1.0, f"val + test must leave images to train on, not {self.val + self.test:g}"),
            (bool(self.split_column), "split_column must be a column name"),
            (bool(self.folder), "folder must be a path"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
