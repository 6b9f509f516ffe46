"""Stage: make a dataset folder that is directly an mlgraph project (``mlgraph make-dataset``).

The folder is built under a temporary name beside OUT and renamed into place at the end, so an
interrupted run never leaves a half dataset under OUT's name. An existing non-empty OUT is only
replaced with ``force``, and only if an earlier ``make-dataset`` made it (it holds the dataset
card), so a typo in OUT cannot wipe an unrelated folder.

Replacing is all or nothing (the new folder is renamed over the old one), so ``force`` first
compares OUT with the manifest the earlier run wrote (``manifest.json``: every file it made
and its SHA-256): files it did not make (a ``runs/`` folder, notes) or that were changed since
(an edited ``mlgraph.toml``) are listed and nothing is deleted, unless ``overwrite_all``. Keeping
them by moving them into the new folder was the other choice; it would silently mix artifacts
computed from the old images with the new ones, so the user decides instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlgraph_cli.core.datasets import DATASETS
from mlgraph_cli.core.datasets.fashion_mnist import LABELS, load_source
from mlgraph_cli.core.datasets.fashion_scenes import CARD, FashionScenesConfig, write_fashion_scenes
from mlgraph_cli.core.io.artifacts import provenance
from mlgraph_cli.core.io.outputs import write_text
from mlgraph_cli.core.progress import NULL_PROGRESS, ProgressHook
from mlgraph_cli.core.project import PROJECT_FILE, merge_config, render_project_file
from mlgraph_cli.errors import MlgraphError

COMMAND = "mlgraph make-dataset"
MANIFEST = "manifest.json"  # every file make-dataset made in OUT, with its SHA-256
# What make-dataset makes, for folders made before it wrote a manifest.
_LAYOUT_FILES = ("fashion-scenes.json", "LICENSE-fashion-mnist.txt", "mlgraph.toml",
                 *(f"annotations/{split}.json" for split in ("train", "val", "test")))
_LAYOUT_IMAGES = tuple(f"images/{split}/" for split in ("train", "val", "test"))


@dataclass
class MakeDatasetResult:
    """What was made: the folder, scenes and items per split, the labels, the source used."""

    out: Path
    images: dict[str, int]
    items: dict[str, int]
    labels: list[str]
    project_file: Path
    source: str
    size: int = 0  # canvas side in px


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


def _check_out(out: Path, force: bool, overwrite_all: bool = False) -> None:
    if out.exists() and not out.is_dir():
        raise MlgraphError(f"{out}: exists and is not a folder (choose another OUT)")
    # the folder is renamed into place, which cannot be done to the folder the user is in
    here = Path.cwd().resolve()
    if here == out.resolve() or out.resolve() in here.parents:
        raise MlgraphError(f"{out}: is the folder you are working in (name a new folder, "
                           "e.g. `mlgraph make-dataset fashion-scenes fashion/`)")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not force:
        raise MlgraphError(f"{out}: folder is not empty (use --force to replace it, or choose another OUT)")
    if not (out / CARD).is_file():
        raise MlgraphError(f"{out}: not a folder made by `{COMMAND}` (no {CARD}), so --force will not "
                           "replace it (choose a new OUT or empty it yourself)")
    if not overwrite_all:
        check_replaceable(out, fix="move them out of the folder, or add --overwrite-all to delete them too")


def check_replaceable(out: Path, *, also: tuple[str, ...] = (), who: str = "make-dataset", fix: str) -> None:
    """Raise :class:`MlgraphError` listing what replacing ``out`` would delete that ``who`` did not make.

    also: path prefixes (``"artifacts/"``) that count as made too (the demo's own outputs).
    """
    foreign = not_made_here(out, also=also)
    if foreign:
        raise MlgraphError(f"{out}: --force would also delete {sum(n for _, n, _ in foreign)} file(s) that {who} "
                           f"did not make or that were changed since: {_describe(foreign)} ({fix})")


def not_made_here(folder: Path, *, also: tuple[str, ...] = ()) -> list[tuple[str, int, bool]]:
    """What in ``folder`` an earlier make-dataset did not make, or made and was changed since.

    Returns (name, files, changed) groups in name order: a folder that holds none of make-dataset's
    files is one group (``runs/``, 12 files); other files are their own group. Empty folders are
    nothing to lose and are left out; files under the prefixes ``also`` count as made. Without a
    manifest (folders made by older versions) the known layout stands in for it, and changes to
    those files cannot be seen.
    """
    try:
        recorded = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError):
        recorded = None
    if not isinstance(recorded, dict):
        recorded = None
    present = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() or p.is_symlink())
    groups: dict[str, list] = {}
    if recorded is None:
        def made(rel: str) -> bool:
            return rel in _LAYOUT_FILES or (rel.startswith(_LAYOUT_IMAGES) and rel.endswith(".jpg")
                                            and rel.count("/") == 2)
        ours = {rel for rel in present if made(rel)}
        changed: set[str] = set()
    else:
        ours = {rel for rel in present if rel in recorded or rel == MANIFEST}
        changed = {rel for rel in ours if rel != MANIFEST and _digest(folder / rel) != recorded[rel]}
    ours |= {rel for rel in present if also and rel.startswith(also)}
    own_dirs = {rel.rsplit("/", k)[0] for rel in ours for k in range(1, rel.count("/") + 1)}
    for rel in present:
        if rel in ours and rel not in changed:
            continue
        parts = rel.split("/")
        top = next((("/".join(parts[:k]) + "/") for k in range(1, len(parts)) if "/".join(parts[:k]) not in own_dirs),
                   rel)
        groups.setdefault(top, []).append(rel in changed)
    return [(name, len(flags), any(flags)) for name, flags in sorted(groups.items())]


def _describe(groups: list[tuple[str, int, bool]], most: int = 6) -> str:
    words = [f"{name} ({n} file{'s' * (n != 1)})" if name.endswith("/") else name + " (changed)" * changed
             for name, n, changed in groups]
    return ", ".join(words[:most]) + (f" and {len(words) - most} more" if len(words) > most else "")


def _digest(path: Path) -> str:
    """SHA-256 of a file's bytes; "" for what cannot be read (a dangling link, a folder put in its place)."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    except OSError:
        return ""
    return h.hexdigest()


def _write_manifest(folder: Path) -> None:
    """``manifest.json``: every file in ``folder`` (relative POSIX paths, sorted) and its SHA-256."""
    files = {p.relative_to(folder).as_posix(): _digest(p) for p in sorted(folder.rglob("*")) if p.is_file()}
    doc = {"made_by": COMMAND, "note": "--force replaces only these files, unchanged; see `mlgraph make-dataset "
                                      "--help`", "files": files}
    write_text(folder / MANIFEST, json.dumps(doc, indent=1, ensure_ascii=False) + "\n")


def run_make_dataset(name: str, out: str | os.PathLike, overrides: dict[str, Any], *,
                     source: str | os.PathLike | None = None, force: bool = False, overwrite_all: bool = False,
                     progress: ProgressHook = NULL_PROGRESS) -> MakeDatasetResult:
    """``mlgraph make-dataset`` as one call. ``overrides``: FashionScenesConfig values from flags
    (train, val, test, size, seed; None = not given). make-dataset creates a project rather than
    reading one, so the defaults are the dataclass's alone."""
    config = merge_config(FashionScenesConfig, None, "make-dataset", overrides)
    return make_dataset(name, out, config, source=source, force=force, overwrite_all=overwrite_all,
                        progress=progress)


def make_dataset(name: str, out: str | os.PathLike, config=None, *, source: str | os.PathLike | None = None,
                 force: bool = False, overwrite_all: bool = False,
                 progress: ProgressHook = NULL_PROGRESS) -> MakeDatasetResult:
    """Make dataset ``name`` in folder ``out`` with ``config`` (a ``FashionScenesConfig``).

    ``source``: where the Fashion-MNIST photographs come from (``None``: the subset bundled with
    mlgraph; ``"debian"``; a folder of idx files; an ``.npz`` subset). ``force`` replaces a folder
    an earlier make-dataset made, when it holds nothing else; ``overwrite_all`` (implies ``force``)
    also deletes what else it holds.
    """
    if name not in DATASETS:
        raise MlgraphError(f"unknown dataset {name!r} (choices: {', '.join(DATASETS)})")
    config = config or FashionScenesConfig()
    _check_config(config)
    out = Path(out)
    _check_out(out, force or overwrite_all, overwrite_all)
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
        write_text(building / PROJECT_FILE, render_project_file(dataset))
        _write_manifest(building)
        _swap_into_place(building, out)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    splits = card["splits"]
    return MakeDatasetResult(
        out=out, images={s: v["images"] for s, v in splits.items()}, items={s: v["items"] for s, v in splits.items()},
        labels=list(LABELS), project_file=out / PROJECT_FILE, source=photos.description, size=config.size,
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
