"""Train / val / test splits drawn from one annotation file, for ``mlgraph fit``.

Where the splits come from, in order: a CSV column that names each image's split (``split`` by
default: ``train``, ``val`` / ``valid`` / ``validation`` / ``dev``, ``test``); then, for a split
that neither a file nor the column gives, a seeded draw of a share of the images (numpy's PCG64
with the fit's seed over the rows in file order, the rows not drawn stay for training). The
draws are taken from the training rows, test first, then validation, so one seed gives the same
split whatever the shares of the other.

Each split is written as a one-hot CSV (``path,<label 1>,...,<label C>``; 1 positive, -1
negative, 0 unknown or difficult: the convention the CSV reader knows, core/annotations/tabular.py),
with the file names relative to the same images folder as the source. Every split file lists
every label, so a small validation split that lacks one still has the training file's label set.
"""

from __future__ import annotations

import csv
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlgraph_cli.core.annotations import CSV_LABEL_COLUMNS, CSV_PATH_COLUMNS, Annotations, load_annotations
from mlgraph_cli.core.io.outputs import write_text
from mlgraph_cli.errors import MlgraphError, input_error

SPLITS = ("train", "val", "test")
# what a split column may say -> the split
SPLIT_VALUES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
                "dev": "val", "test": "test", "testing": "test"}


@dataclass
class Drawn:
    """The split files written: split -> path, split -> image count, and how they were made."""

    files: dict[str, Path]
    counts: dict[str, int]
    how: str  # "column 'split'", "drawn (seed 0)", or both


def has_split_column(path: str | os.PathLike, column: str) -> bool:
    """Whether ``path`` is a CSV whose header names ``column`` (its first line alone is read)."""
    p = Path(path)
    if p.suffix.lower() not in (".csv", ".tsv") or not p.is_file():
        return False
    with open(p, encoding="utf-8-sig", newline="") as f:
        head = f.readline()
    return column.lower() in (c.strip().lower() for c in re.split(r"[,\t]", head))


def split_column(path: str | os.PathLike, column: str) -> dict[str, str] | None:
    """Image path -> split from a CSV whose header has ``column``; None when the file is no such CSV."""
    p = Path(path)
    if not has_split_column(p, column):
        return None
    text = p.read_text(encoding="utf-8-sig")
    head = text.partition("\n")[0]
    delimiter = "\t" if p.suffix.lower() == ".tsv" or ("\t" in head and "," not in head) else ","
    rows = csv.reader(io.StringIO(text), delimiter=delimiter)
    header = [c.strip().lower() for c in next(rows, [])]
    if column.lower() not in header:
        return None
    at = header.index(column.lower())
    path_at = next((k for k, c in enumerate(header) if c in CSV_PATH_COLUMNS and k != at), 0)
    found: dict[str, str] = {}
    for line, row in enumerate(rows, start=2):
        if not any(c.strip() for c in row):
            continue
        value = row[at].strip().lower() if at < len(row) else ""
        if value not in SPLIT_VALUES:
            raise input_error(p, f"the {column!r} column says {value!r}", "write train, val or test there",
                              line=line)
        name, split = row[path_at].strip(), SPLIT_VALUES[value]
        if found.setdefault(name, split) != split:
            raise input_error(p, f"{name} is in two splits ({found[name]} and {split})", "give each image one split",
                              line=line)
    return found


def draw_splits(annotations: str | os.PathLike, dest: str | os.PathLike, *, shares: dict[str, float], seed: int,
                column: str, format: str | None = None) -> Drawn:
    """Write ``dest/{train,val,test}.csv`` from ``annotations``.

    shares: ``{"val": 0.1, "test": 0.1}``, the share of all images drawn for each split the
    column does not give (leave a split out, or 0, for none: a split given as its own file).
    """
    ann = load_annotations(annotations, format)
    n = ann.num_images
    if any(f is None for f in ann.files):
        raise input_error(annotations, "some images have no file name, so they cannot be split into files",
                          "give the splits as files: --val-annotations, --test-annotations")
    by_column = split_column(annotations, column)
    assigned = np.array(["train"] * n, dtype=object)
    how = []
    if by_column is not None:
        assigned = np.array([by_column.get(f, "train") for f in ann.files], dtype=object)
        how.append(f"column {column!r}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)  # one permutation: each split takes its share from the front of what is left
    drawn = False
    for split in ("test", "val"):
        share = shares.get(split) or 0.0
        if share <= 0 or (assigned == split).any():
            continue
        want = max(1, int(round(share * n)))
        pool = [i for i in order if assigned[i] == "train"]
        if want >= len(pool):
            raise input_error(annotations, f"{n} image(s) are too few to hold out {share:g} for {split}",
                              f"pass a smaller --{split}, or give the split as a file")
        assigned[pool[:want]] = split
        drawn = True
    if drawn:
        how.append(f"drawn with seed {seed}")
    if not (assigned == "train").any():
        raise input_error(annotations, "no image is left for training", "check the split column or the shares")
    out = Path(dest)
    files, counts = {}, {}
    for split in SPLITS:
        rows = np.flatnonzero(assigned == split)
        if len(rows):
            files[split] = _write_one_hot(out / f"{split}.csv", ann, rows)
            counts[split] = int(len(rows))
    return Drawn(files=files, counts=counts, how=", ".join(how) or "none")


def _write_one_hot(path: Path, ann: Annotations, rows: np.ndarray) -> Path:
    """``path,<labels...>`` with 1 / -1 / 0 cells for ``rows`` of ``ann`` (in file order)."""
    if len(ann.labels) < 2:
        raise input_error(ann.source, f"{len(ann.labels)} label(s): multi-label training needs at least two")
    clash = [name for name in ann.labels if name.strip().lower() in (*CSV_LABEL_COLUMNS, *CSV_PATH_COLUMNS)]
    if clash:
        raise MlgraphError(f"{ann.source}: the label {clash[0]!r} is also a column name of the CSV format, so it "
                           "cannot head a split file (give the splits as files: --val-annotations, "
                           "--test-annotations)")
    y = ann.dense()[rows]  # (n, C): 1 positive, 0 negative, -1 unknown
    cells = np.where(y == 1, "1", np.where(y == 0, "-1", "0"))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["path", *ann.labels])
    for k, i in enumerate(rows):
        writer.writerow([ann.files[i], *cells[k]])
    write_text(path, buffer.getvalue())
    return path
