"""Settings of ``mlgraph embed`` and ``mlgraph inspect``: plain dataclasses (no torch, no numpy at
import), so the commands' help can show their defaults without loading the methods."""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field

from mlgraph_cli.core.graph.config import ADJACENCY_KINDS

METHODS = ("asge", "word", "deepwalk", "spectral", "onehot")
OOV_POLICIES = ("error", "random")  # labels missing from the word vectors: refuse, or seeded random vectors
WEIGHTINGS = ("uniform", "balanced")  # ASGE pair weights (core/embeddings/asge.py)
DEFAULT_DIM = 300  # width of ASGE / DeepWalk / spectral embeddings unless --dim says otherwise
MAX_DIM = 65536  # the widest embeddings read back (core/embeddings/files.py MAX_DIMENSION)
# Upper bounds of the whole-number settings: far beyond any use, and refused before a fit would
# allocate (or run) that much.
LIMITS = {"steps": 10**7, "hidden": MAX_DIM, "threads": 1024, "walks_per_label": 10**5, "walk_length": 10**5,
          "window": 10**4, "epochs": 10**5, "dim": MAX_DIM}


@dataclass
class EmbedConfig:
    """Options of ``mlgraph embed`` (defaults, then the project's ``[embed]``, then flags).

    adjacency/tau/p: the target adjacency (core/graph/adjacency.py kinds; tau for binary and mlgcn, p for
    mlgcn). self_weight: lambda of the ASGE target A + lambda I (core/graph/adjacency.py
    ``keep_apart``; 0 = A as it is, the paper's target). dim: None picks the method's natural width (DEFAULT_DIM; the vectors' for ``word``;
    C for ``onehot``, the identity; a dim above C gives C seeded random orthonormal rows of that
    width, the one-hot control as wide as ASGE). steps/lr/hidden/weighting/threads: the ASGE fit.
    walks_per_label/walk_length/window/epochs: DeepWalk. oov: ``error`` or ``random`` for labels
    missing from the word vectors.
    """

    method: str = "asge"
    adjacency: str = "cond-mean"
    tau: float = 0.4
    p: float = 0.2
    dim: int | None = field(default=None, metadata={"default": str(DEFAULT_DIM)})  # the help's default
    seed: int = 0
    oov: str = "error"
    steps: int = 500
    lr: float = 0.01
    hidden: int = 256
    weighting: str = "uniform"
    self_weight: float = 3.0  # chosen on validation with CMA (docs/benchmarks.md, "A fair comparison")
    threads: int = 1
    walks_per_label: int = 10
    walk_length: int = 40
    window: int = 5
    epochs: int = 5

    def __post_init__(self) -> None:
        for name, value, choices in (("method", self.method, METHODS), ("adjacency", self.adjacency, ADJACENCY_KINDS),
                                     ("oov", self.oov, OOV_POLICIES), ("weighting", self.weighting, WEIGHTINGS)):
            if value not in choices:
                raise ValueError(f"unknown {name} {value!r} (choose one of: {', '.join(choices)})")
        for name, top in LIMITS.items():
            value = getattr(self, name)
            if name == "dim" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
                raise ValueError(f"{flag(name)} {value}: must be a whole number from 1 to {top:,}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**63:
            raise ValueError(f"--seed {self.seed}: must be a whole number from 0 to 2**63 - 1")
        for name, low, high in (("tau", 0.0, 1.0), ("p", 0.0, 1.0), ("lr", 0.0, 10.0), ("self_weight", 0.0, 1e6)):
            value = getattr(self, name)
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            if not ok or not low <= value <= high or (name == "lr" and value == 0):
                raise ValueError(f"{flag(name)} {value}: must be a finite number from {low:g} to {high:g}"
                                 + (" (and not 0)" if name == "lr" else ""))

    def adjacency_params(self) -> dict[str, float]:
        """The parameters the chosen adjacency kind takes (recorded in the output)."""
        return params_for(self.adjacency, tau=self.tau, p=self.p)


def flag(name: str) -> str:
    """The option of a setting, as messages name it (``self_weight`` -> ``--self-weight``)."""
    return "--" + name.replace("_", "-")


def params_for(kind: str, **candidates: float) -> dict[str, float]:
    """The subset of ``candidates`` that adjacency ``kind`` takes (tau for binary, tau and p for mlgcn)."""
    from mlgraph_cli.core.graph.adjacency import ADJACENCIES  # lazy: start-up — the CLI imports this config

    accepted = inspect.signature(ADJACENCIES[kind]).parameters
    return {k: v for k, v in candidates.items() if k in accepted}


@dataclass
class ReportConfig:
    """What ``mlgraph inspect`` and ``mlgraph embed --report`` measure against.

    neighbours/tau/min_weight: label j is a neighbour of i when the ``neighbours`` adjacency
    (computed with ``tau``) exceeds ``min_weight``; the default, ``binary`` at tau 0.4, is
    ML-GCN's graph: max(P(j|i), P(i|j)) >= 0.4. reference: the continuous adjacency for the
    correlations (None: the one the embeddings were fitted to, else cond-mean). topk: nearest
    labels listed per label.
    """

    neighbours: str = "binary"
    tau: float = 0.4
    min_weight: float = 0.0
    reference: str | None = None
    topk: int = 5

    def __post_init__(self) -> None:

        for name, value in (("neighbours", self.neighbours), ("reference", self.reference)):
            if value is not None and value not in ADJACENCY_KINDS:
                raise ValueError(f"unknown {name} adjacency {value!r} (choose one of: {', '.join(ADJACENCY_KINDS)})")
        if isinstance(self.topk, bool) or not isinstance(self.topk, int) or self.topk < 0:
            raise ValueError(f"--topk {self.topk}: must be a whole number >= 0")
        for name in ("tau", "min_weight"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{flag(name)} {value}: must be a finite number")
        if not 0 <= self.tau <= 1:
            raise ValueError(f"--tau {self.tau}: must be a number from 0 to 1")
