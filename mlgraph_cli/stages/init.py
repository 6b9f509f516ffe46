"""Stage: create a project folder's ``mlgraph.toml``."""

from __future__ import annotations

import os
from pathlib import Path

from mlgraph_cli.core.artifacts import atomic_write_text
from mlgraph_cli.core.project import PROJECT_FILE, render_project_file
from mlgraph_cli.errors import MlgraphError


def init_project(folder: str | os.PathLike, dataset: dict[str, str | None], *, force: bool = False) -> Path:
    """Write ``folder/mlgraph.toml`` naming ``dataset``'s files; refuse to overwrite unless ``force``."""
    root = Path(folder)
    path = root / PROJECT_FILE
    if path.exists() and not force:
        raise MlgraphError(f"{path}: a project file already exists (use --force to overwrite it)")
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, render_project_file({k: v for k, v in dataset.items() if v}))
    return path
