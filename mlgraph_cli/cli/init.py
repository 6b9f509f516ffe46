"""``mlgraph init``: write a project file so every later command runs without paths."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from mlgraph_cli.cli._common import progress_bar, handle_errors, summary

EPILOG = "Example: mlgraph init --annotations annotations/train.json --images images/ --format coco"


def init(
    folder: Annotated[Path, typer.Argument(help="Project folder (created if missing).")] = Path("."),
    *,
    annotations: Annotated[Optional[str], typer.Option(help="Training annotations, relative to the folder.")] = None,
    format: Annotated[Optional[str], typer.Option("--format", help="Annotation format (auto-detected when left out).")] = None,
    images: Annotated[Optional[str], typer.Option(help="Folder of training images.")] = None,
    val_annotations: Annotated[Optional[str], typer.Option(help="Validation annotations.")] = None,
    val_images: Annotated[Optional[str], typer.Option(help="Folder of validation images.")] = None,
    test_annotations: Annotated[Optional[str], typer.Option(help="Test annotations.")] = None,
    test_images: Annotated[Optional[str], typer.Option(help="Folder of test images.")] = None,
    vectors: Annotated[Optional[str], typer.Option(help="Word vectors for `mlgraph embed --init`.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing mlgraph.toml.")] = False,
) -> None:
    """Write mlgraph.toml: the dataset's annotations and images, and where each artifact goes."""
    from mlgraph_cli.stages.init import init_project

    path = init_project(folder, dict(
        annotations=annotations, format=format, images=images,
        val_annotations=val_annotations, val_images=val_images,
        test_annotations=test_annotations, test_images=test_images, vectors=vectors,
    ), force=force, progress=progress_bar())
    summary(f"Wrote {path}. Commands run in {folder} now need no paths, e.g. `mlgraph build-graph`.")


def register(app: typer.Typer) -> None:
    app.command("init", epilog=EPILOG)(handle_errors(init))
