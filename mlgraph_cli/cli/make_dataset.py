"""``mlgraph make-dataset``: make a real multi-label image set, offline, as a ready project folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from mlgraph_cli.cli._common import progress_bar, handle_errors, summary

EPILOG = "Example: mlgraph make-dataset fashion-scenes fashion/ --train 600 --val 200 --test 200 --seed 0"


def make_dataset(
    name: Annotated[str, typer.Argument(
        help="Which dataset: fashion-scenes (Fashion-MNIST items in cluttered colour scenes).")],
    out: Annotated[Path, typer.Argument(help="Folder to create; it becomes an mlgraph project (mlgraph.toml).")],
    *,
    train: Annotated[Optional[int], typer.Option(help="Training scenes. \\[default: 600]")] = None,
    val: Annotated[Optional[int], typer.Option(
        help="Validation scenes (0 leaves the split out). \\[default: 200]")] = None,
    test: Annotated[Optional[int], typer.Option(
        help="Test scenes (0 leaves the split out). \\[default: 200]")] = None,
    size: Annotated[Optional[int], typer.Option(
        help="Canvas side in pixels; items are 18-40% of it. \\[default: 224]")] = None,
    seed: Annotated[Optional[int], typer.Option(
        help="Random seed: the same seed gives the same bytes. \\[default: 0]")] = None,
    source: Annotated[Optional[str], typer.Option(
        help="Fashion-MNIST photographs: 'debian' (package dataset-fashion-mnist), a folder of its four idx "
             "files, or a subset .npz. \\[default: the 4,000-photo subset bundled with mlgraph]")] = None,
    force: Annotated[bool, typer.Option("--force", help=(
        "Replace OUT if an earlier make-dataset made it and it holds nothing else; files it did not make "
        "or that were changed since are listed and kept."))] = False,
    overwrite_all: Annotated[bool, typer.Option("--overwrite-all", help=(
        "Replace OUT as --force does, and also delete those files (a runs/ folder, notes, an edited "
        "mlgraph.toml)."))] = False,
) -> None:
    """Make a multi-label image set (JPEG images + COCO instances JSON per split) with no network."""
    from mlgraph_cli.stages.make_dataset import run_make_dataset

    result = run_make_dataset(name, out, dict(train=train, val=val, test=test, size=size, seed=seed), source=source,
                              force=force, overwrite_all=overwrite_all, progress=progress_bar())
    counts = ", ".join(f"{split} {n}" for split, n in result.images.items() if n)
    items = sum(result.items.values())
    summary(f"Made {name} in {out}: {counts} scenes ({items} items, {result.size} px) from {result.source}.")
    summary(f"Labels ({len(result.labels)}): {', '.join(result.labels)}.")
    summary(f"Images in {out / 'images'}/<split>/, COCO annotations in {out / 'annotations'}/<split>.json; "
            f"{result.project_file} makes it a project: cd {out} && mlgraph build-graph")


def register(app: typer.Typer) -> None:
    app.command("make-dataset", epilog=EPILOG)(handle_errors(make_dataset))
