"""Guesses a table reader makes, said out loud: notes that name what was guessed and the flag
that settles it. A guess is never changed here (the file is read as its shape says); the
reader adds these notes, and the commands print them on stderr.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp


def joined_labels(labels: list[str], taken: tuple[str, ...]) -> list[str]:
    """A note for each character that seems to join several labels into one name (``cat|dog``).

    ``|`` always does (no dataset we know puts it in a name); ``,``, ``/``, ``:`` and ``+`` only
    when a name is made of other labels (``shirt/bag`` beside ``shirt`` and ``bag``; not ``t-shirt/top``).
    """
    notes = []
    known = set(labels)
    for c in "|,/:+":
        joined = [x for x in labels if c in x]
        if c in taken or not joined:
            continue
        if c == "|" or any(all(piece.strip() in known for piece in x.split(c)) for x in joined):
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
