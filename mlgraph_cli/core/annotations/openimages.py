"""Open Images image-level labels: ``ImageID,Source,LabelName,Confidence`` rows.

Confidence >= :data:`OPENIMAGES_POSITIVE` is a positive, 0 a verified negative (a human "no"),
anything between unknown. Labels are MIDs (``/m/0k4j``) turned into display names through the
class descriptions CSV beside the labels file, or the one ``--classes`` names.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from mlgraph_cli.core.annotations.common import FORMAT_FIX, Annotations, binary_csr
from mlgraph_cli.errors import input_error

# Open Images: machine-generated labels are "generally >= 0.5" (openimages/dataset READMEV3).
OPENIMAGES_POSITIVE = 0.5
OPENIMAGES_HEADER = ["imageid", "source", "labelname", "confidence"]
OPENIMAGES_CLASS_FILES = ("class-descriptions.csv", "oidv7-class-descriptions.csv", "oidv6-class-descriptions.csv",
                          "class-descriptions-boxable.csv", "oidv7-class-descriptions-boxable.csv")


def read_openimages(p: Path, text: str, classes: Any) -> Annotations:
    """Rows in first-appearance order of ImageID, columns sorted by MID; ``negatives`` holds Confidence 0."""
    lines = text.splitlines()
    header = [c.strip().lower() for c in lines[0].split(",")]
    if header != OPENIMAGES_HEADER:
        raise input_error(p, f"expected the header ImageID,Source,LabelName,Confidence, found {lines[0][:80]!r}",
                          FORMAT_FIX, line=1)
    body = [ln for ln in lines[1:] if ln.strip()]
    parts = [ln.split(",") for ln in body] if '"' not in text else list(csv.reader(body))
    widths = np.fromiter(map(len, parts), dtype=np.int64, count=len(parts))
    if (widths != 4).any():
        k = int(np.flatnonzero(widths != 4)[0])
        raise input_error(p, f"expected 4 columns, found {widths[k]}", line=_body_line(lines, k))
    if not parts:
        raise input_error(p, "no label rows after the header", "point at an image-level labels CSV")
    ids, _sources, mids, confs = zip(*parts)
    try:
        conf = np.array(confs, dtype=np.float64)
    except ValueError:
        k = next(i for i, c in enumerate(confs) if not _is_float(c))
        raise input_error(p, f"Confidence {confs[k]!r} is not a number", line=_body_line(lines, k)) from None
    uniq_ids = list(dict.fromkeys(ids))
    id_index = {k: i for i, k in enumerate(uniq_ids)}
    rows = np.fromiter(map(id_index.__getitem__, ids), dtype=np.int64, count=len(ids))
    mid_list = sorted(set(mids))  # "id" order: MIDs sorted
    mid_index = {m: i for i, m in enumerate(mid_list)}
    cols = np.fromiter(map(mid_index.__getitem__, mids), dtype=np.int64, count=len(mids))
    shape = (len(uniq_ids), len(mid_list))  # (N, C)
    neg = binary_csr(rows[conf == 0], cols[conf == 0], shape)
    positive = conf >= OPENIMAGES_POSITIVE
    pos = binary_csr(rows[positive], cols[positive], shape)
    # A human "no" (Confidence 0) outranks a machine label for the same image and class.
    pos = (pos - pos.multiply(neg)).astype(np.uint8).tocsr()
    pos.eliminate_zeros()
    notes: list[str] = []
    low = int(np.sum((conf > 0) & (conf < OPENIMAGES_POSITIVE)))
    if low:
        notes.append(f"{low:,} row(s) with 0 < Confidence < {OPENIMAGES_POSITIVE} count as unknown")
    names = _display_names(p, mid_list, classes, notes)
    return Annotations(labels=names, image_ids=uniq_ids, files=[f"{i}.jpg" for i in uniq_ids], positives=pos,
                       ignore=None, source=str(p), format="openimages", notes=notes,
                       meta={"verified_negatives": int(neg.nnz), "mids": mid_list}, negatives=neg)


def _body_line(lines: list[str], k: int) -> int:
    """1-based file line of the k-th non-blank line after the header."""
    seen = -1
    for n, ln in enumerate(lines[1:], 2):
        if ln.strip():
            seen += 1
            if seen == k:
                return n
    return len(lines)


def _is_float(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _display_names(p: Path, mids: list[str], classes: Any, notes: list[str]) -> list[str]:
    """One distinct name per MID from the class descriptions CSV; a MID without a name keeps its MID."""
    path = Path(classes) if classes else next((p.parent / n for n in OPENIMAGES_CLASS_FILES
                                               if (p.parent / n).is_file()), None)
    if path is None:
        notes.append(f"no class descriptions beside {p.name}: labels are MIDs (pass --classes FILE)")
        return list(mids)
    if not path.is_file():
        raise input_error(path, "no such class descriptions file", "pass --classes class-descriptions.csv")
    with open(path, encoding="utf-8-sig", newline="") as fh:
        names = {row[0].strip(): row[1].strip() for row in csv.reader(fh) if len(row) >= 2}
    names.pop("LabelName", None)  # the header of the v6/v7 files
    out = [names.get(m, m) for m in mids]
    unnamed = sum(m not in names for m in mids)
    if unnamed:
        notes.append(f"{unnamed} MID(s) not in {path.name} keep their MID as name")
    counts = Counter(out)
    if any(v > 1 for v in counts.values()):
        # Open Images has a few MIDs sharing a display name; labels must stay distinct.
        out = [f"{n} ({m})" if counts[n] > 1 else n for n, m in zip(out, mids)]
        notes.append("display names shared by several MIDs carry their MID in brackets")
    return out
