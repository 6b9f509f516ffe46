"""Label sets with co-occurrence structure: latent "outfits" plus noise.

A scene's labels are drawn in three steps, so the label graph built from them carries real
information (which items go together) without being a deterministic lookup:

1. pick one outfit by its weight (the latent variable, never written to the annotations);
2. keep each of its items with probability ``p_keep`` (dropped items);
3. add each other label with probability ``p_extra`` (stray items),

then clip to ``min_items``..``max_items`` labels (an empty draw keeps one item of the outfit;
an oversized one drops items at random). Each label appears at most once per scene.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class Outfit:
    """A latent scene type: a name, its items (label names) and its prior weight."""

    name: str
    items: tuple[str, ...]
    weight: float


# Every label belongs to at least one outfit, and most to two, so the graph is connected but
# its strong edges differ (t-shirt-sandal through summer, coat-ankle boot through office and
# winter); weights are relative.
DEFAULT_OUTFITS: tuple[Outfit, ...] = (
    Outfit("summer", ("t-shirt", "trouser", "sandal"), 0.22),
    Outfit("office", ("shirt", "coat", "ankle boot", "bag"), 0.20),
    Outfit("sport", ("pullover", "trouser", "sneaker"), 0.20),
    Outfit("evening", ("dress", "sandal", "bag"), 0.18),
    Outfit("winter", ("coat", "pullover", "ankle boot"), 0.20),
)


@dataclass(frozen=True)
class LabelSetConfig:
    """How label sets are drawn (see the module docstring); probabilities are per item."""

    outfits: tuple[Outfit, ...] = DEFAULT_OUTFITS
    p_keep: float = 0.75
    p_extra: float = 0.05
    min_items: int = 1
    max_items: int = 4


def check_outfits(labels: Sequence[str], outfits: Sequence[Outfit]) -> None:
    """Raise ``ValueError`` if an outfit names an unknown label or weights are not positive."""
    known = set(labels)
    for outfit in outfits:
        unknown = [item for item in outfit.items if item not in known]
        if unknown:
            raise ValueError(f"outfit {outfit.name!r} names unknown label(s) {unknown}; labels are {list(labels)}")
        if outfit.weight <= 0:
            raise ValueError(f"outfit {outfit.name!r} has weight {outfit.weight}; weights must be > 0")


def sample_label_set(rng: np.random.Generator, labels: Sequence[str], config: LabelSetConfig) -> tuple[list[int], str]:
    """One scene's labels (indices into ``labels``, in drawing order) and its outfit's name."""
    index = {name: i for i, name in enumerate(labels)}
    weights = np.array([o.weight for o in config.outfits], dtype=np.float64)
    outfit = config.outfits[int(rng.choice(len(config.outfits), p=weights / weights.sum()))]
    members = [index[item] for item in outfit.items]
    # one uniform draw per label in a fixed order, so the stream does not depend on the outcome
    draws = rng.random(len(labels))
    chosen = [i for i in members if draws[i] < config.p_keep]
    chosen += [i for i in range(len(labels)) if i not in members and draws[i] < config.p_extra]
    if len(chosen) < config.min_items:
        spare = [i for i in members if i not in chosen] or [i for i in range(len(labels)) if i not in chosen]
        chosen += [int(i) for i in rng.permutation(spare)[: config.min_items - len(chosen)]]
    if len(chosen) > config.max_items:
        chosen = [chosen[int(k)] for k in np.sort(rng.choice(len(chosen), size=config.max_items, replace=False))]
    return chosen, outfit.name


def sample_label_sets(n: int, labels: Sequence[str], config: LabelSetConfig, seed: int) -> list[list[int]]:
    """``n`` label sets without rendering anything (for tests and for the docs' statistics)."""
    check_outfits(labels, config.outfits)
    rng = np.random.default_rng(seed)
    return [sample_label_set(rng, labels, config)[0] for _ in range(n)]


def cooccurrence_stats(label_sets: Sequence[Sequence[int]], num_labels: int) -> tuple[np.ndarray, np.ndarray]:
    """Marginals P(j) (C,) and conditionals P(j | i) (C x C, row i; NaN where i never occurs)."""
    y = np.zeros((len(label_sets), num_labels), dtype=np.float64)
    for row, ids in enumerate(label_sets):
        y[row, list(ids)] = 1.0
    n_i = y.sum(0)
    both = y.T @ y
    with np.errstate(invalid="ignore", divide="ignore"):
        conditional = both / n_i[:, None]
    return y.mean(0), conditional
