"""``mlgraph merge``: join the shard files of `mlgraph extract --shard I/N` into one features file."""

from __future__ import annotations

from typing import Annotated

import typer

from mlgraph_cli.cli._common import handle_errors, summary
from mlgraph_cli.cli._options import plain_option

EPILOG = "Example: mlgraph merge features.shard-*.h5 -o features.h5"


def merge(
    shards: Annotated[list[str], typer.Argument(help="Every shard file of one `mlgraph extract --shard I/N` run, "
                                                     "in any order.", show_default=False)],
    *,
    output: Annotated[str, plain_option("-o", "--output", help="The merged features file.")],
    virtual: Annotated[bool, typer.Option(
        "--virtual", help="Copy no feature maps: the merged file points into the shard files (an HDF5 virtual "
                          "dataset), which must then stay beside it.")] = False,
) -> None:
    """Merge extraction shards into the features file one process would have written.

    Refuses shards of different plans or settings, missing, repeated or overlapping shards, and
    unfinished ones.
    """
    from mlgraph_cli.stages.merge import merge as run

    result = run(shards, output, virtual=virtual)
    how = "virtual: the maps stay in the shard files" if result.virtual else "copied"
    summary(f"Wrote {result.output}: {result.rows:,} images from {result.shards} shards ({how}).")
    if result.skipped:
        summary(f"{result.skipped:,} image(s) were skipped, listed in {result.skipped_report}.")


def register(app: typer.Typer) -> None:
    app.command("merge", epilog=EPILOG)(handle_errors(merge))
