"""YouTube-8M: the TFRecord files a command is given (paths, quoted globs, folders of shards)."""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Sequence

from mlgraph_cli.core.io.inputs import check_input_file
from mlgraph_cli.errors import MlgraphError, input_error

RECORDS_FIX = "pass YouTube-8M frame- or video-level TFRecords"


def expand_inputs(patterns: Sequence[str | os.PathLike]) -> list[Path]:
    """Files named by ``patterns``: paths, shell globs (quoted, so the shell leaves them to us), or
    folders (their files with ``.tfrecord`` in the name). Sorted within each pattern; one-line error
    for a pattern that matches nothing."""
    out: list[Path] = []
    for pattern in patterns:
        text = os.fspath(pattern)
        p = Path(text)
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.is_file() and ".tfrecord" in q.name)
            if not found:
                raise input_error(p, "a folder with no *.tfrecord files", RECORDS_FIX)
        elif glob.has_magic(text):
            found = sorted(Path(q) for q in glob.glob(text) if Path(q).is_file())
            if not found:
                raise input_error(text, "no file matches this pattern", "check the pattern and quote it")
        else:
            found = [check_input_file(p, fix=RECORDS_FIX)]  # missing, or a FIFO: said as such
        out.extend(q for q in found if q not in out)
    if not out:
        raise MlgraphError(f"no TFRecord files given ({RECORDS_FIX})")
    return out
