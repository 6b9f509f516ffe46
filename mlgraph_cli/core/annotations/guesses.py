"""Guesses a table reader makes, said out loud: notes that name what was guessed and the flag
that settles it. A guess is never changed here (the file is read as its shape says); the
reader adds these notes, and the commands print them on stderr. One guess is refused instead of
said: labels joined by ``|`` (see :func:`refuse_bar_joined`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp

from mlgraph_cli.errors import input_error

# Joins labels in every table we have seen that holds it, and is in no dataset's label names.
BAR = "|"


def refuse_bar_joined(p: Path, labels: list[str], taken: tuple[str, ...]) -> None:
    """Labels joined by ``|`` read as one name each (``cat|dog``) make a graph of many labels and
    no edges: refused, with the flag that reads them, unless ``|`` is one of the delimiters in use."""
    joined = [x for x in labels if BAR in x]
    if joined and BAR not in taken:
        raise input_error(p, f"{len(joined)} label name(s) contain '|' (e.g. {joined[0]!r}): the labels seem to be "
                             "joined by '|', not ';'", "pass --label-delimiter '|'")


def joined_labels(labels: list[str], taken: tuple[str, ...]) -> list[str]:
    """A note for each character that seems to join several labels into one name (``cat|dog``).

    ``|`` is refused instead (:func:`refuse_bar_joined`); ``,``, ``/``, ``:`` and ``+`` are said
    only when a name is made of other labels (``shirt/bag`` beside ``shirt`` and ``bag``; not ``t-shirt/top``).
    """
    notes = []
    known = set(labels)
    for c in ",/:+":
        joined = [x for x in labels if c in x]
        if c in taken or not joined:
            continue
        if any(all(piece.strip() in known for piece in x.split(c)) for x in joined):
            notes.append(f"{len(joined)} label name(s) contain {c!r} (e.g. {joined[0]!r}) and were each read as one "
                         f"label: if {c!r} separates labels, pass --label-delimiter '{c}'")
    return notes


def unknown_header(head: str, paths: list[str], y: sp.csr_matrix, labels: list[str], columns: str) -> list[str]:
    """A note when the first row, read as data, looks like a header the reader did not know (``filepath,labelz``).

    It does when its path has no file suffix while other rows' paths have one, and its labels
    label no other row. y: (R, C) positives of the rows, in file order (before merging);
    columns: the header to suggest.
    """
    if len(paths) < 2 or Path(paths[0].strip()).suffix:
        return []
    others = paths[1:51]
    if sum(bool(Path(x.strip()).suffix) for x in others) * 2 < len(others):
        return []
    own = y.indices[y.indptr[0]:y.indptr[1]]
    if (np.bincount(y.indices, minlength=y.shape[1])[own] > 1).any():  # rows holding each label (CSR: once per row)
        return []
    names = ", ".join(repr(labels[k]) for k in own[:3]) or "none"
    return [f"line 1 ({head.strip()!r}) was read as an image with the label(s) {names}, but looks like a header: "
            f"if it is one, name its columns {columns}"]
