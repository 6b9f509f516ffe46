"""Multi-label annotations: one reader per dataset format, one result type.

Every reader turns its format into :class:`Annotations`: the label order, one row per image
(id and image file), a sparse 0/1 matrix of positives and, where the format has them, a mask of
labels that are unknown or "difficult". Label statistics (``format="stats"``) hold no images, so
:func:`load_label_stats` turns them into a :class:`~mlgraph_cli.core.graph.LabelGraph` instead.

Readers are written for size: a whole file is read at once and split with string methods that
run in C; labels are mapped to column indices through a dictionary of the (few) distinct names,
and the matrix is assembled with numpy. There is no per-label Python work beyond one ``dict``
lookup per token, so a million images read in seconds (benchmarks/build_graph_speed.py).

Label order: ``"name"`` (default) sorts labels by name (Python string order), which is ML-GCN's
COCO order and does not depend on row order; ``"id"`` keeps the dataset's own order (COCO
category ids, the VOC / NUS-WIDE concept list, sorted Open Images MIDs, first appearance in
CSV / JSONL). The choice is recorded in ``meta["label_order"]``.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import scipy.sparse as sp

from mlgraph_cli.core.progress import NULL_PROGRESS, ProgressHook
from mlgraph_cli.errors import InputError, MismatchError, input_error

FORMATS = ("coco", "voc", "nuswide", "openimages", "csv", "jsonl", "stats")
LABEL_ORDERS = ("name", "id")
# What marks a YouTube-8M TFRecord shard's name (detect_format -> "yt8m").
TFRECORD_MARK = ".tfrecord"
# How a user gets a file build-graph can read; ends most error messages.
FORMAT_FIX = "pass --format " + "|".join(FORMATS)
# Open Images: machine-generated labels are "generally >= 0.5" (openimages/dataset READMEV3).
OPENIMAGES_POSITIVE = 0.5
OPENIMAGES_HEADER = ["imageid", "source", "labelname", "confidence"]
# Column names that mark the first CSV row as a header (compared lower-case).
CSV_PATH_COLUMNS = ("path", "image", "image_path", "file", "filename", "file_name", "image_name", "image_id", "img",
                    "name", "id")
CSV_LABEL_COLUMNS = ("labels", "label", "tags", "tag", "classes", "class", "categories")
DEFAULT_LABEL_DELIMITER = ";"
# Which command reads each mlgraph artifact, for "wrong kind of file" messages.
ARTIFACT_READERS = {"graph": "mlgraph embed", "embeddings": "mlgraph train", "features": "mlgraph train",
                    "run": "mlgraph evaluate"}
_EXPECTED = "expected annotations: COCO JSON, a VOC or NUS-WIDE folder, Open Images CSV, CSV or JSONL"


@dataclass
class Annotations:
    """Labels of N images over C labels.

    labels: the label order (C names). image_ids: N ids. files: N image paths relative to the
    images folder (``meta["image_root"]`` names it for folder formats), None where unknown.
    positives: (N, C) uint8 CSR, 1 = the image carries the label.
    ignore: (N, C) uint8 CSR or None, 1 = unknown / difficult (left out of loss and AP).
    negatives: (N, C) uint8 CSR or None, 1 = a verified negative (Open Images ``Confidence 0``);
    labels neither positive nor verified negative are unknown and count as negative by default.
    """

    labels: list[str]
    image_ids: list[str]
    files: list[str | None]
    positives: sp.csr_matrix
    ignore: sp.csr_matrix | None
    source: str
    format: str
    notes: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    negatives: sp.csr_matrix | None = None

    @property
    def num_images(self) -> int:
        return len(self.image_ids)

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    def dense(self) -> np.ndarray:
        """(N, C) int8: 1 positive, 0 negative, -1 ignore (difficult / unknown)."""
        y = self.positives.toarray().astype(np.int8)
        if self.ignore is not None:
            y[self.ignore.toarray() > 0] = -1
        return y

    def reorder(self, labels: Sequence[str]) -> "Annotations":
        """The same images with columns in the order of ``labels`` (e.g. a graph's label order).

        Labels of ``labels`` absent here become all-zero columns (no image carries them); a label
        present here but missing from ``labels`` raises :class:`MismatchError`.
        """
        wanted = set(labels)
        extra = [name for name in self.labels if name not in wanted]
        if extra:
            shown = ", ".join(repr(x) for x in extra[:5]) + (" ..." if len(extra) > 5 else "")
            raise MismatchError(f"{self.source}: {len(extra)} label(s) not in the expected label set: {shown} "
                                "(build the graph from these annotations with `mlgraph build-graph`)")
        here = {name: i for i, name in enumerate(self.labels)}
        # (C_old, C_new) selection matrix: column j of the result is old column here[labels[j]].
        src = np.array([here.get(name, -1) for name in labels], dtype=np.int64)
        keep = np.flatnonzero(src >= 0)
        sel = sp.csr_matrix((np.ones(len(keep), np.uint8), (src[keep], keep)), shape=(len(self.labels), len(labels)))

        def move(m: sp.csr_matrix | None) -> sp.csr_matrix | None:
            return None if m is None else (m @ sel).astype(np.uint8).tocsr()

        return Annotations(labels=list(labels), image_ids=self.image_ids, files=self.files,
                           positives=move(self.positives), ignore=move(self.ignore), source=self.source,
                           format=self.format, notes=list(self.notes), meta=dict(self.meta),
                           negatives=move(self.negatives))


# ---------------------------------------------------------------------------------------------
# Format detection

def detect_format(path: str | os.PathLike) -> str:
    """Guess the format of ``path`` from its suffix and first bytes; one of :data:`FORMATS`, or
    ``yt8m`` for YouTube-8M TFRecords (a name with ``.tfrecord`` in it, a quoted glob of such
    names, or a folder of them; read by core/video/yt8m.py, not by :func:`load_annotations`).

    Raises :class:`InputError` for a missing, empty or undetectable file, and for mlgraph's own
    artifacts (a graph, an HDF5 file), naming the command that reads them.
    """
    p = Path(path)
    # YouTube-8M shards are named *.tfrecord (or .tfrecord.gz, or train0000.tfrecord-00001-of-...):
    # the name decides, so a glob that the shell did not expand is recognised too.
    if TFRECORD_MARK in p.name and not p.is_dir():
        return "yt8m"
    if p.is_dir():
        if _voc_root(p, strict=False) is not None:
            return "voc"
        if _nuswide_root(p) is not None:
            return "nuswide"
        if any(TFRECORD_MARK in q.name for q in p.iterdir() if q.is_file()):
            return "yt8m"
        raise input_error(p, "this folder is neither a Pascal VOC folder (ImageSets/Main) nor a NUS-WIDE folder "
                             "(Groundtruth/, Concepts81.txt)", FORMAT_FIX + " or point at the annotations file")
    if not p.exists():
        raise input_error(p, "no such file or folder", "check the path, or set [dataset] annotations in mlgraph.toml")
    with open(p, "rb") as fh:
        head = fh.read(1 << 16)
    if not head.strip():
        raise input_error(p, "the file is empty", "point at a file with annotations")
    _refuse_artifacts(p, head)
    suffix = p.suffix.lower()
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff")
    first = text.lstrip().split("\n", 1)[0].strip()
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix == ".json" or first.startswith("{"):
        return _detect_json(p, text, first)
    if suffix in (".csv", ".tsv", ".txt") or "," in first or "\t" in first:
        header = [c.strip().lower() for c in first.split(",")]
        return "openimages" if header == OPENIMAGES_HEADER else "csv"
    raise input_error(p, "cannot tell the annotation format from the name or content", FORMAT_FIX)


def _refuse_artifacts(p: Path, head: bytes) -> None:
    """mlgraph's own outputs are not annotations: say what the file is and who reads it."""
    kind = None
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        kind = _hdf5_kind(p)
        if kind is None:
            raise input_error(p, "this is an HDF5 file, not annotations", _EXPECTED)
    elif found := re.search(rb'"schema"\s*:\s*"mlgraph/(\w+)@\d+"', head):
        kind = found.group(1).decode()
    if kind:
        reader = ARTIFACT_READERS.get(kind)
        raise input_error(p, f"this is an mlgraph {kind} file" + (f", which `{reader}` reads" if reader else ""),
                          _EXPECTED)


def _hdf5_kind(p: Path) -> str | None:
    from mlgraph_cli.core.artifacts import SCHEMAS

    try:
        import h5py

        with h5py.File(p, "r") as f:
            tag = f.attrs.get("schema")
    except Exception:  # an unreadable HDF5 file is still not annotations
        return None
    tag = tag.decode() if isinstance(tag, bytes) else tag
    return next((k for k, (t, _) in SCHEMAS.items() if t == tag), None)


def _detect_json(p: Path, text: str, first: str) -> str:
    if re.search(r'"(cooccurrence|image_counts)"\s*:', text):
        return "stats"
    if re.search(r'"(categories|annotations|images)"\s*:', text) and not first.endswith("}"):
        return "coco"
    # One object per line: JSONL even under a .json name.
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(lines) > 1 and lines[0].strip().startswith("{") and lines[0].strip().endswith("}"):
        try:
            json.loads(lines[0])
            return "jsonl"
        except ValueError:
            pass
    if re.search(r'"(categories|annotations|images)"\s*:', text):
        return "coco"
    raise input_error(p, "a JSON file that is neither COCO instances ({images, annotations, categories}) nor label "
                         "statistics ({labels, image_counts, cooccurrence})", FORMAT_FIX)


# ---------------------------------------------------------------------------------------------
# Entry points

def load_annotations(path: str | os.PathLike, format: str | None = None, *, label_order: str = "name",
                     delimiter: str | None = None, label_delimiter: str | None = None, split: str | None = None,
                     classes: str | os.PathLike | None = None,
                     progress: ProgressHook = NULL_PROGRESS) -> Annotations:
    """Read annotations of any supported format (auto-detected when ``format`` is None).

    delimiter / label_delimiter: CSV column and label separators (default: sniffed / ``;``).
    split: VOC image set (default ``trainval``) or NUS-WIDE ``all|train|test``.
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
        raise input_error(p, "no such file or folder", "check the path, or set [dataset] annotations in mlgraph.toml")
    folder_format = fmt in ("voc", "nuswide")
    if folder_format and not p.is_dir():
        raise input_error(p, f"--format {fmt} reads a folder, this is a file", FORMAT_FIX)
    if not folder_format and p.is_dir():
        raise input_error(p, f"--format {fmt} reads a file, this is a folder", FORMAT_FIX)
    if fmt == "voc":
        ann = _read_voc(p, split or "trainval", progress)
    elif fmt == "nuswide":
        ann = _read_nuswide(p, split, classes, progress)
    else:
        text = _read_text(p, progress)
        progress.start(f"Parsing {fmt}", total=None, unit="rows")  # one vectorised pass: no counts to show
        if fmt == "coco":
            ann = _read_coco(p, text, label_order)
        elif fmt == "openimages":
            ann = _read_openimages(p, text, classes)
        elif fmt == "csv":
            ann = _read_csv(p, text, delimiter, label_delimiter)
        else:
            ann = _read_jsonl(p, text)
        progress.stop()
    if fmt != "coco":  # COCO orders by its category ids itself
        ann = _apply_order(ann, label_order)
    ann.meta["label_order"] = label_order
    # Images without any positive are kept (all-negative rows), never dropped silently.
    unlabeled = int(np.sum(np.diff(ann.positives.indptr) == 0))
    ann.meta["unlabeled_images"] = unlabeled
    if unlabeled:
        ann.notes.append(f"{unlabeled:,} image(s) without labels kept as all-negative rows")
    return ann


def load_label_stats(path: str | os.PathLike, *, label_order: str = "name"):
    """A :class:`LabelGraph` from pre-computed statistics (``format="stats"``).

    Layout (e.g. ../shared/data/coco2014-label-stats/cooccurrence.json): ``labels`` (C names),
    ``image_counts`` (C ints, n_i), ``cooccurrence`` (C x C ints, M_ij, symmetric) and the image
    count N as ``num_images`` or as "<N> images" inside the ``split`` text.
    """
    from mlgraph_cli.core.artifacts import read_json
    from mlgraph_cli.core.graph import LabelGraph

    p = Path(path)
    data = read_json(p, fix="label statistics need labels, image_counts, cooccurrence")
    if not isinstance(data, dict) or not {"labels", "image_counts", "cooccurrence"} <= set(data):
        missing = ["labels", "image_counts", "cooccurrence"] if not isinstance(data, dict) \
            else sorted({"labels", "image_counts", "cooccurrence"} - set(data))
        raise input_error(p, f"label statistics lack {', '.join(missing)}", FORMAT_FIX)
    labels = data["labels"]
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise input_error(p, "`labels` must be a list of names")
    if len(set(labels)) != len(labels):
        dup = next(x for x in labels if labels.count(x) > 1)
        raise input_error(p, f"label {dup!r} appears twice in `labels`")
    c = len(labels)
    try:
        counts = np.asarray(data["image_counts"], dtype=np.int64)
        m = np.asarray(data["cooccurrence"], dtype=np.int64)
    except (TypeError, ValueError):
        raise input_error(p, "`image_counts` and `cooccurrence` must hold whole numbers") from None
    if counts.shape != (c,) or m.shape != (c, c):
        raise input_error(p, f"{c} labels but image_counts has shape {counts.shape} and cooccurrence {m.shape}")
    if not np.array_equal(m, m.T):
        i, j = np.argwhere(m != m.T)[0]
        raise input_error(p, f"cooccurrence is not symmetric ([{labels[i]!r}][{labels[j]!r}] = {m[i, j]}, "
                             f"reverse = {m[j, i]})")
    np.fill_diagonal(m, 0)  # M_ii is not a co-occurrence; some files keep n_i there
    if (m < 0).any() or (counts < 0).any():
        raise input_error(p, "negative counts")
    over = np.argwhere(m > np.minimum(counts[:, None], counts[None, :]))
    if len(over):
        i, j = over[0]
        raise input_error(p, f"{labels[i]!r} and {labels[j]!r} co-occur {m[i, j]} times, more than their image "
                             f"counts ({counts[i]}, {counts[j]})")
    num_images = data.get("num_images")
    if num_images is None:
        found = re.search(r"([\d,]+)\s+images", str(data.get("split", "")))
        num_images = int(found.group(1).replace(",", "")) if found else None
    if not isinstance(num_images, int) or num_images < int(counts.max(initial=0)):
        raise input_error(p, "the number of images is missing or smaller than a label's count",
                          "add \"num_images\": N to the file")
    order = np.argsort(np.array(labels, dtype=object), kind="stable") if label_order == "name" else np.arange(c)
    meta = {k: data[k] for k in ("split", "note") if k in data}
    return LabelGraph(labels=[labels[i] for i in order], image_counts=counts[order],
                      cooccurrence=sp.csr_matrix(m[np.ix_(order, order)]), num_images=num_images, meta=meta)


# ---------------------------------------------------------------------------------------------
# Shared machinery

def _read_text(p: Path, progress: ProgressHook, chunk: int = 1 << 23) -> str:
    """The whole file as text (UTF-8, BOM dropped); empty and non-UTF-8 files are input errors."""
    size = p.stat().st_size
    progress.start(f"Reading {p.name}", total=round(size / 1e6, 1), unit="MB")
    parts = []
    with open(p, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            parts.append(block)
            progress.advance(len(block) / 1e6)
    progress.stop()
    raw = b"".join(parts)
    if not raw.strip():
        raise input_error(p, "the file is empty", "point at a file with annotations")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise input_error(p, "not UTF-8 text", "save the file as UTF-8", line=line) from None


def _tokens_matrix(tokens: list, counts: np.ndarray) -> tuple[sp.csr_matrix, list[str]]:
    """Rows of label tokens -> ((R, C) uint8 CSR, C names in first-appearance order).

    tokens: all rows' tokens concatenated; counts: (R,) tokens per row. Names are stripped of
    surrounding space; empty names are dropped. Vectorised: one dict lookup per token.
    """
    raw_vocab = dict.fromkeys(tokens)  # distinct raw tokens, first appearance order
    names: dict[str, int] = {}
    raw_index = {}
    for raw in raw_vocab:
        name = raw.strip()
        raw_index[raw] = names.setdefault(name, len(names)) if name else -1
    cols = np.fromiter(map(raw_index.__getitem__, tokens), dtype=np.int64, count=len(tokens))
    rows = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    keep = cols >= 0
    y = sp.csr_matrix((np.ones(int(keep.sum()), np.uint8), (rows[keep], cols[keep])), shape=(len(counts), len(names)))
    y.sum_duplicates()
    y.data[:] = 1  # a label repeated in one row is still one label
    return y, list(names)


def _merge_rows(p: Path, ids: list[str], files: list, y: sp.csr_matrix, lines: np.ndarray | None,
                notes: list[str]) -> tuple[list[str], list, sp.csr_matrix]:
    """Merge rows that repeat an image id with the same labels; conflicting labels are an error."""
    if len(set(ids)) == len(ids):
        return ids, files, y
    unique = dict.fromkeys(ids)
    index = {k: i for i, k in enumerate(unique)}
    image_of_row = np.fromiter(map(index.__getitem__, ids), dtype=np.int64, count=len(ids))
    _, first_row = np.unique(image_of_row, return_index=True)  # (U,) first row of each image
    repeated = np.flatnonzero(first_row[image_of_row] != np.arange(len(ids)))
    for r in repeated.tolist():
        f = first_row[image_of_row[r]]
        a, b = y.indices[y.indptr[f]:y.indptr[f + 1]], y.indices[y.indptr[r]:y.indptr[r + 1]]
        if set(a.tolist()) != set(b.tolist()):
            line = int(lines[r]) if lines is not None else None
            first_line = int(lines[f]) if lines is not None else f + 1
            raise input_error(p, f"image {ids[r]!r} is listed again with different labels (first at line "
                                 f"{first_line})", "give each image one row with all its labels", line=line)
    notes.append(f"{len(repeated):,} repeated row(s) of the same image with the same labels were merged")
    return list(unique), [files[i] for i in first_row.tolist()], y[first_row]


def _apply_order(ann: Annotations, label_order: str) -> Annotations:
    if label_order != "name" or ann.labels == sorted(ann.labels):
        return ann
    return ann.reorder(sorted(ann.labels))


# ---------------------------------------------------------------------------------------------
# COCO instances JSON

def _ann_id(anns: list, k: int) -> Any:
    """An annotation's own id for messages (its position when it has none)."""
    return anns[k].get("id", k) if isinstance(anns[k], dict) else k


def _read_coco(p: Path, text: str, label_order: str) -> Annotations:
    fix = "is it a COCO instances file? otherwise " + FORMAT_FIX
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise input_error(p, f"malformed JSON: {exc.msg}", fix, line=exc.lineno) from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
            or not isinstance(data.get("categories"), list):
        raise input_error(p, "not a COCO instances file (needs `images` and `categories` lists)", fix)
    cats = data["categories"]
    try:
        cat_pairs = [(int(c["id"]), str(c["name"])) for c in cats]
    except (KeyError, TypeError, ValueError):
        raise input_error(p, "every category needs an `id` and a `name`", fix) from None
    names = [n for _, n in cat_pairs]
    if len(set(names)) != len(names) or len({i for i, _ in cat_pairs}) != len(cat_pairs):
        dup = next(x for x in names if names.count(x) > 1) if len(set(names)) != len(names) else \
            next(i for i, _ in cat_pairs if [j for j, _ in cat_pairs].count(i) > 1)
        raise input_error(p, f"category {dup!r} is defined twice")
    by_id = sorted(cat_pairs) if label_order == "id" else sorted(cat_pairs, key=lambda t: t[1])
    col_of_cat = {cid: k for k, (cid, _) in enumerate(by_id)}
    images = data["images"]
    try:
        image_keys = [img["id"] for img in images]
        files = [img.get("file_name") for img in images]
    except (KeyError, TypeError):
        raise input_error(p, "every image needs an `id`", fix) from None
    row_of_image = {k: r for r, k in enumerate(image_keys)}
    if len(row_of_image) != len(image_keys):
        dup = next(k for r, k in enumerate(image_keys) if row_of_image[k] != r)
        raise input_error(p, f"image id {dup} is listed twice in `images`", "give each image one entry")
    anns = data.get("annotations") or []
    # Every annotation counts, iscrowd ones included: they name a category too (REFERENCE 2.1).
    try:
        image_of = [a["image_id"] for a in anns]
        cat_of = [a["category_id"] for a in anns]
    except (KeyError, TypeError):
        k = next(k for k, a in enumerate(anns) if not isinstance(a, dict) or not {"image_id", "category_id"} <= set(a))
        raise input_error(p, f"annotation {_ann_id(anns, k)} lacks image_id or category_id", fix) from None
    try:
        rows = np.fromiter(map(row_of_image.get, image_of, itertools.repeat(-1)), dtype=np.int64, count=len(anns))
        cols = np.fromiter(map(col_of_cat.get, cat_of, itertools.repeat(-1)), dtype=np.int64, count=len(anns))
    except TypeError:  # an unhashable id (a list or object)
        rows = cols = np.full(len(anns), -1, dtype=np.int64)
    if (rows < 0).any():
        k = int(np.flatnonzero(rows < 0)[0])
        raise input_error(p, f"annotation {_ann_id(anns, k)} refers to unknown image id {image_of[k]}",
                          "every annotation's image_id must be listed in `images`")
    if (cols < 0).any():
        k = int(np.flatnonzero(cols < 0)[0])
        raise input_error(p, f"annotation {_ann_id(anns, k)} has unknown category id {cat_of[k]}",
                          "every category_id must be listed in `categories`")
    y = sp.csr_matrix((np.ones(len(anns), np.uint8), (rows, cols)), shape=(len(images), len(by_id)))
    y.sum_duplicates()
    y.data[:] = 1
    return Annotations(labels=[n for _, n in by_id], image_ids=[str(k) for k in image_keys], files=files,
                       positives=y, ignore=None, source=str(p), format="coco",
                       meta={"category_ids": [i for i, _ in by_id]})


# ---------------------------------------------------------------------------------------------
# Pascal VOC: ImageSets/Main/<class>_<split>.txt, last token 1 / -1 / 0 (difficult)

def _voc_root(p: Path, strict: bool = True) -> Path | None:
    """The VOC20xx folder for ``p`` (VOCdevkit, VOC2007 or its ImageSets/Main)."""
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


def _read_voc(p: Path, split: str, progress: ProgressHook) -> Annotations:
    root = _voc_root(p)
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
        fid, values = _voc_class_file(f)
        if ids is None:
            ids = fid
        if fid != ids:
            _voc_mismatch(f, fid, ids, list_file if list_file.is_file() else class_files[0])
        pos_cols.append(values == 1)
        ign_cols.append(values == 0)
        progress.advance()
    progress.stop()
    # 0 = "difficult only": unknown for training and AP, and not a positive when counting the graph.
    pos = sp.csr_matrix(np.stack(pos_cols, axis=1).astype(np.uint8))
    ign = sp.csr_matrix(np.stack(ign_cols, axis=1).astype(np.uint8))
    notes = [f"{ign.nnz:,} difficult-only label(s) (0) are ignored, not positives"] if ign.nnz else []
    return Annotations(labels=labels, image_ids=list(ids), files=[f"JPEGImages/{i}.jpg" for i in ids],
                       positives=pos, ignore=ign, source=str(root), format="voc", notes=notes,
                       meta={"split": split, "image_root": str(root), "difficult": int(ign.nnz)})


def _voc_class_file(f: Path) -> tuple[list[str], np.ndarray]:
    rows = [(n, ln.split()) for n, ln in enumerate(f.read_text(encoding="utf-8").splitlines(), 1) if ln.strip()]
    ids, values = [], np.empty(len(rows), dtype=np.int8)
    for k, (n, parts) in enumerate(rows):
        # Positives are padded with an extra space: the value is the last token, not the second field.
        if len(parts) < 2 or parts[-1] not in ("1", "-1", "0"):
            raise input_error(f, f"expected `<image id> <1|-1|0>`, found {' '.join(parts)!r}", line=n)
        ids.append(parts[0])
        values[k] = int(parts[-1])
    return ids, values


def _voc_mismatch(f: Path, fid: list[str], ids: list[str], reference: Path) -> None:
    known = set(ids)
    for k, i in enumerate(fid):
        if i not in known:
            raise input_error(f, f"image id {i!r} is not in {reference.name}", "use the files of one VOC split",
                              line=k + 1)
    missing = next(i for i in ids if i not in set(fid)) if len(fid) < len(ids) else None
    what = f"lacks image id {missing!r} listed in {reference.name}" if missing else \
        f"lists the images of {reference.name} in another order or twice"
    raise input_error(f, what, "use the files of one VOC split")


# ---------------------------------------------------------------------------------------------
# NUS-WIDE: Groundtruth/{AllLabels,TrainTestLabels}/Labels_<concept>[_Train|_Test].txt

def _nuswide_root(p: Path) -> Path | None:
    if (p / "Groundtruth").is_dir() or (p / "Concepts81.txt").is_file():
        return p
    if p.name == "Groundtruth":
        return p.parent
    return None


def _read_nuswide(p: Path, split: str | None, classes: Any, progress: ProgressHook) -> Annotations:
    root = _nuswide_root(p)
    if root is None:
        raise input_error(p, "no Groundtruth folder here (not a NUS-WIDE folder)", FORMAT_FIX)
    gt = root / "Groundtruth"
    if split is None:
        # A graph is a training statistic: prefer the official training split when it is there.
        split = "train" if (gt / "TrainTestLabels").is_dir() else "all"
    split = split.lower()
    if split not in ("all", "train", "test"):
        raise input_error(root, f"unknown NUS-WIDE split {split!r}", "pass --split all|train|test")
    if split == "all":
        list_file, label_dir, tail = root / "ImageList" / "Imagelist.txt", gt / "AllLabels", ""
    else:
        list_file = root / "ImageList" / f"{split.capitalize()}Imagelist.txt"
        label_dir, tail = gt / "TrainTestLabels", f"_{split.capitalize()}"
    if not list_file.is_file():
        raise input_error(list_file, "no such file (NUS-WIDE's ImageList.zip provides it)",
                          "pass --split all|train|test to match the files you have")
    concepts = _nuswide_concepts(root, label_dir, tail, classes)
    # Windows separators in the official lists; files are relative to the Flickr image folder.
    files = [ln.strip().replace("\\", "/") for ln in list_file.read_text(encoding="utf-8").splitlines() if ln.strip()]
    n = len(files)
    progress.start(f"Reading NUS-WIDE {split}", total=len(concepts), unit="concepts")
    cols = []
    for concept in concepts:
        f = label_dir / f"Labels_{concept}{tail}.txt"
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
        cols.append(values.astype(bool))
        progress.advance()
    progress.stop()
    y = sp.csr_matrix(np.stack(cols, axis=1).astype(np.uint8)) if cols else sp.csr_matrix((n, 0), dtype=np.uint8)
    notes = [] if split != "all" else ["NUS-WIDE AllLabels covers train and test images (pass --split train for "
                                       "a training-only graph)"]
    ids = [f.rsplit(".", 1)[0] for f in files]
    return Annotations(labels=concepts, image_ids=ids, files=files, positives=y, ignore=None, source=str(root),
                       format="nuswide", notes=notes, meta={"split": split, "image_root": str(root / "Flickr")})


def _nuswide_concepts(root: Path, label_dir: Path, tail: str, classes: Any) -> list[str]:
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
        raise input_error(label_dir, "no such folder (and no Concepts81.txt)", "pass --split all|train|test")
    pattern = re.compile(rf"^Labels_(.+){re.escape(tail)}\.txt$")
    return sorted(m.group(1) for f in label_dir.iterdir() if (m := pattern.match(f.name)))


# ---------------------------------------------------------------------------------------------
# Open Images image-level labels: ImageID,Source,LabelName,Confidence

OPENIMAGES_CLASS_FILES = ("class-descriptions.csv", "oidv7-class-descriptions.csv", "oidv6-class-descriptions.csv",
                          "class-descriptions-boxable.csv", "oidv7-class-descriptions-boxable.csv")


def _read_openimages(p: Path, text: str, classes: Any) -> Annotations:
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
    shape = (len(uniq_ids), len(mid_list))

    def matrix(mask: np.ndarray) -> sp.csr_matrix:
        m = sp.csr_matrix((np.ones(int(mask.sum()), np.uint8), (rows[mask], cols[mask])), shape=shape)
        m.sum_duplicates()
        m.data[:] = 1
        return m

    neg = matrix(conf == 0)
    pos = matrix(conf >= OPENIMAGES_POSITIVE)
    # A human "no" (Confidence 0) outranks a machine label for the same image and class.
    pos = (pos - pos.multiply(neg)).astype(np.uint8).tocsr()
    pos.eliminate_zeros()
    notes: list[str] = []
    low = int(np.sum((conf > 0) & (conf < OPENIMAGES_POSITIVE)))
    if low:
        notes.append(f"{low:,} row(s) with 0 < Confidence < {OPENIMAGES_POSITIVE} count as unknown")
    names = _openimages_names(p, mid_list, classes, notes)
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


def _openimages_names(p: Path, mids: list[str], classes: Any, notes: list[str]) -> list[str]:
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
    counts: dict[str, int] = {}
    for n in out:
        counts[n] = counts.get(n, 0) + 1
    if any(v > 1 for v in counts.values()):
        # Open Images has a few MIDs sharing a display name; labels must stay distinct.
        out = [f"{n} ({m})" if counts[n] > 1 else n for n, m in zip(out, mids)]
        notes.append("display names shared by several MIDs carry their MID in brackets")
    return out


# ---------------------------------------------------------------------------------------------
# Generic CSV (path,labels) and JSONL ({"image": ..., "labels": [...]})

def _read_csv(p: Path, text: str, delimiter: str | None, label_delimiter: str | None) -> Annotations:
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    head, _, rest = text.partition("\n")
    delimiter = _unescape(delimiter) or ("\t" if p.suffix.lower() == ".tsv" or ("\t" in head and "," not in head)
                                          else ",")
    label_delimiter = _unescape(label_delimiter) or DEFAULT_LABEL_DELIMITER
    first = [c.strip().lower() for c in head.split(delimiter)]
    header = first[0] in CSV_PATH_COLUMNS or any(c in CSV_LABEL_COLUMNS for c in first[1:2])
    path_col, label_col = 0, 1
    if header:
        label_col = next((k for k, c in enumerate(first) if c in CSV_LABEL_COLUMNS), 1)
        path_col = next((k for k, c in enumerate(first) if c in CSV_PATH_COLUMNS and k != label_col), 0)
    body, offset = (rest, 1) if header else (text, 0)  # offset: file lines before the body
    body = body.rstrip("\n")
    if not body.strip():
        raise input_error(p, "no rows of annotations" + (" after the header" if header else ""),
                          "write one `path,label1;label2` row per image")
    if header and len(first) > 2 and not any(c in CSV_LABEL_COLUMNS for c in first):
        return _read_csv_wide(p, head, body, delimiter)
    fast = None
    if (path_col, label_col) == (0, 1) and (not header or len(first) == 2):
        fast = _csv_fast(p, body, offset, delimiter, label_delimiter)
    if fast is not None:
        paths, tokens, counts, numbers = fast
    else:
        width = len(first) if header else 2
        paths, fields, numbers = _csv_slow(p, body, offset, delimiter, label_delimiter, path_col, label_col, width)
        counts = np.fromiter((f.count(label_delimiter) + 1 for f in fields), dtype=np.int64, count=len(fields))
        tokens = label_delimiter.join(fields).split(label_delimiter)
    y, labels = _tokens_matrix(tokens, counts)
    notes: list[str] = []
    if label_delimiter != " " and len(labels) > 1 and all(" " in x for x in labels[:50]):
        notes.append(f"every label name contains a space and none a {label_delimiter!r}: if labels are space "
                     "separated, pass --label-delimiter ' '")
    joined = "\n".join(paths)
    if " " in joined or "\t" in joined:  # strip only when some path may need it (substring tests are fast)
        paths = [x.strip() for x in paths]
    ids, files, y = _merge_rows(p, paths, paths, y, numbers, notes)
    return Annotations(labels=labels, image_ids=ids, files=files, positives=y, ignore=None, source=str(p),
                       format="csv", notes=notes,
                       meta={"delimiter": delimiter, "label_delimiter": label_delimiter, "header": header})


def _read_csv_wide(p: Path, head: str, body: str, delimiter: str) -> Annotations:
    """One-hot table `path,<label 1>,...,<label C>` with 1 / 0 / -1 cells (ML-GCN's VOC cache, fastai).

    1 is a positive. When the table uses -1 for negatives, 0 means "difficult" (ML-GCN's VOC
    convention) and goes to the ignore mask; otherwise 0 is a negative. Empty cells are negative.
    """
    labels = [c.strip() for c in next(csv.reader([head], delimiter=delimiter))[1:]]
    if len(set(labels)) != len(labels) or not all(labels):
        raise input_error(p, "the header's label names must be distinct and not empty", line=1)
    paths, cells, numbers = [], [], []
    reader = csv.reader(body.split("\n"), delimiter=delimiter)
    for row in reader:
        if not any(c.strip() for c in row):
            continue
        if len(row) != len(labels) + 1:
            raise input_error(p, f"row has {len(row)} columns, the header {len(labels) + 1}", line=1 + reader.line_num)
        paths.append(row[0].strip())
        cells.append(row[1:])
        numbers.append(1 + reader.line_num)
    values = {"1": 1, "1.0": 1, "0": 0, "0.0": 0, "-1": -1, "-1.0": -1, "": 0}
    flat = list(itertools.chain.from_iterable(cells))
    codes = np.fromiter(map(values.get, flat, itertools.repeat(9)), dtype=np.int8, count=len(flat))
    for k in np.flatnonzero(codes == 9).tolist():  # only cells that need stripping, or bad ones
        value = values.get(flat[k].strip())
        if value is None:
            raise input_error(p, f"one-hot cell {flat[k]!r} under {labels[k % len(labels)]!r}; expected 1, 0 or -1",
                              line=numbers[k // len(labels)])
        codes[k] = value
    y = codes.reshape(len(cells), len(labels))  # (N, C)
    pos = sp.csr_matrix((y == 1).astype(np.uint8))
    notes: list[str] = []
    if (y == -1).any():
        ign = sp.csr_matrix((y == 0).astype(np.uint8))
        notes += [f"{ign.nnz:,} cell(s) of 0 in a table that uses -1 are ignored (difficult)"] if ign.nnz else []
        # Merge repeated rows on positives and difficult marks together, then split them again.
        ids, files, both = _merge_rows(p, paths, paths, sp.hstack([pos, ign]).tocsr(), np.asarray(numbers), notes)
        pos, ign = both[:, :len(labels)].tocsr(), both[:, len(labels):].tocsr()
    else:
        ign = None
        ids, files, pos = _merge_rows(p, paths, paths, pos, np.asarray(numbers), notes)
    return Annotations(labels=labels, image_ids=ids, files=files, positives=pos, ignore=ign, source=str(p),
                       format="csv", notes=notes, meta={"delimiter": delimiter, "header": True, "one_hot": True})


def _unescape(delimiter: str | None) -> str | None:
    """``\\t`` typed on a command line means a tab."""
    return "\t" if delimiter == "\\t" else delimiter


def _csv_fast(p: Path, body: str, offset: int, delimiter: str, label_delimiter: str):
    """Two unquoted columns, one row per line: parsed without a Python loop over rows.

    Per-line delimiter counts come from numpy over the bytes; the labels of all rows come from
    one ``str.split``. Returns (paths, tokens, tokens per row, line numbers), or None when the
    file needs the csv module (quotes, blank lines, multi-character delimiters, ...).
    """
    delims = (delimiter, label_delimiter)
    if any(len(d) != 1 or ord(d) > 127 for d in delims) or delimiter == label_delimiter or '"' in body \
            or "\n\n" in body or body.startswith("\n"):
        return None
    b = np.frombuffer(body.encode("utf-8"), dtype=np.uint8)
    line_end = np.append(np.flatnonzero(b == 10), len(b))  # (R,) end of each row
    n = len(line_end)
    col_pos = np.flatnonzero(b == ord(delimiter))
    per_line = np.bincount(np.searchsorted(line_end, col_pos), minlength=n)
    if (per_line != 1).any():  # blank-looking or malformed rows: the csv module skips or names them
        return None
    lab_pos = np.flatnonzero(b == ord(label_delimiter))
    lab_line = np.searchsorted(line_end, lab_pos)
    if (lab_pos < col_pos[lab_line]).any():  # a label delimiter inside a path: let csv sort it out
        return None
    counts = np.bincount(lab_line, minlength=n) + 2  # the path and the label tokens of each row
    tokens = body.replace(delimiter, label_delimiter).replace("\n", label_delimiter).split(label_delimiter)
    starts = (np.cumsum(counts) - counts).tolist()
    paths = [tokens[i] for i in starts]
    for i in starts:
        tokens[i] = ""  # the path's slot: an empty token, dropped with the other empty labels
    return paths, tokens, counts, np.arange(offset + 1, offset + n + 1)


def _csv_slow(p: Path, body: str, offset: int, delimiter: str, label_delimiter: str, path_col: int,
              label_col: int, width: int):
    """Quoted fields, blank lines, named columns: the csv module, one row at a time.

    width: the number of columns a row may have (the header's, or 2). When the column and label
    delimiters are the same (``img.jpg cat dog``), everything after the path is labels.
    """
    paths, fields, numbers = [], [], []
    same = delimiter == label_delimiter
    reader = csv.reader(body.split("\n"), delimiter=delimiter)
    for row in reader:
        line = offset + reader.line_num
        if same:
            row = [c for c in row if c.strip()]
        if not any(c.strip() for c in row):
            continue
        if same:
            paths.append(row[0])
            fields.append(label_delimiter.join(row[1:]))
            numbers.append(line)
            continue
        if len(row) <= max(path_col, label_col):
            raise input_error(p, f"row has no labels column (no {delimiter!r})",
                              f"write `path{delimiter}label1{label_delimiter}label2` "
                              f"(or `path{delimiter}` for an image without labels)", line=line)
        if len(row) > width:
            raise input_error(p, f"row has {len(row)} columns, expected {width}; labels are separated by "
                                 f"{label_delimiter!r}", "pass --label-delimiter, or quote the labels field",
                              line=line)
        paths.append(row[path_col])
        fields.append(row[label_col])
        numbers.append(line)
    return paths, fields, np.asarray(numbers, dtype=np.int64)


_JSON_STR = r'"([^"\\\n]*)"'  # a JSON string without escapes
_WS = r"[ \t]*"
# The one-line shape `{"image": "...", "labels": ["...", ...]}`, strings without escapes.
_JSONL_LINE = re.compile(
    rf'^{_WS}\{{{_WS}"image"{_WS}:{_WS}{_JSON_STR}{_WS},{_WS}"labels"{_WS}:{_WS}\[{_WS}'
    rf'((?:"[^"\\\n]*"(?:{_WS},{_WS}"[^"\\\n]*")*)?){_WS}\]{_WS}\}}{_WS}\r?$', re.M)


def _read_jsonl(p: Path, text: str) -> Annotations:
    fast = _JSONL_LINE.findall(text) if "\\" not in text else []
    if fast and len(fast) == text.count("\n") + (not text.endswith("\n")):
        numbers = np.arange(len(fast))  # every line matched: no blank lines to skip
    else:
        lines = text.splitlines()
        numbers = np.array([n for n, ln in enumerate(lines) if ln.strip()], dtype=np.int64)
    if fast and len(fast) == len(numbers):
        # Every line has the canonical shape: a regex (in C) instead of a JSON parser per line.
        images, inners = (list(x) for x in zip(*fast))
        counts = np.fromiter(map(str.count, inners, itertools.repeat('"')), dtype=np.int64, count=len(inners)) // 2
        tokens = re.findall(r'"([^"]*)"', "\n".join(inners))
        ids = images
    else:
        images, ids, tokens, counts = _jsonl_exact(p, text.splitlines(), numbers.tolist())
    y, labels = _tokens_matrix(tokens, counts)
    notes: list[str] = []
    ids, files, y = _merge_rows(p, ids, images, y, numbers + 1, notes)
    return Annotations(labels=labels, image_ids=ids, files=files, positives=y, ignore=None, source=str(p),
                       format="jsonl", notes=notes, meta={})


def _jsonl_exact(p: Path, lines: list[str], numbers: list[int]):
    """Any valid JSONL: one json.loads over all lines; errors are located line by line."""
    body = [lines[n] for n in numbers]
    try:
        objs = json.loads("[" + ",".join(body) + "]")
        if len(objs) != len(body):
            raise ValueError
    except ValueError:
        for k, ln in enumerate(body):
            try:
                json.loads(ln)
            except json.JSONDecodeError as exc:
                raise input_error(p, f"malformed JSON: {exc.msg}", "one JSON object per line",
                                  line=numbers[k] + 1) from None
        raise input_error(p, "malformed JSON lines", "one JSON object per line") from None
    shape = 'write {"image": "a.jpg", "labels": ["cat", "dog"]}'
    for k, o in enumerate(objs):
        ok = isinstance(o, dict) and "labels" in o
        img = o.get("image", o.get("path", o.get("file"))) if ok else None
        if not ok or not isinstance(img, str) or not isinstance(o["labels"], list):
            what = "expected an object with \"image\" and \"labels\"" if not ok else \
                "\"image\" must be a path" if not isinstance(img, str) else "\"labels\" must be a list of names"
            raise input_error(p, what, shape, line=numbers[k] + 1)
    images = [o.get("image", o.get("path", o.get("file"))) for o in objs]
    label_lists = [o["labels"] for o in objs]
    tokens = list(itertools.chain.from_iterable(label_lists))
    try:
        names_ok = all(type(t) is str for t in dict.fromkeys(tokens))  # checks distinct tokens only
    except TypeError:  # a list or object among the labels is unhashable
        names_ok = False
    if not names_ok:
        k = next(k for k, ls in enumerate(label_lists) if not all(type(t) is str for t in ls))
        raise input_error(p, "\"labels\" must be a list of names", shape, line=numbers[k] + 1)
    counts = np.fromiter(map(len, label_lists), dtype=np.int64, count=len(label_lists))
    ids = [str(o.get("id", img)) for o, img in zip(objs, images)]
    return images, ids, tokens, counts
