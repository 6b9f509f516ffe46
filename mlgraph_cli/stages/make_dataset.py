"""Stage: make a dataset folder that is directly an mlgraph project (``mlgraph make-dataset``).

The folder is built under a temporary name beside OUT and renamed into place at the end, so an
interrupted run never leaves a half dataset under OUT's name. An existing non-empty OUT is only
replaced with ``force``, and only if an earlier ``make-dataset`` made it (it holds the dataset
card), so a typo in OUT cannot wipe an unrelated folder.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

from mlgraph_cli.core.datasets import DATASETS
from mlgraph_cli.core.progress import NULL_PROGRESS, ProgressHook
from mlgraph_cli.errors import MlgraphError

COMMAND = "mlgraph make-dataset"


@dataclass
class MakeDatasetResult:
    """What was made: the folder, scenes and items per split, the labels, the source used."""

    out: Path
    images: dict[str, int]
    items: dict[str, int]
    labels: list[str]
    project_file: Path
    source: str


def _check_config(config) -> None:
    if config.train < 1:
        raise MlgraphError(f"--train must be at least 1 (got {config.train})")
    for flag, value in (("--val", config.val), ("--test", config.test)):
        if value < 0:
            raise MlgraphError(f"{flag} must be 0 or more (got {value})")
    if not 64 <= config.size <= 4096:
        raise MlgraphError(f"--size must be between 64 and 4096 px (got {config.size})")
    if not 1 <= config.quality <= 95:
        raise MlgraphError(f"JPEG quality must be between 1 and 95 (got {config.quality})")


def _check_out(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise MlgraphError(f"{out}: exists and is not a folder (choose another OUT)")
    # the folder is renamed into place, which cannot be done to the folder the user is in
    here = Path.cwd().resolve()
    if here == out.resolve() or out.resolve() in here.parents:
        raise MlgraphError(f"{out}: is the folder you are working in (name a new folder, "
                           "e.g. `mlgraph make-dataset fashion-scenes fashion/`)")
    if not out.is_dir() or not any(out.iterdir()):
        return
    from mlgraph_cli.core.datasets.fashion_scenes import CARD

    if not force:
        raise MlgraphError(f"{out}: folder is not empty (use --force to replace it, or choose another OUT)")
    if not (out / CARD).is_file():
        raise MlgraphError(f"{out}: not a folder made by `{COMMAND}` (no {CARD}), so --force will not "
                           "replace it (choose a new OUT or empty it yourself)")


def make_dataset(name: str, out: str | os.PathLike, config=None, *, source: str | os.PathLike | None = None,
                 force: bool = False, progress: ProgressHook = NULL_PROGRESS) -> MakeDatasetResult:
    """Make dataset ``name`` in folder ``out`` with ``config`` (a ``FashionScenesConfig``).

    ``source``: where the Fashion-MNIST photographs come from (``None``: the subset bundled with
    mlgraph; ``"debian"``; a folder of idx files; an ``.npz`` subset).
    """
    if name not in DATASETS:
        raise MlgraphError(f"unknown dataset {name!r} (choices: {', '.join(DATASETS)})")
    from mlgraph_cli.core.artifacts import provenance
    from mlgraph_cli.core.datasets.fashion_mnist import LABELS, load_source
    from mlgraph_cli.core.datasets.fashion_scenes import FashionScenesConfig, write_fashion_scenes
    from mlgraph_cli.core.project import PROJECT_FILE, render_project_file

    config = config or FashionScenesConfig()
    _check_config(config)
    out = Path(out)
    _check_out(out, force)
    out = out.resolve()  # "fashion/" and "./fashion" both name the folder, and its parent is real
    photos = load_source(source)

    params = provenance(COMMAND, {
        "name": name, "train": config.train, "val": config.val, "test": config.test, "size": config.size,
        "seed": config.seed, "quality": config.quality, "source": os.fspath(source) if source else "bundled",
    })
    params.pop("created")  # same seed, same bytes: no timestamp in the files

    out.parent.mkdir(parents=True, exist_ok=True)
    # os.mkdir (not mkdtemp) so the folder gets the user's usual permissions once renamed
    building = out.parent / f".{out.name}.{secrets.token_hex(4)}.tmp"
    os.mkdir(building)
    try:
        card = write_fashion_scenes(building, photos, config, params, progress)
        dataset = {"annotations": "annotations/train.json", "format": "coco", "images": "images/train"}
        for split in ("val", "test"):
            if card["splits"][split]["images"]:
                dataset[f"{split}_annotations"] = f"annotations/{split}.json"
                dataset[f"{split}_images"] = f"images/{split}"
        (building / PROJECT_FILE).write_text(render_project_file(dataset), encoding="utf-8")
        _swap_into_place(building, out)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    splits = card["splits"]
    return MakeDatasetResult(
        out=out, images={s: v["images"] for s, v in splits.items()}, items={s: v["items"] for s, v in splits.items()},
        labels=list(LABELS), project_file=out / PROJECT_FILE, source=photos.description,
    )


def _swap_into_place(building: Path, out: Path) -> None:
    """Rename ``building`` onto ``out``; an old ``out`` is moved aside first, then deleted."""
    if not out.exists():
        os.rename(building, out)
        return
    if not any(out.iterdir()):
        out.rmdir()
        os.rename(building, out)
        return
    old = out.parent / f".{out.name}.{secrets.token_hex(4)}.old"
    os.rename(out, old)
    try:
        os.rename(building, out)
    except BaseException:
        with contextlib.suppress(OSError):
            os.rename(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)
