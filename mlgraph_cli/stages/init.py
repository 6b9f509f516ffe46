"""Stage: create a project folder's ``mlgraph.toml``.

The paths given are written as they are (the data may arrive later), but each one that does not
exist, is a file where a folder is expected, or holds annotations whose format cannot be told,
is said at once through the progress hook's log:
a misspelt path found at ``init`` costs a second, found at ``train`` it costs a run.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

from mlgraph_cli.core.annotations import detect_format
from mlgraph_cli.core.graph.config import GRAPH_FORMATS
from mlgraph_cli.core.io.outputs import write_text
from mlgraph_cli.core.progress import NULL_PROGRESS, ProgressHook
from mlgraph_cli.core.project import DATASET_KEYS, PROJECT_FILE, render_project_file
from mlgraph_cli.errors import InputError, MlgraphError

# Dataset keys that name folders of images; every other path key names a file or a folder.
_IMAGE_FOLDERS = ("images", "val_images", "test_images")


def init_project(folder: str | os.PathLike, dataset: dict[str, str | None], *, force: bool = False,
                 progress: ProgressHook = NULL_PROGRESS) -> Path:
    """Write ``folder/mlgraph.toml`` naming ``dataset``'s files; refuse to overwrite unless ``force``.

    Paths are relative to ``folder``; a missing one (or a file given as a folder of images) is
    logged as a warning on ``progress``, with the closest existing name when there is one.
    """
    root = Path(folder)
    path = root / PROJECT_FILE
    values = {k: v for k, v in dataset.items() if v}
    fmt = values.get("format")
    if fmt is not None and fmt not in GRAPH_FORMATS:
        raise MlgraphError(f"--format {fmt}: unknown annotation format (choose one of "
                           f"{', '.join(GRAPH_FORMATS)}, or leave it out to detect it)")
    if path.exists() and not force:
        raise MlgraphError(f"{path}: a project file already exists (use --force to overwrite it)")
    for key in DATASET_KEYS:
        if key != "format" and key in values:
            problem = _path_problem(root, key, values[key], fmt)
            if problem:
                flag = "--" + key.replace("_", "-")
                progress.log(f"warning: {flag} {values[key]}: {problem}; {PROJECT_FILE} names it anyway (fix it "
                             "there, or run `mlgraph init --force` again)")
    root.mkdir(parents=True, exist_ok=True)
    write_text(path, render_project_file(values))
    return path


def _path_problem(root: Path, key: str, value: str, fmt: str | None) -> str | None:
    """What is wrong with ``value`` (relative to ``root``) as the path of ``key``, or None.

    Annotations that exist must be in a format mlgraph can tell (when ``fmt`` is not given).
    """
    target = root / value
    if target.is_file() and key in _IMAGE_FOLDERS:
        return "is a file, not a folder of images"
    if target.exists():
        if key.endswith("annotations") and fmt is None:
            try:
                detect_format(target)
            except InputError as exc:
                return str(exc)
        return None
    problem = f"no such file or folder in {root}"
    parent = target.parent
    if parent.is_dir():
        close = difflib.get_close_matches(target.name, [p.name for p in parent.iterdir()], n=1, cutoff=0.75)
        if close:
            guess = (Path(value).parent / close[0]).as_posix()
            problem += f" (did you mean {guess}?)"
    return problem
