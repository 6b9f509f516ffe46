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

from mlgraph_cli.core.annotations import LabelSet, declare_labels, load_annotations, read_label_set
from mlgraph_cli.core.io.inputs import check_inside_folder
from mlgraph_cli.core.io.outputs import write_text
from mlgraph_cli.core.media.images import SkippedImage, common_root, list_images, real_path, relative_names
from mlgraph_cli.core.media.videos import VIDEO_SUFFIXES, is_video_path, only_videos
from mlgraph_cli.core.progress import NULL_PROGRESS, ProgressHook
from mlgraph_cli.errors import MlgraphError, input_error


TABULAR_SUFFIXES = (".csv", ".tsv", ".jsonl")  # annotation files that can name video files


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


def plan_folder(images: Sequence[str | os.PathLike] | None, *, video: bool = False) -> ExtractPlan:
    """Every image (``video``: every video file) of ``images`` (folders, files, globs, .txt lists),
    without labels."""
    if not images:
        raise MlgraphError("no images given (pass a folder, files, a glob or a .txt list as IMAGES)")
    if video:
        paths = [p for p in list_images(images, VIDEO_SUFFIXES) if is_video_path(p)]
        looked = ", ".join(sorted(VIDEO_SUFFIXES))
        what, fix = "video files", "pass a folder of clips, video files, a glob or a .txt list"
    else:
        paths = list_images(images)
        looked = ".jpg, .jpeg, .png, .bmp, .gif, .webp, .tif, .ppm"
        what, fix = "images", "pass a folder of images, image files, a glob or a .txt list"
    if not paths:
        shown = ", ".join(os.fspath(p) for p in images)
        raise input_error(shown, f"no {what} found (looked for {looked})", fix)
    single = len(images) == 1 and Path(images[0]).is_dir()
    root = Path(images[0]) if single else common_root(paths)
    files = [storable(name) for name in relative_names(paths, root)]
    return ExtractPlan(paths=[os.fspath(real_path(p)) for p in paths], files=files, ids=list(files), root=root)


def storable(name: str) -> str:
    """A file name as UTF-8 text can hold it: the bytes of a name that is not valid UTF-8 (which
    Python carries as surrogate escapes) are written as ``\\xNN``; a valid name is unchanged. The
    features file stores names as UTF-8 strings; the file itself is still opened by its real path."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def plan_for(images: Sequence[str | os.PathLike] | None, annotations: str | os.PathLike | None, config, *,
             video: bool, allow_outside_paths: bool = False, progress: ProgressHook = NULL_PROGRESS) -> ExtractPlan:
    """The plan of ``mlgraph extract``: the annotated inputs with their labels, or every input found."""
    if annotations:
        declared = read_label_set(config.labels) if config.labels else None
        return plan_with_annotations(images, Path(annotations), format=config.format, label_order=config.label_order,
                                     image_set=config.image_set, label_delimiter=config.label_delimiter,
                                     declared=declared, allow_outside_paths=allow_outside_paths, progress=progress)
    return plan_folder(images, video=video)


def wants_clips(images: Sequence[str | os.PathLike] | None, annotations: str | os.PathLike | None, *,
                label_delimiter: str | None = None) -> bool:
    """Whether ``mlgraph extract`` was given video files: inputs that hold videos and no images,
    or CSV/JSONL annotations whose file names are videos."""
    if annotations is not None:
        if not str(annotations).lower().endswith(TABULAR_SUFFIXES) or not Path(annotations).is_file():
            return False
        try:
            files = [f for f in load_annotations(Path(annotations), label_delimiter=label_delimiter).files
                     if f is not None]
        except MlgraphError:
            return False  # planning reports it
        return bool(files) and all(is_video_path(f) for f in files)
    if not images:
        return False
    try:
        return only_videos(images)
    except MlgraphError:
        return False


def plan_with_annotations(images: Sequence[str | os.PathLike] | None, ann_path: Path, *, format: str | None = None,
                          label_order: str = "name", image_set: str | None = None, label_delimiter: str | None = None,
                          declared: LabelSet | None = None, allow_outside_paths: bool = False,
                          progress: ProgressHook = NULL_PROGRESS) -> ExtractPlan:
    """The annotated images, with their labels; file names must stay inside the images folder
    unless ``allow_outside_paths`` (see :func:`mlgraph_cli.core.io.inputs.check_inside_folder`).
    ``declared``: the label columns to store, in order (core/annotations/labelset.py)."""
    ann = load_annotations(ann_path, format, label_order=label_order, split=image_set,
                           label_delimiter=label_delimiter, progress=progress)
    notes = list(ann.notes)
    if declared is not None:
        ann, said = declare_labels(ann, declared)
        notes += said
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
                       notes=notes)


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
    path = skipped_report_path(dest)
    if not skipped:
        path.unlink(missing_ok=True)
        return None
    write_text(path, "".join(s.line() + "\n" for s in skipped))
    return path
