"""Input paths named inside input files: a file name read from an annotation file must stay in
the folder it is relative to, unless the user says otherwise on the command line."""

from __future__ import annotations

import os
from typing import Iterable

from mlgraph_cli.errors import MlgraphError


def leaves_folder(name: str) -> bool:
    """Whether a file name taken from an input file points outside the folder it is relative to.

    The test is on the text (absolute, a drive, or ``..`` climbing above the start), not on
    resolved symlinks: a link the user made inside the images folder is the user's choice, while a
    name written in an annotation file may come from anyone.
    """
    text = name.replace("\\", "/")
    if os.path.isabs(text) or text.startswith("/") or (len(text) > 2 and text[0].isalpha() and text[1:3] == ":/"):
        return True
    depth = 0
    for part in text.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        elif part not in ("", "."):
            depth += 1
    return False


def check_inside_folder(folder: str | os.PathLike, names: Iterable[str], source: str | os.PathLike, *,
                        flag: str = "--allow-outside-paths") -> None:
    """Raise a one-line :class:`MlgraphError` naming ``source`` and the first of ``names`` (file
    names read from ``source``, relative to ``folder``) that leaves ``folder``."""
    for index, name in enumerate(names):
        if leaves_folder(str(name)):
            raise MlgraphError(f"{os.fspath(source)}: entry {index + 1} names {name!r}, which is outside the images "
                               f"folder {os.fspath(folder)} (fix the entry, or pass {flag} to read it anyway)")
