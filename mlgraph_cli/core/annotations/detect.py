"""Which annotation format a path holds, from its suffix and first bytes (64 KiB).

Folders are VOC, NUS-WIDE, an ultralytics YOLO dataset (holding ``data.yaml``) or YouTube-8M
shards; files are told apart by suffix (``.yaml`` / ``.yml``: a YOLO dataset's yaml), then by the
first line or JSON keys. mlgraph's own artifacts (a graph JSON, an HDF5 file) are refused with the name
of the command that reads them, since pointing build-graph at one is an easy slip.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import h5py

from mlgraph_cli.core.annotations.common import FORMAT_FIX, empty_file, missing_path
from mlgraph_cli.core.annotations.nuswide import nuswide_root
from mlgraph_cli.core.annotations.openimages import OPENIMAGES_HEADER
from mlgraph_cli.core.annotations.voc import voc_root
from mlgraph_cli.core.annotations.yolo import YAML_SUFFIXES, yolo_yaml
from mlgraph_cli.core.io.artifacts import SCHEMAS
from mlgraph_cli.core.io.inputs import check_input_file
from mlgraph_cli.errors import input_error

# What marks a YouTube-8M TFRecord shard's name (detect_format -> "yt8m").
TFRECORD_MARK = ".tfrecord"
# Which command reads each mlgraph artifact, for "wrong kind of file" messages.
ARTIFACT_READERS = {"graph": "mlgraph embed", "embeddings": "mlgraph train", "features": "mlgraph train",
                    "run": "mlgraph evaluate"}
_EXPECTED = ("expected annotations: COCO JSON, a VOC or NUS-WIDE folder, Open Images CSV, CSV or JSONL, or a YOLO "
             "data.yaml")
# Top-level keys of a COCO instances file / of label statistics.
_COCO_KEYS = re.compile(r'"(categories|annotations|images)"\s*:')
_STATS_KEYS = re.compile(r'"(cooccurrence|image_counts)"\s*:')


def detect_format(path: str | os.PathLike) -> str:
    """Guess the format of ``path`` from its suffix and first bytes; one of :data:`FORMATS`, or
    ``yt8m`` for YouTube-8M TFRecords (a name with ``.tfrecord`` in it, a quoted glob of such
    names, or a folder of them; read by core/media/yt8m/files.py, not by :func:`load_annotations`).

    Raises :class:`InputError` for a missing, empty or undetectable file, and for mlgraph's own
    artifacts (a graph, an HDF5 file), naming the command that reads them.
    """
    p = Path(path)
    # YouTube-8M shards are named *.tfrecord (or .tfrecord.gz, or train0000.tfrecord-00001-of-...):
    # the name decides, so a glob that the shell did not expand is recognised too.
    if TFRECORD_MARK in p.name and not p.is_dir():
        return "yt8m"
    if p.is_dir():
        if voc_root(p, strict=False) is not None:
            return "voc"
        if nuswide_root(p) is not None:
            return "nuswide"
        if yolo_yaml(p) is not None:
            return "yolo"
        if any(TFRECORD_MARK in q.name for q in p.iterdir() if q.is_file()):
            return "yt8m"
        raise input_error(p, "this folder is not a Pascal VOC folder (ImageSets/Main), a NUS-WIDE folder "
                             "(Groundtruth/, Concepts81.txt) or a YOLO dataset (data.yaml)",
                          FORMAT_FIX + " or point at the annotations file")
    if not p.exists():
        raise missing_path(p)
    check_input_file(p, fix=FORMAT_FIX)  # a FIFO would block the read below
    with open(p, "rb") as fh:
        head = fh.read(1 << 16)
    if not head.strip():
        raise empty_file(p)
    _refuse_artifacts(p, head)
    suffix = p.suffix.lower()
    if suffix in YAML_SUFFIXES:
        return "yolo"
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
    """The artifact kind (``features``, ...) named by an HDF5 file's schema tag, None if it has none."""
    try:
        with h5py.File(p, "r") as f:
            tag = f.attrs.get("schema")
    except Exception:  # an unreadable HDF5 file is still not annotations
        return None
    tag = tag.decode() if isinstance(tag, bytes) else tag
    return next((k for k, (t, _) in SCHEMAS.items() if t == tag), None)


def _detect_json(p: Path, text: str, first: str) -> str:
    """stats, coco or jsonl for a file that starts like JSON (``text``: its first 64 KiB)."""
    if _STATS_KEYS.search(text):
        return "stats"
    if _COCO_KEYS.search(text) and not first.endswith("}"):
        return "coco"
    # One object per line: JSONL even under a .json name.
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(lines) > 1 and lines[0].strip().startswith("{") and lines[0].strip().endswith("}"):
        try:
            json.loads(lines[0])
            return "jsonl"
        except ValueError:
            pass
    if _COCO_KEYS.search(text):
        return "coco"
    raise input_error(p, "a JSON file that is neither COCO instances ({images, annotations, categories}) nor label "
                         "statistics ({labels, image_counts, cooccurrence})", FORMAT_FIX)
