"""NUS-WIDE: ``Groundtruth/{AllLabels,TrainTestLabels}/Labels_<concept>[_Train|_Test].txt``.

Each concept file holds one 0/1 line per image of the matching ``ImageList/*Imagelist.txt``;
the concept list (``Concepts81.txt``) gives the column order.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from mlgraph_cli.core.annotations.common import FORMAT_FIX, Annotations
from mlgraph_cli.core.progress import ProgressHook
from mlgraph_cli.errors import input_error

NUSWIDE_SPLITS = ("all", "train", "test")
SPLIT_FIX = "pass --split " + "|".join(NUSWIDE_SPLITS)


def nuswide_root(p: Path) -> Path | None:
    """The NUS-WIDE folder for ``p`` (it, or the parent of its Groundtruth folder), None if neither."""
    if (p / "Groundtruth").is_dir() or (p / "Concepts81.txt").is_file():
        return p
    if p.name == "Groundtruth":
        return p.parent
    return None


def read_nuswide(p: Path, split: str | None, classes: Any, progress: ProgressHook) -> Annotations:
    """split: ``all`` (AllLabels), ``train`` or ``test`` (TrainTestLabels); None = train when present."""
    root = nuswide_root(p)
    if root is None:
        raise input_error(p, "no Groundtruth folder here (not a NUS-WIDE folder)", FORMAT_FIX)
    gt = root / "Groundtruth"
    if split is None:
        # A graph is a training statistic: prefer the official training split when it is there.
        split = "train" if (gt / "TrainTestLabels").is_dir() else "all"
    split = split.lower()
    if split not in NUSWIDE_SPLITS:
        raise input_error(root, f"unknown NUS-WIDE split {split!r}", SPLIT_FIX)
    if split == "all":
        list_file, label_dir, tail = root / "ImageList" / "Imagelist.txt", gt / "AllLabels", ""
    else:
        list_file = root / "ImageList" / f"{split.capitalize()}Imagelist.txt"
        label_dir, tail = gt / "TrainTestLabels", f"_{split.capitalize()}"
    if not list_file.is_file():
        raise input_error(list_file, "no such file (NUS-WIDE's ImageList.zip provides it)",
                          SPLIT_FIX + " to match the files you have")
    concepts = _concepts(root, label_dir, tail, classes)
    # Windows separators in the official lists; files are relative to the Flickr image folder.
    files = [ln.strip().replace("\\", "/") for ln in list_file.read_text(encoding="utf-8").splitlines() if ln.strip()]
    n = len(files)
    progress.start(f"Reading NUS-WIDE {split}", total=len(concepts), unit="concepts")
    cols = []
    for concept in concepts:
        cols.append(_concept_column(label_dir / f"Labels_{concept}{tail}.txt", concept, n, list_file))
        progress.advance()
    progress.stop()
    y = sp.csr_matrix(np.stack(cols, axis=1).astype(np.uint8)) if cols else sp.csr_matrix((n, 0), dtype=np.uint8)
    notes = [] if split != "all" else ["NUS-WIDE AllLabels covers train and test images (pass --split train for "
                                       "a training-only graph)"]
    ids = [f.rsplit(".", 1)[0] for f in files]
    return Annotations(labels=concepts, image_ids=ids, files=files, positives=y, ignore=None, source=str(root),
                       format="nuswide", notes=notes, meta={"split": split, "image_root": str(root / "Flickr")})


def _concept_column(f: Path, concept: str, n: int, list_file: Path) -> np.ndarray:
    """(n,) bool: the images that carry ``concept``, from its one-digit-per-line label file."""
    if not f.is_file():
        raise input_error(f, f"no such file for concept {concept!r}", "is the Groundtruth folder complete?")
    tokens = f.read_bytes().split()
    if len(tokens) != n:
        raise input_error(f, f"{len(tokens):,} lines but {list_file.name} lists {n:,} images (ragged files)",
                          "use label files and image list of the same NUS-WIDE release")
    values = np.frombuffer(b"".join(tokens), dtype=np.uint8) - ord("0") if all(len(t) == 1 for t in tokens) \
        else np.full(n, 255, np.uint8)
    bad = np.flatnonzero(values > 1)
    if len(bad):
        raise input_error(f, f"expected 0 or 1, found {tokens[bad[0]].decode(errors='replace')!r}",
                          line=int(bad[0]) + 1)
    return values.astype(bool)


def _concepts(root: Path, label_dir: Path, tail: str, classes: Any) -> list[str]:
    """The concept names: ``classes``, else Concepts81.txt, else the label files' names (sorted)."""
    candidates = [Path(classes)] if classes else [root / "Concepts81.txt", root / "ConceptsList" / "Concepts81.txt"]
    for c in candidates:
        if c.is_file():
            names = [ln.strip() for ln in c.read_text(encoding="utf-8").splitlines() if ln.strip()]
            if names:
                return names
            raise input_error(c, "the concept list is empty")
    if classes:
        raise input_error(classes, "no such concept list", "pass --classes Concepts81.txt")
    if not label_dir.is_dir():
        raise input_error(label_dir, "no such folder (and no Concepts81.txt)", SPLIT_FIX)
    pattern = re.compile(rf"^Labels_(.+){re.escape(tail)}\.txt$")
    return sorted(m.group(1) for f in label_dir.iterdir() if (m := pattern.match(f.name)))
