"""Where outputs may go: never onto a file the same command reads.

Every stage that writes an artifact calls :func:`check_output_not_input` with its inputs before
it reads anything, so ``mlgraph build-graph a.json -o a.json`` is a one-line error instead of an
input destroyed with exit code 0. Paths are compared after resolving symlinks and ``..``; for
files that exist, ``os.path.samefile`` also catches hard links.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from mlgraph_cli.errors import MlgraphError


def same_path(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether ``a`` and ``b`` name the same file (symlinks, ``..`` and hard links followed)."""
    pa, pb = Path(a), Path(b)
    try:
        if pa.exists() and pb.exists():
            return os.path.samefile(pa, pb)
    except OSError:
        pass
    return pa.resolve() == pb.resolve()


def check_output_not_input(output: str | os.PathLike, inputs: Iterable[str | os.PathLike | None], *,
                           flag: str = "-o") -> None:
    """Raise a one-line :class:`MlgraphError` when ``output`` is one of ``inputs``.

    ``inputs`` may hold None (an input not given) and ``-`` (stdin); both are skipped, as is an
    ``output`` of ``-`` (stdout).
    """
    if os.fspath(output) == "-":
        return
    for source in inputs:
        if source is None or os.fspath(source) == "-":
            continue
        if same_path(output, source):
            raise MlgraphError(f"{os.fspath(output)}: is also an input of this command ({os.fspath(source)}), and "
                               f"writing it would destroy that input (pass another file name to {flag})")


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
