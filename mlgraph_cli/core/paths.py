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
