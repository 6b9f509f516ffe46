"""COCO instances JSON (``images``, ``annotations``, ``categories``) -> :class:`Annotations`.

An image carries a category when any of its annotations names it; iscrowd annotations count too
(docs/formats.md). Images without annotations are kept as all-negative rows.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np

from mlgraph_cli.core.annotations.common import FORMAT_FIX, Annotations, binary_csr, first_duplicate
from mlgraph_cli.errors import input_error


def read_coco(p: Path, text: str, label_order: str) -> Annotations:
    """Columns in category-id order (``label_order="id"``) or by name; ``meta["category_ids"]`` keeps the ids."""
    fix = "is it a COCO instances file? otherwise " + FORMAT_FIX
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise input_error(p, f"malformed JSON: {exc.msg}", fix, line=exc.lineno) from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
            or not isinstance(data.get("categories"), list):
        raise input_error(p, "not a COCO instances file (needs `images` and `categories` lists)", fix)
    by_id = _categories(p, data["categories"], label_order, fix)
    col_of_cat = {cid: k for k, (cid, _) in enumerate(by_id)}
    images = data["images"]
    try:
        image_keys = [img["id"] for img in images]
        files = [img.get("file_name") for img in images]
    except (KeyError, TypeError):
        raise input_error(p, "every image needs an `id`", fix) from None
    row_of_image = {k: r for r, k in enumerate(image_keys)}
    if len(row_of_image) != len(image_keys):
        raise input_error(p, f"image id {first_duplicate(image_keys)} is listed twice in `images`",
                          "give each image one entry")
    anns = data.get("annotations") or []
    # Every annotation counts, iscrowd ones included: they name a category too (docs/formats.md).
    try:
        image_of = [a["image_id"] for a in anns]
        cat_of = [a["category_id"] for a in anns]
    except (KeyError, TypeError):
        k = next(k for k, a in enumerate(anns) if not isinstance(a, dict) or not {"image_id", "category_id"} <= set(a))
        raise input_error(p, f"annotation {_ann_id(anns, k)} lacks image_id or category_id", fix) from None
    try:
        rows = np.fromiter(map(row_of_image.get, image_of, itertools.repeat(-1)), dtype=np.int64, count=len(anns))
        cols = np.fromiter(map(col_of_cat.get, cat_of, itertools.repeat(-1)), dtype=np.int64, count=len(anns))
    except TypeError:  # an unhashable id (a list or object)
        rows = cols = np.full(len(anns), -1, dtype=np.int64)
    if (rows < 0).any():
        k = int(np.flatnonzero(rows < 0)[0])
        raise input_error(p, f"annotation {_ann_id(anns, k)} refers to unknown image id {image_of[k]}",
                          "every annotation's image_id must be listed in `images`")
    if (cols < 0).any():
        k = int(np.flatnonzero(cols < 0)[0])
        raise input_error(p, f"annotation {_ann_id(anns, k)} has unknown category id {cat_of[k]}",
                          "every category_id must be listed in `categories`")
    y = binary_csr(rows, cols, (len(images), len(by_id)))  # (N, C)
    return Annotations(labels=[n for _, n in by_id], image_ids=[str(k) for k in image_keys], files=files,
                       positives=y, ignore=None, source=str(p), format="coco",
                       meta={"category_ids": [i for i, _ in by_id]})


def _categories(p: Path, cats: list, label_order: str, fix: str) -> list[tuple[int, str]]:
    """(category id, name) pairs in column order; names and ids must be distinct."""
    try:
        cat_pairs = [(int(c["id"]), str(c["name"])) for c in cats]
    except (KeyError, TypeError, ValueError):
        raise input_error(p, "every category needs an `id` and a `name`", fix) from None
    names = [n for _, n in cat_pairs]
    ids = [i for i, _ in cat_pairs]
    if len(set(names)) != len(names) or len(set(ids)) != len(ids):
        dup = first_duplicate(names) if len(set(names)) != len(names) else first_duplicate(ids)
        raise input_error(p, f"category {dup!r} is defined twice")
    return sorted(cat_pairs) if label_order == "id" else sorted(cat_pairs, key=lambda t: t[1])


def _ann_id(anns: list, k: int) -> Any:
    """An annotation's own id for messages (its position when it has none)."""
    return anns[k].get("id", k) if isinstance(anns[k], dict) else k
