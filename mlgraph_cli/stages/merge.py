"""Stage: the shard files of one sharded extraction -> the features file a single process writes.

See :mod:`mlgraph_cli.core.features.shards` for what is checked (one plan, every shard once, all finished)
and how the rows are laid out. The skipped-images report of the merged file is written beside it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from mlgraph_cli.core.features.plan import unique_skipped, write_skipped_report
from mlgraph_cli.core.features.shards import merge_shards, read_done
from mlgraph_cli.core.io.outputs import check_output


@dataclass
class MergeResult:
    output: Path
    rows: int
    shards: int
    skipped: int
    skipped_report: Path | None
    virtual: bool


def merge(shards: Sequence[str | os.PathLike], output: str | os.PathLike, *, virtual: bool = False) -> MergeResult:
    """Merge ``shards`` (any order) into ``output``; with ``virtual`` the maps stay in the shards."""
    dest = Path(output)
    check_output(dest, list(shards), stream_ok=False)
    merged, rows = merge_shards(shards, dest, virtual=virtual)
    skipped = unique_skipped(read_done(merged)[0])
    return MergeResult(output=merged, rows=rows, shards=len(shards), skipped=len(skipped),
                       skipped_report=write_skipped_report(merged, skipped), virtual=virtual)
