"""Pre-computed label statistics (``format="stats"``): counts only, no images, so they become a
:class:`~mlgraph_cli.core.graph.counts.LabelGraph` directly instead of :class:`Annotations`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from mlgraph_cli.core.annotations.common import FORMAT_FIX, first_duplicate
from mlgraph_cli.core.graph.counts import LabelGraph
from mlgraph_cli.core.io.jsonfile import read_json
from mlgraph_cli.errors import input_error

STATS_KEYS = ("labels", "image_counts", "cooccurrence")


def load_label_stats(path: str | os.PathLike, *, label_order: str = "name"):
    """A :class:`LabelGraph` from pre-computed statistics (``format="stats"``).

    Layout (e.g. ../shared/data/coco2014-label-stats/cooccurrence.json): ``labels`` (C names),
    ``image_counts`` (C ints, n_i), ``cooccurrence`` (C x C ints, M_ij, symmetric) and the image
    count N as ``num_images`` or as "<N> images" inside the ``split`` text.
    """
    p = Path(path)
    data = read_json(p, fix="label statistics need labels, image_counts, cooccurrence")
    if not isinstance(data, dict) or not set(STATS_KEYS) <= set(data):
        missing = list(STATS_KEYS) if not isinstance(data, dict) else sorted(set(STATS_KEYS) - set(data))
        raise input_error(p, f"label statistics lack {', '.join(missing)}", FORMAT_FIX)
    labels = data["labels"]
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise input_error(p, "`labels` must be a list of names")
    if len(set(labels)) != len(labels):
        raise input_error(p, f"label {first_duplicate(labels)!r} appears twice in `labels`")
    c = len(labels)
    try:
        counts = _whole(data["image_counts"])  # (C,) n_i
        m = _whole(data["cooccurrence"])  # (C, C) M_ij
    except (TypeError, ValueError):
        raise input_error(p, "`image_counts` and `cooccurrence` must hold whole numbers") from None
    if counts.shape != (c,) or m.shape != (c, c):
        raise input_error(p, f"{c} labels but image_counts has shape {counts.shape} and cooccurrence {m.shape}")
    if not np.array_equal(m, m.T):
        i, j = np.argwhere(m != m.T)[0]
        raise input_error(p, f"cooccurrence is not symmetric ([{labels[i]!r}][{labels[j]!r}] = {m[i, j]}, "
                             f"reverse = {m[j, i]})")
    np.fill_diagonal(m, 0)  # M_ii is not a co-occurrence; some files keep n_i there
    if (m < 0).any() or (counts < 0).any():
        raise input_error(p, "negative counts")
    over = np.argwhere(m > np.minimum(counts[:, None], counts[None, :]))
    if len(over):
        i, j = over[0]
        raise input_error(p, f"{labels[i]!r} and {labels[j]!r} co-occur {m[i, j]} times, more than their image "
                             f"counts ({counts[i]}, {counts[j]})")
    num_images = data.get("num_images")
    if num_images is None:
        found = re.search(r"([\d,]+)\s+images", str(data.get("split", "")))
        num_images = int(found.group(1).replace(",", "")) if found else None
    if not isinstance(num_images, int) or isinstance(num_images, bool) or num_images < 0:
        raise input_error(p, "the number of images is missing", "add \"num_images\": N to the file")
    if (bad := np.flatnonzero(counts > num_images)).size:
        raise input_error(p, f"{labels[bad[0]]!r} has {counts[bad[0]]} images, more than the {num_images} images "
                             "of the statistics")
    # Images carrying i or j are at most all of them: n_i + n_j - M_ij <= N.
    union = counts[:, None] + counts[None, :] - m
    np.fill_diagonal(union, 0)
    if len(over := np.argwhere(union > num_images)):
        i, j = over[0]
        raise input_error(p, f"{labels[i]!r} ({counts[i]} images) and {labels[j]!r} ({counts[j]} images) co-occur "
                             f"{m[i, j]} times, so together they are on {union[i, j]} images, more than the "
                             f"{num_images} images of the statistics")
    order = np.argsort(np.array(labels, dtype=object), kind="stable") if label_order == "name" else np.arange(c)
    meta = {k: data[k] for k in ("split", "note") if k in data}
    return LabelGraph(labels=[labels[i] for i in order], image_counts=counts[order],
                      cooccurrence=sp.csr_matrix(m[np.ix_(order, order)]), num_images=num_images, meta=meta)


def _whole(values) -> np.ndarray:
    """An int64 array of ``values``; ValueError unless every one is a whole number (2.0 is, 2.5 and "2" are not)."""
    arr = np.asarray(values)
    if arr.dtype.kind == "f" and np.all(np.isfinite(arr) & (arr == np.round(arr))):
        return arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"not whole numbers: {arr.dtype}")
    return arr.astype(np.int64)
