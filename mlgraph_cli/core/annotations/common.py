"""What every annotation reader shares: the result type, the format names, and the vectorised
steps from raw tokens to a sparse 0/1 matrix (read a file, tokens -> matrix, merge repeated rows).
"""

from __future__ import annotations

import os
import posixpath
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Hashable, Sequence

import numpy as np
import scipy.sparse as sp

from mlgraph_cli.core.graph.config import FORMATS, LABEL_ORDERS
from mlgraph_cli.core.io.inputs import check_input_file
from mlgraph_cli.core.progress import ProgressHook
from mlgraph_cli.errors import InputError, MismatchError, input_error

# How a user gets a file build-graph can read; ends most error messages.
FORMAT_FIX = "pass --format " + "|".join(FORMATS)


@dataclass
class Annotations:
    """Labels of N images over C labels.

    labels: the label order (C names). image_ids: N ids. files: N image paths relative to the
    images folder (``meta["image_root"]`` names it for folder formats), None where unknown.
    positives: (N, C) uint8 CSR, 1 = the image carries the label.
    ignore: (N, C) uint8 CSR or None, 1 = unknown / difficult (left out of loss and AP).
    negatives: (N, C) uint8 CSR or None, 1 = a verified negative (Open Images ``Confidence 0``);
    labels neither positive nor verified negative are unknown and count as negative by default.
    """

    labels: list[str]
    image_ids: list[str]
    files: list[str | None]
    positives: sp.csr_matrix
    ignore: sp.csr_matrix | None
    source: str
    format: str
    notes: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    negatives: sp.csr_matrix | None = None

    @property
    def num_images(self) -> int:
        return len(self.image_ids)

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    def dense(self) -> np.ndarray:
        """(N, C) int8: 1 positive, 0 negative, -1 ignore (difficult / unknown)."""
        y = self.positives.toarray().astype(np.int8)
        if self.ignore is not None:
            y[self.ignore.toarray() > 0] = -1
        return y

    def reorder(self, labels: Sequence[str], drop: Sequence[str] = ()) -> "Annotations":
        """The same images with columns in the order of ``labels`` (e.g. a graph's label order).

        Labels of ``labels`` absent here become all-zero columns (no image carries them); a label
        present here but missing from ``labels`` raises :class:`MismatchError`, unless it is in
        ``drop`` (its column is then left out).
        """
        wanted = set(labels) | set(drop)
        extra = [name for name in self.labels if name not in wanted]
        if extra:
            shown = ", ".join(repr(x) for x in extra[:5]) + (" ..." if len(extra) > 5 else "")
            raise MismatchError(f"{self.source}: {len(extra)} label(s) not in the expected label set: {shown} "
                                "(build the graph from these annotations with `mlgraph build-graph`)")
        here = {name: i for i, name in enumerate(self.labels)}
        # (C_old, C_new) selection matrix: column j of the result is old column here[labels[j]].
        src = np.array([here.get(name, -1) for name in labels], dtype=np.int64)
        keep = np.flatnonzero(src >= 0)
        sel = sp.csr_matrix((np.ones(len(keep), np.uint8), (src[keep], keep)), shape=(len(self.labels), len(labels)))

        def move(m: sp.csr_matrix | None) -> sp.csr_matrix | None:
            return None if m is None else (m @ sel).astype(np.uint8).tocsr()

        return Annotations(labels=list(labels), image_ids=self.image_ids, files=self.files,
                           positives=move(self.positives), ignore=move(self.ignore), source=self.source,
                           format=self.format, notes=list(self.notes), meta=dict(self.meta),
                           negatives=move(self.negatives))


# ---------------------------------------------------------------------------------------------
# Errors more than one reader raises

def missing_path(p: str | os.PathLike) -> InputError:
    return input_error(p, "no such file or folder", "check the path, or set [dataset] annotations in mlgraph.toml")


def empty_file(p: str | os.PathLike) -> InputError:
    return input_error(p, "the file is empty", "point at a file with annotations")


def first_duplicate(items: Sequence[Hashable]) -> Hashable:
    """The first item (in order) that occurs more than once; call only when one does."""
    counts = Counter(items)
    return next(x for x in items if counts[x] > 1)


# ---------------------------------------------------------------------------------------------
# Reading and assembling

