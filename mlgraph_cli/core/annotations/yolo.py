"""Ultralytics YOLO dataset folders: ``data.yaml`` names the splits and the classes; ``labels/*.txt``
hold one ``class x y w h`` line per object (or ``class x1 y1 x2 y2 ...`` for a segment).

For multi-label classification an image's labels are the set of its objects' classes; boxes and
segments are not kept. The rules are ultralytics' own (its docs, "Ultralytics YOLO format"):

- ``path`` is the dataset root; ``train`` / ``val`` / ``test`` are relative to it, each a folder
  of images (searched recursively), a ``.txt`` list of images, or a list of those;
- ``names`` is a list or an ``index: name`` mapping (indices 0..nc-1);
- an image's label file is its path with the last ``/images/`` replaced by ``/labels/`` and the
  suffix by ``.txt``; an image without a label file, or with an empty one, has no objects.

Where ultralytics looks in its own settings folder, mlgraph looks beside the yaml: a relative
``path`` is taken from the yaml's folder, and the yaml's folder itself when that does not exist
(a dataset moved with its yaml); a missing ``../x`` entry is also tried as ``x`` (the layout
Roboflow exports). ``*.cache`` files ultralytics writes beside the labels are never read.
The yaml is read with ``yaml.safe_load``: plain data only, nothing in it can run code.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from mlgraph_cli.core.annotations.common import Annotations, binary_csr, read_text
from mlgraph_cli.core.media.images import list_images
from mlgraph_cli.core.progress import ProgressHook
from mlgraph_cli.errors import input_error

YOLO_SPLITS = ("train", "val", "test")
YAML_SUFFIXES = (".yaml", ".yml")
DATA_YAML = "data.yaml"
_SHAPE = "write one `class x_center y_center width height` line per object, class an index into names"


def yolo_yaml(p: Path) -> Path | None:
    """The dataset yaml ``p`` names: ``p`` itself (a .yaml/.yml file) or a folder's ``data.yaml``."""
    if p.is_dir():
        return p / DATA_YAML if (p / DATA_YAML).is_file() else None
    return p if p.suffix.lower() in YAML_SUFFIXES else None


def read_yolo(p: Path, split: str | None, progress: ProgressHook) -> Annotations:
    """The images of one split (default ``train``) of the dataset ``p`` names, labelled by the
    classes of their objects; columns in class-index order (``meta["image_root"]``: the dataset root)."""
    source = yolo_yaml(p)
    if source is None:
        raise input_error(p, f"no {DATA_YAML} here (not an ultralytics YOLO dataset)", "point at the dataset's yaml")
    data = _load(source, progress)
    names = _names(source, data)
    root = _root(source, data)
    split = split or "train"
    given = [k for k in YOLO_SPLITS if data.get(k)]
    if split not in YOLO_SPLITS or not data.get(split):
        what = f"names no {split} images" if split in YOLO_SPLITS else f"a YOLO dataset has no split {split!r}"
        raise input_error(source, what, f"pass --split {'|'.join(given)}" if given else "add `train: images/train`")
    entries = data[split]
    entries = [entries] if isinstance(entries, str) else entries
    if not isinstance(entries, list) or not all(isinstance(e, str) and e for e in entries):
        raise input_error(source, f"{split}: must be a folder, a .txt list of images, or a list of those",
                          f"e.g. `{split}: images/{split}`")
    images = list_images([_entry(source, root, e, split) for e in entries])
    if not images:
        raise input_error(source, f"no images in the {split} split ({', '.join(entries)})",
                          "put the images in the folders data.yaml names")
    rows, cols, found = [], [], 0
    progress.start(f"Reading YOLO {split} labels", total=len(images), unit="images")
    for i, image in enumerate(images):
        label_file = label_path(image)
        if os.path.isfile(label_file):
            found += 1
            classes = _classes(Path(label_file), len(names), source)
            rows += [i] * len(classes)
            cols += classes
        progress.advance()
    progress.stop()
    if not found:
        raise input_error(label_path(images[0]), f"no label file for any of the {len(images):,} {split} images",
                          "put one .txt per image under labels/, beside images/, as ultralytics does")
    notes = [f"{len(images) - found:,} {split} image(s) have no label file and are read as having no objects"
             ] if found < len(images) else []
    files = [_relative(image, root) for image in images]
    y = binary_csr(np.asarray(rows, np.int64), np.asarray(cols, np.int64), (len(images), len(names)))
    return Annotations(labels=names, image_ids=list(files), files=files, positives=y, ignore=None, source=str(source),
                       format="yolo", notes=notes, meta={"split": split, "image_root": str(root)})


