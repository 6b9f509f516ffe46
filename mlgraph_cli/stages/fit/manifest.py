"""``fit.json``: what each step of ``mlgraph fit`` ran on and what it made (schema ``mlgraph/fit@1``).

A step is up to date (a rerun skips it) when it finished with the same command line, its inputs
have the fingerprints they had when it ran, and its outputs the fingerprints they had when it
ended, as make does with times, but with sizes too. A file's fingerprint is its size and
modification time; a folder's, a digest of the size and time of each image, video or annotation
file under it (other files, such as a run folder's or a fit folder kept inside the images
folder, do not count), or for a run folder of every file in it. Content is never hashed: a
dataset of a million images is checked by its directory listing.

A step that started and never finished is recorded as started: the rerun runs it again, which
resumes an interrupted ``extract`` (its own resume) and, for ``train``, becomes ``--resume``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from mlgraph_cli.core.io.jsonfile import read_json
from mlgraph_cli.core.io.outputs import write_json
from mlgraph_cli.core.media.images import IMAGE_SUFFIXES
from mlgraph_cli.core.media.videos import VIDEO_SUFFIXES
from mlgraph_cli.errors import input_error

MANIFEST = "fit.json"
SCHEMA = "mlgraph/fit@1"
# files under an input folder that a stage reads: images, videos, annotations (YOLO labels, VOC XML, lists)
_DATA_SUFFIXES = IMAGE_SUFFIXES | VIDEO_SUFFIXES | {".txt", ".xml", ".json", ".jsonl", ".csv", ".tsv", ".yaml",
                                                    ".yml"}


def fingerprint(path: str | os.PathLike, *, every_file: bool = False, exclude: tuple[Path, ...] = ()) -> str | None:
    """``size:mtime_ns`` of a file; for a folder a digest over its data files (all files with
    ``every_file``), hidden ones and the folders ``exclude`` (fit's own outputs, when they lie in
    the images folder) left out; None when ``path`` does not exist."""
    p = Path(path)
    try:
        if p.is_file():
            st = p.stat()
            return f"{st.st_size}:{st.st_mtime_ns}"
    except OSError:
        return None
    if not p.is_dir():
        return None
    digest = hashlib.sha256()
    skip = {os.path.realpath(x) for x in exclude}
    for root, dirs, files in os.walk(p):
        dirs[:] = sorted(d for d in dirs
                         if not d.startswith(".") and os.path.realpath(os.path.join(root, d)) not in skip)
        for name in sorted(files):
            if name.startswith(".") or not (every_file or Path(name).suffix.lower() in _DATA_SUFFIXES):
                continue
            full = os.path.join(root, name)
            try:
                st = os.stat(full)
            except OSError:
                continue
            digest.update(f"{os.path.relpath(full, p)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode("utf-8",
                                                                                               "surrogateescape"))
    return "dir:" + digest.hexdigest()


class Manifest:
    """``FOLDER/fit.json``: the data a fit folder was made from and the record of each step."""

    def __init__(self, folder: Path, doc: dict[str, Any] | None = None) -> None:
        self.folder = folder
        self.path = folder / MANIFEST
        self.doc = doc or {"schema": SCHEMA, "data": None, "steps": {}}

    @classmethod
    def load(cls, folder: Path) -> "Manifest":
        path = folder / MANIFEST
        if not path.is_file():
            return cls(folder)
        doc = read_json(path, fix=f"delete {path} and run `mlgraph fit` again")
        if not isinstance(doc, dict) or doc.get("schema") != SCHEMA or not isinstance(doc.get("steps"), dict):
            raise input_error(path, f"not a {SCHEMA} record", "delete it and run `mlgraph fit` again")
        return cls(folder, doc)

    @property
    def exists(self) -> bool:
        return self.path.is_file()

    @property
    def data(self) -> dict[str, Any] | None:
        return self.doc.get("data")

    def record(self, name: str) -> dict[str, Any] | None:
        rec = self.doc["steps"].get(name)
        return rec if isinstance(rec, dict) else None

    def up_to_date(self, step) -> bool:
        """Finished with the same command line, on the same inputs, its outputs as it left them."""
        rec = self.record(step.name)
        return (rec is not None and rec.get("done") is True and rec.get("argv") == step.argv
                and rec.get("inputs") == step.fingerprint_inputs() and rec.get("outputs") == step.fingerprint_outputs())

    def start(self, step, ran: list[str], data: dict[str, Any]) -> None:
        self.doc["data"] = data
        self.doc["steps"][step.name] = {"argv": step.argv, "ran": ran, "inputs": step.fingerprint_inputs(),
                                        "done": False}
        self.save()

    def finish(self, step) -> None:
        rec = self.doc["steps"][step.name]
        rec.update(done=True, outputs=step.fingerprint_outputs())
        self.save()

    def save(self) -> None:
        write_json(self.path, self.doc)
