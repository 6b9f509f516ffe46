"""What ``mlgraph extract`` reads, in which order, and the report of what it could not read.

A plan is the list of images (absolute paths for the decoders, names relative to the images
folder for the file), their ids and, with annotations, their labels. Planning reads no pixels.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from mlgraph_cli.core.media.images import SkippedImage, common_root, list_images, real_path, relative_names
from mlgraph_cli.core.progress import NULL_PROGRESS, ProgressHook
from mlgraph_cli.errors import MlgraphError, input_error


@dataclass
class ExtractPlan:
    paths: list[str]  # absolute, what the workers open
    files: list[str]  # relative to root, what the file stores
    ids: list[str]
    root: Path
    labels: Any = None  # (N, C) int8 or None
    label_names: list[str] | None = None
    annotations: Path | None = None
    annotations_format: str | None = None
    notes: list[str] = field(default_factory=list)


def plan_folder(images: Sequence[str | os.PathLike] | None) -> ExtractPlan:
    """Every image of ``images`` (folders, files, globs, .txt lists), without labels."""
    if not images:
        raise MlgraphError("no images given (pass a folder, files, a glob or a .txt list as IMAGES)")
    paths = list_images(images)
    if not paths:
        shown = ", ".join(os.fspath(p) for p in images)
        raise input_error(shown, "no images found (looked for .jpg, .jpeg, .png, .bmp, .gif, .webp, .tif, .ppm)",
                          "pass a folder of images, image files, a glob or a .txt list")
    single = len(images) == 1 and Path(images[0]).is_dir()
    root = Path(images[0]) if single else common_root(paths)
    files = relative_names(paths, root)
    return ExtractPlan(paths=[os.fspath(real_path(p)) for p in paths], files=files, ids=list(files), root=root)


def plan_with_annotations(images: Sequence[str | os.PathLike] | None, ann_path: Path, *, format: str | None = None,
                          label_order: str = "name", image_set: str | None = None,
                          allow_outside_paths: bool = False, progress: ProgressHook = NULL_PROGRESS) -> ExtractPlan:
    """The annotated images, with their labels; file names must stay inside the images folder
    unless ``allow_outside_paths`` (see :func:`mlgraph_cli.core.io.inputs.check_inside_folder`)."""
    from mlgraph_cli.core.annotations import load_annotations
    from mlgraph_cli.core.io.inputs import check_inside_folder

    ann = load_annotations(ann_path, format, label_order=label_order, split=image_set, progress=progress)
    if images and len(images) > 1:
        raise MlgraphError(f"with --annotations give one images folder, not {len(images)} paths "
                           "(the folder the annotation file names are relative to)")
    if images:
        root = Path(images[0])
    elif ann.meta.get("image_root"):
        root = Path(ann.meta["image_root"])
    else:
        raise MlgraphError(f"{ann_path}: no images folder given (pass IMAGES or --images, the folder its file names are relative to)")
    if not root.is_dir():
        raise input_error(root, "not a folder", "with --annotations, IMAGES is the folder the annotation file names are relative to")
    if ann.num_images == 0:
        raise input_error(ann_path, "no images in these annotations", "check the file, or extract a folder without --annotations")
    files = files_for(ann, root)
    if not allow_outside_paths:
        check_inside_folder(root, files, ann_path, flag="--allow-outside-paths")
    paths = [os.fspath(real_path(root / f)) for f in files]
    if not any(os.path.isfile(p) for p in paths):
        raise input_error(root, f"none of the {ann.num_images:,} images named in {ann_path} is in this folder "
                                f"(e.g. {files[0]})",
                          "pass the folder they are relative to as IMAGES or --images, or fix [dataset] images")
    return ExtractPlan(paths=paths, files=files, ids=[str(i) for i in ann.image_ids], root=root, labels=ann.dense(),
                       label_names=list(ann.labels), annotations=ann_path, annotations_format=ann.format,
                       notes=list(ann.notes))


def files_for(ann, root: Path) -> list[str]:
    """Each image's file relative to ``root``; formats without file names are matched by id
    against the folder's images (relative path without suffix, then file stem)."""
    if all(f is not None for f in ann.files):
        return [str(f) for f in ann.files]
    by_key: dict[str, str] = {}
    for rel in relative_names(list_images(root), root):
        stem = rel.rsplit(".", 1)[0]
        by_key.setdefault(stem, rel)
        by_key.setdefault(stem.rsplit("/", 1)[-1], rel)
    return [str(f) if f is not None else by_key.get(str(i), str(i)) for f, i in zip(ann.files, ann.image_ids)]


def labels_sha(labels) -> str:
    return "" if labels is None else hashlib.sha256(labels.tobytes() + str(labels.shape).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# The skipped-files report

def unique_skipped(lines: list[str]) -> list[SkippedImage]:
    """``path<TAB>reason`` lines (a resumed run may repeat one) -> one :class:`SkippedImage` per path."""
    seen: dict[str, str] = {}
    for line in lines:
        path, _, reason = line.partition("\t")
        seen.setdefault(path, reason)
    return [SkippedImage(p, r) for p, r in seen.items()]


def skipped_report_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".skipped.txt")


def write_skipped_report(dest: Path, skipped: list[SkippedImage]) -> Path | None:
    """``<output>.skipped.txt``: one ``path<TAB>reason`` per skipped image; a stale one is removed."""
    from mlgraph_cli.core.io.outputs import atomic_write_text

    path = skipped_report_path(dest)
    if not skipped:
        path.unlink(missing_ok=True)
        return None
    atomic_write_text(path, "".join(s.line() + "\n" for s in skipped))
    return path
