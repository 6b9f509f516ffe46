"""Pascal VOC: ``ImageSets/Main/<class>_<split>.txt``, one ``<image id> <1|-1|0>`` line per image.

1 is a positive, -1 a negative and 0 "difficult only": the object is there but only in
difficult instances, so the label is unknown for training and AP (ignore mask) and not a
positive when counting the graph.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp

from mlgraph_cli.core.annotations.common import FORMAT_FIX, Annotations
from mlgraph_cli.core.progress import ProgressHook
from mlgraph_cli.errors import input_error

VOC_SPLIT_FIX = "use the files of one VOC split"


def voc_root(p: Path, strict: bool = True) -> Path | None:
    """The VOC20xx folder for ``p`` (VOCdevkit, VOC2007 or its ImageSets/Main), None if there is none.

    strict: a folder holding several VOC20xx folders is an input error (else the first is taken).
    """
    if (p / "ImageSets" / "Main").is_dir():
        return p
    if p.name == "Main" and p.parent.name == "ImageSets":
        return p.parent.parent
    found = sorted(d for d in p.iterdir() if d.is_dir() and (d / "ImageSets" / "Main").is_dir()) if p.is_dir() else []
    if len(found) == 1:
        return found[0]
    if len(found) > 1 and strict:
        raise input_error(p, f"holds several VOC folders ({', '.join(d.name for d in found)})", "pass one of them")
    return found[0] if found else None


def read_voc(p: Path, split: str, progress: ProgressHook) -> Annotations:
    """One column per ``<class>_<split>.txt``; rows in the order of ``<split>.txt`` (or the first class file)."""
    root = voc_root(p)
    if root is None:
        raise input_error(p, "no ImageSets/Main folder here (not a Pascal VOC folder)", FORMAT_FIX)
    main = root / "ImageSets" / "Main"
    suffix = f"_{split}.txt"
    class_files = sorted(f for f in main.iterdir() if f.name.endswith(suffix) and len(f.name) > len(suffix))
    if not class_files:
        splits = sorted({f.stem.rsplit("_", 1)[1] for f in main.glob("*_*.txt")})
        raise input_error(main, f"no <class>{suffix} files for split {split!r}",
                          f"pass --split {'|'.join(splits)}" if splits else "is this VOC's ImageSets/Main?")
    labels = [f.name[: -len(suffix)] for f in class_files]
    list_file = main / f"{split}.txt"
    ids = list_file.read_text(encoding="utf-8").split() if list_file.is_file() else None
    progress.start(f"Reading VOC {split}", total=len(class_files), unit="classes")
    pos_cols, ign_cols = [], []
    for f in class_files:
        fid, values = _class_file(f)
        if ids is None:
            ids = fid
        if fid != ids:
            _mismatch(f, fid, ids, list_file if list_file.is_file() else class_files[0])
        pos_cols.append(values == 1)
        ign_cols.append(values == 0)
        progress.advance()
    progress.stop()
    # 0 = "difficult only": unknown for training and AP, and not a positive when counting the graph.
    pos = sp.csr_matrix(np.stack(pos_cols, axis=1).astype(np.uint8))  # (N, C)
    ign = sp.csr_matrix(np.stack(ign_cols, axis=1).astype(np.uint8))  # (N, C)
    notes = [f"{ign.nnz:,} difficult-only label(s) (0) are ignored, not positives"] if ign.nnz else []
    return Annotations(labels=labels, image_ids=list(ids), files=[f"JPEGImages/{i}.jpg" for i in ids],
                       positives=pos, ignore=ign, source=str(root), format="voc", notes=notes,
                       meta={"split": split, "image_root": str(root), "difficult": int(ign.nnz)})


def _class_file(f: Path) -> tuple[list[str], np.ndarray]:
    """(image ids, (N,) int8 values 1 / -1 / 0) of one ``<class>_<split>.txt``."""
    rows = [(n, ln.split()) for n, ln in enumerate(f.read_text(encoding="utf-8").splitlines(), 1) if ln.strip()]
    ids, values = [], np.empty(len(rows), dtype=np.int8)
    for k, (n, parts) in enumerate(rows):
        # Positives are padded with an extra space: the value is the last token, not the second field.
        if len(parts) < 2 or parts[-1] not in ("1", "-1", "0"):
            raise input_error(f, f"expected `<image id> <1|-1|0>`, found {' '.join(parts)!r}", line=n)
        ids.append(parts[0])
        values[k] = int(parts[-1])
    return ids, values


def _mismatch(f: Path, fid: list[str], ids: list[str], reference: Path) -> None:
    """Raise the input error that says how class file ``f`` differs from the split's image list."""
    known = set(ids)
    for k, i in enumerate(fid):
        if i not in known:
            raise input_error(f, f"image id {i!r} is not in {reference.name}", VOC_SPLIT_FIX, line=k + 1)
    missing = next(i for i in ids if i not in set(fid)) if len(fid) < len(ids) else None
    what = f"lacks image id {missing!r} listed in {reference.name}" if missing else \
        f"lists the images of {reference.name} in another order or twice"
    raise input_error(f, what, VOC_SPLIT_FIX)