def label_path(image: Path) -> str:
    """Ultralytics' rule: the last ``/images/`` of the path becomes ``/labels/``, the suffix ``.txt``."""
    text = os.fspath(image)
    images, labels = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    return os.path.splitext(labels.join(text.rsplit(images, 1)))[0] + ".txt"


def _load(source: Path, progress: ProgressHook) -> dict[str, Any]:
    text = read_text(source, progress)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        what = getattr(exc, "problem", None) or "not valid YAML"
        raise input_error(source, f"malformed YAML: {what}", "fix the file",
                          line=mark.line + 1 if mark is not None else None) from None
    if not isinstance(data, dict):
        raise input_error(source, "expected a mapping with names and train/val/test", "see ultralytics' data.yaml")
    return data


def _names(source: Path, data: dict[str, Any]) -> list[str]:
    """Class names in index order, from a list or an ``index: name`` mapping."""
    raw = data.get("names")
    fix = "write `names: [cat, dog]` or `names: {0: cat, 1: dog}`"
    if isinstance(raw, dict):
        keys = list(raw)
        if not all(isinstance(k, int) and not isinstance(k, bool) for k in keys) or sorted(keys) != list(range(len(keys))):
            raise input_error(source, f"names: the indices must be 0 to {len(keys) - 1}", fix)
        raw = [raw[k] for k in range(len(keys))]
    if not isinstance(raw, list) or not raw:
        raise input_error(source, "no class names (names:)", fix)
    names = [str(x).strip() if isinstance(x, (str, int, float)) and not isinstance(x, bool) else "" for x in raw]
    if not all(names):
        raise input_error(source, f"names: class {names.index('')} has no name", fix)
    if len(set(names)) != len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise input_error(source, f"names: {twice!r} is given twice", "give each class its own name")
    nc = data.get("nc")
    if nc is not None and nc != len(names):
        raise input_error(source, f"nc is {nc} but names has {len(names)} classes", "make nc match names, or drop nc")
    return names


def _root(source: Path, data: dict[str, Any]) -> Path:
    base = source.parent
    path = data.get("path")
    if not path:
        return base
    root = Path(str(path)).expanduser()
    root = root if root.is_absolute() else base / root
    return root if root.is_dir() else base


def _entry(source: Path, root: Path, entry: str, split: str) -> Path:
    p = Path(entry).expanduser()
    if p.is_absolute():
        found = p
    else:
        found = root / p
        if not found.exists() and entry.startswith("../"):
            found = root / entry[3:]
    if not found.exists():
        raise input_error(source, f"{split}: {entry} is not there (looked for {found})",
                          "fix the path in data.yaml (relative to `path`, or to the yaml's folder)")
    return found


def _classes(label_file: Path, nc: int, source: Path) -> list[int]:
    """The class index of each object line of one label file (boxes, segments or keypoints)."""
    out = []
    try:
        text = label_file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise input_error(label_file, "not UTF-8 text", _SHAPE) from None
    for number, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        try:
            value = float(parts[0])
        except ValueError:
            value = -1.0
        if len(parts) < 5 or not value.is_integer() or not 0 <= value < nc:
            what = (f"class {parts[0]} is not an index into the {nc} names of {source.name}" if len(parts) >= 5
                    else f"expected a class and at least 4 numbers, found {line.strip()!r}")
            raise input_error(label_file, what, _SHAPE, line=number)
        out.append(int(value))
    return out


def _relative(image: Path, root: Path) -> str:
    """The image's path relative to the dataset root, as written (links are not followed, so a
    dataset of linked images stays inside its root); absolute when it lies outside."""
    here, top = Path(os.path.normpath(os.path.abspath(image))), Path(os.path.normpath(os.path.abspath(root)))
    try:
        return here.relative_to(top).as_posix()
    except ValueError:
        return here.as_posix()