def read_text(p: Path, progress: ProgressHook, chunk: int = 1 << 23) -> str:
    """The whole file as text (UTF-8, BOM dropped); special, empty and non-UTF-8 files are input errors."""
    size = check_input_file(p, fix="point at a file with annotations").stat().st_size
    progress.start(f"Reading {p.name}", total=round(size / 1e6, 1), unit="MB")
    parts = []
    with open(p, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            parts.append(block)
            progress.advance(len(block) / 1e6)
    progress.stop()
    raw = b"".join(parts)
    if not raw.strip():
        raise empty_file(p)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise input_error(p, "not UTF-8 text", "save the file as UTF-8", line=line) from None


def binary_csr(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    """(R, C) uint8 CSR with 1 at each (rows[k], cols[k]); a pair given twice is still one 1."""
    y = sp.csr_matrix((np.ones(len(rows), np.uint8), (rows, cols)), shape=shape)
    y.sum_duplicates()
    y.data[:] = 1
    return y


def tokens_matrix(tokens: list, counts: np.ndarray) -> tuple[sp.csr_matrix, list[str]]:
    """Rows of label tokens -> ((R, C) uint8 CSR, C names in first-appearance order).

    tokens: all rows' tokens concatenated; counts: (R,) tokens per row. Names are stripped of
    surrounding space; empty names are dropped. Vectorised: one dict lookup per token.
    """
    raw_vocab = dict.fromkeys(tokens)  # distinct raw tokens, first appearance order
    names: dict[str, int] = {}
    raw_index = {}
    for raw in raw_vocab:
        name = raw.strip()
        raw_index[raw] = names.setdefault(name, len(names)) if name else -1
    cols = np.fromiter(map(raw_index.__getitem__, tokens), dtype=np.int64, count=len(tokens))
    rows = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    keep = cols >= 0
    return binary_csr(rows[keep], cols[keep], (len(counts), len(names))), list(names)


def merge_rows(p: Path, ids: list[str], files: list, y: sp.csr_matrix, lines: np.ndarray | None,
               notes: list[str]) -> tuple[list[str], list, sp.csr_matrix]:
    """Merge rows that repeat an image with the same labels; conflicting labels are an error.

    Ids are compared as paths after normalisation (``a.jpg``, ``./a.jpg`` and ``x/../a.jpg`` are
    one image); the first spelling is kept. lines: (R,) file line of each row, for messages.
    Returns (U ids, U files, (U, C) matrix).
    """
    keys = same_file_keys(ids)
    if len(set(keys)) == len(keys):
        return ids, files, y
    unique = dict.fromkeys(keys)
    index = {k: i for i, k in enumerate(unique)}
    image_of_row = np.fromiter(map(index.__getitem__, keys), dtype=np.int64, count=len(keys))
    _, first_row = np.unique(image_of_row, return_index=True)  # (U,) first row of each image
    repeated = np.flatnonzero(first_row[image_of_row] != np.arange(len(ids)))
    for r in repeated.tolist():
        f = first_row[image_of_row[r]]
        a, b = y.indices[y.indptr[f]:y.indptr[f + 1]], y.indices[y.indptr[r]:y.indptr[r + 1]]
        if set(a.tolist()) != set(b.tolist()):
            line = int(lines[r]) if lines is not None else None
            first_line = int(lines[f]) if lines is not None else f + 1
            same = f" as {ids[f]!r}" if ids[f] != ids[r] else ""
            raise input_error(p, f"image {ids[r]!r} is listed again with different labels (first at line "
                                 f"{first_line}{same})", "give each image one row with all its labels", line=line)
    notes.append(f"{len(repeated):,} repeated row(s) of the same image with the same labels were merged")
    return [ids[i] for i in first_row.tolist()], [files[i] for i in first_row.tolist()], y[first_row]


def same_file_keys(ids: list[str]) -> list[str]:
    """``ids`` as :func:`merge_rows` compares them: paths normalised (``./``, ``//``, ``x/..``,
    backslashes) when any id needs it, else the ids themselves (one C-level scan)."""
    joined = "\n".join(map(str, ids))
    if not any(mark in joined for mark in ("./", "//", "\\")) and not joined.startswith("/"):
        return ids
    return [posixpath.normpath(str(i).replace("\\", "/")) if i else i for i in ids]


def apply_order(ann: Annotations, label_order: str) -> Annotations:
    """Columns sorted by name for ``label_order="name"``; the reader's own order otherwise."""
    if label_order != "name" or ann.labels == sorted(ann.labels):
        return ann
    return ann.reorder(sorted(ann.labels))
