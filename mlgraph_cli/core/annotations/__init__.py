"""Multi-label annotations: one reader per dataset format, one result type.

Every reader turns its format into :class:`Annotations`: the label order, one row per image
(id and image file), a sparse 0/1 matrix of positives and, where the format has them, a mask of
labels that are unknown or "difficult". Label statistics (``format="stats"``) hold no images, so
:func:`load_label_stats` turns them into a :class:`~mlgraph_cli.core.graph.counts.LabelGraph` instead.

Readers are written for size: a whole file is read at once and split with string methods that
run in C; labels are mapped to column indices through a dictionary of the (few) distinct names,
and the matrix is assembled with numpy. There is no per-label Python work beyond one ``dict``
lookup per token, so a million images read in seconds (benchmarks/build_graph_speed.py).

Label order: ``"name"`` (default) sorts labels by name (Python string order), which is ML-GCN's
COCO order and does not depend on row order; ``"id"`` keeps the dataset's own order (COCO
category ids, the VOC / NUS-WIDE concept list, sorted Open Images MIDs, first appearance in
CSV / JSONL). The choice is recorded in ``meta["label_order"]``.

Layout: common (the result type, shared steps), detect (format detection), one module per
format family (coco, voc, nuswide, openimages, tabular = CSV / JSONL, yolo = ultralytics dataset
folders, stats), labelset (a declared label set that every split's columns follow); this module
dispatches. Import everything from here; the submodules are not a public interface.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mlgraph_cli.core.annotations.coco import read_coco
from mlgraph_cli.core.annotations.common import (FORMAT_FIX, FORMATS, LABEL_ORDERS, Annotations, apply_order,
                                                 missing_path, read_text)
from mlgraph_cli.core.annotations.detect import ARTIFACT_READERS, TFRECORD_MARK, detect_format
from mlgraph_cli.core.annotations.labelset import LabelSet, declare_labels, read_label_set
from mlgraph_cli.core.annotations.nuswide import read_nuswide
from mlgraph_cli.core.annotations.openimages import (OPENIMAGES_CLASS_FILES, OPENIMAGES_HEADER, OPENIMAGES_POSITIVE,
                                                     read_openimages)
from mlgraph_cli.core.annotations.stats import load_label_stats
from mlgraph_cli.core.annotations.tabular import (CSV_LABEL_COLUMNS, CSV_PATH_COLUMNS, DEFAULT_LABEL_DELIMITER,
                                                  read_csv, read_jsonl)
# The exact (slow) parsers, re-exported so a test can check that the fast paths do without them.
from mlgraph_cli.core.annotations.voc import read_voc
from mlgraph_cli.core.annotations.yolo import YAML_SUFFIXES, YOLO_SPLITS, read_yolo, yolo_yaml
from mlgraph_cli.core.progress import NULL_PROGRESS, ProgressHook
from mlgraph_cli.errors import InputError, input_error

__all__ = [
    "ARTIFACT_READERS", "CSV_LABEL_COLUMNS", "CSV_PATH_COLUMNS", "DEFAULT_LABEL_DELIMITER", "FORMATS", "FORMAT_FIX",
    "LABEL_ORDERS", "OPENIMAGES_CLASS_FILES", "OPENIMAGES_HEADER", "OPENIMAGES_POSITIVE", "TFRECORD_MARK",
    "YAML_SUFFIXES", "YOLO_SPLITS", "Annotations", "LabelSet", "declare_labels", "detect_format", "load_annotations",
    "load_label_stats", "read_label_set", "yolo_yaml",
]
# Formats that are folders; every other one is a single file.
_FOLDER_FORMATS = ("voc", "nuswide")


def load_annotations(path: str | os.PathLike, format: str | None = None, *, label_order: str = "name",
                     delimiter: str | None = None, label_delimiter: str | None = None, split: str | None = None,
                     classes: str | os.PathLike | None = None,
                     progress: ProgressHook = NULL_PROGRESS) -> Annotations:
    """Read annotations of any supported format (auto-detected when ``format`` is None).

    delimiter / label_delimiter: CSV column and label separators (default: sniffed / ``;``).
    split: VOC image set (default ``trainval``), NUS-WIDE ``all|train|test`` or YOLO ``train|val|test``
    (default ``train``).
    classes: Open Images class descriptions CSV or NUS-WIDE concept list.
    """
    p = Path(path)
    fmt = format or detect_format(p)
    if fmt not in FORMATS:
        raise InputError(f"unknown annotation format {fmt!r} ({FORMAT_FIX})")
    if label_order not in LABEL_ORDERS:
        raise InputError(f"unknown label order {label_order!r} (pass --label-order {'|'.join(LABEL_ORDERS)})")
    if fmt == "stats":
        raise input_error(p, "label statistics hold no per-image labels; only `mlgraph build-graph` reads them",
                          "point at per-image annotations (COCO JSON, VOC, NUS-WIDE, Open Images, CSV/JSONL)")
    if not p.exists():
        raise missing_path(p)
    folder_format = fmt in _FOLDER_FORMATS
    if folder_format and not p.is_dir():
        raise input_error(p, f"--format {fmt} reads a folder, this is a file", FORMAT_FIX)
    if not folder_format and fmt != "yolo" and p.is_dir():
        raise input_error(p, f"--format {fmt} reads a file, this is a folder", FORMAT_FIX)
    if fmt == "yolo":  # a data.yaml, or the folder that holds it
        ann = read_yolo(p, split, progress)
    elif fmt == "voc":
        ann = read_voc(p, split or "trainval", progress)
    elif fmt == "nuswide":
        ann = read_nuswide(p, split, classes, progress)
    else:
        text = read_text(p, progress)
        progress.start(f"Parsing {fmt}", total=None, unit="rows")  # one vectorised pass: no counts to show
        if fmt == "coco":
            ann = read_coco(p, text, label_order)
        elif fmt == "openimages":
            ann = read_openimages(p, text, classes)
        elif fmt == "csv":
            ann = read_csv(p, text, delimiter, label_delimiter)
        else:
            ann = read_jsonl(p, text)
        progress.stop()
    if fmt != "coco":  # COCO orders by its category ids itself
        ann = apply_order(ann, label_order)
    ann.meta["label_order"] = label_order
    # Images without any positive are kept (all-negative rows), never dropped silently.
    unlabeled = int(np.sum(np.diff(ann.positives.indptr) == 0))
    ann.meta["unlabeled_images"] = unlabeled
    if unlabeled:
        ann.notes.append(f"{unlabeled:,} image(s) without labels kept as all-negative rows")
    return ann
