"""YouTube-8M vocabulary, segment classes and label columns, and a shard's labels as annotations.

``vocabulary.csv`` maps class indices to names (columns ``Index`` and ``Name``);
``segment_label_ids.csv`` lists the 1,000 classes rated in YouTube-8M Segments. The label columns
of an import are class indices in ascending order (docs/method.md, "YouTube-8M").
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import scipy.sparse as sp

from mlgraph_cli.core.annotations import Annotations
from mlgraph_cli.core.io.inputs import check_input_file
from mlgraph_cli.core.media.yt8m.records import iter_videos
from mlgraph_cli.core.media.yt8m.tfrecord import BadRecord
from mlgraph_cli.errors import input_error

VOCAB_FIX = "use YouTube-8M's vocabulary.csv (header Index,TrainVideoCount,KnowledgeGraphId,Name,...)"
SEGMENT_FIX = "use YouTube-8M's segment_label_ids.csv (header Index, one class index per line)"



@dataclass
class Vocabulary:
    """YouTube-8M ``vocabulary.csv``: class index -> name."""

    names: dict[int, str]
    source: str = ""


def _open_csv(path: Path, fix: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header (lower-cased) and (line number, row) pairs of a CSV file."""
    check_input_file(path, fix=fix)  # a FIFO would block the read
    with open(path, newline="", encoding="utf-8", errors="replace") as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader)
        except StopIteration:
            raise input_error(path, "the file is empty", fix) from None
        except csv.Error as exc:
            raise input_error(path, f"malformed CSV ({exc})", fix, line=1) from None
        rows = []
        try:
            for row in reader:
                if any(cell.strip() for cell in row):
                    rows.append((reader.line_num, row))
        except csv.Error as exc:
            raise input_error(path, f"malformed CSV ({exc})", fix, line=reader.line_num) from None
    return [h.strip().lower() for h in header], rows


def _index(path: Path, line: int, text: str, fix: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise input_error(path, f"class index {text.strip()!r} is not an integer", fix, line=line) from None
    if value < 0:
        raise input_error(path, f"class index {value} is negative", fix, line=line)
    return value


def read_vocabulary(path: str | os.PathLike) -> Vocabulary:
    """Read ``vocabulary.csv`` (columns ``Index`` and ``Name`` required; others ignored)."""
    p = Path(path)
    header, rows = _open_csv(p, VOCAB_FIX)
    if "index" not in header or "name" not in header:
        raise input_error(p, f"the header has no {'Index' if 'index' not in header else 'Name'} column", VOCAB_FIX,
                          line=1)
    ci, cn = header.index("index"), header.index("name")
    names: dict[int, str] = {}
    seen: dict[str, int] = {}
    for line, row in rows:
        if len(row) <= max(ci, cn):
            raise input_error(p, f"{len(row)} columns, the header has {len(header)}", VOCAB_FIX, line=line)
        idx = _index(p, line, row[ci], VOCAB_FIX)
        if idx in names:
            raise input_error(p, f"class index {idx} appears twice", VOCAB_FIX, line=line)
        name = row[cn].strip() or str(idx)
        if name in seen:  # label names must be unique; disambiguate like the data would
            name = f"{name} ({idx})"
        seen[name] = idx
        names[idx] = name
    if not names:
        raise input_error(p, "no classes after the header", VOCAB_FIX)
    return Vocabulary(names=names, source=str(p))


def read_segment_classes(path: str | os.PathLike) -> list[int]:
    """Read ``segment_label_ids.csv``: header ``Index``, one class index per line; sorted, unique."""
    p = Path(path)
    header, rows = _open_csv(p, SEGMENT_FIX)
    if header[:1] != ["index"]:
        raise input_error(p, f"the header is {','.join(header)!r}, expected 'Index'", SEGMENT_FIX, line=1)
    out = sorted({_index(p, line, row[0], SEGMENT_FIX) for line, row in rows})
    if not out:
        raise input_error(p, "no class indices after the header", SEGMENT_FIX)
    return out


@dataclass
class LabelSpace:
    """The label columns of an import: YouTube-8M class indices in ascending order, and their names."""

    class_ids: list[int]
    names: list[str]

    def __post_init__(self) -> None:
        self.column = {c: j for j, c in enumerate(self.class_ids)}

    def __len__(self) -> int:
        return len(self.class_ids)


def label_space(vocabulary: Vocabulary | None, segment_classes: Sequence[int] | None,
                seen: Iterable[int] = ()) -> LabelSpace:
    """Columns: the vocabulary's classes (restricted to ``segment_classes`` when given), else the
    segment classes, else the classes ``seen`` in the data. Order: class index (vocabulary order);
    names: the vocabulary's, else the indices as strings.
    """
    if segment_classes is not None:
        ids = sorted(set(segment_classes))
    elif vocabulary is not None:
        ids = sorted(vocabulary.names)
    else:
        ids = sorted(set(int(c) for c in seen))
    if vocabulary is not None:
        missing = [c for c in ids if c not in vocabulary.names]
        if missing:
            raise input_error(vocabulary.source, f"{len(missing)} segment class(es) are not in the vocabulary "
                              f"(first: {missing[0]})", "pass the vocabulary.csv that goes with segment_label_ids.csv")
        names = [vocabulary.names[c] for c in ids]
    else:
        names = [str(c) for c in ids]
    return LabelSpace(class_ids=ids, names=names)


def load_yt8m_annotations(paths: Sequence[str | os.PathLike], vocabulary: str | os.PathLike | Vocabulary | None = None,
                          *, segment_classes: str | os.PathLike | Sequence[int] | None = None):
    """The video labels of YouTube-8M TFRecords as :class:`~mlgraph_cli.core.annotations.Annotations`.

    Reads only each record's context (id, labels), so ``build-graph`` can count co-occurrences of
    a frame-level shard without decoding its frames. Columns as :func:`label_space`; a label not
    among them is dropped (counted in ``notes``). Corrupt records are skipped and listed in ``notes``.
    ``files`` holds ``<tfrecord path>#<record index>``. Raises a one-line InputError if no record
    could be read.
    """
    vocab = read_vocabulary(vocabulary) if isinstance(vocabulary, (str, os.PathLike)) else vocabulary
    seg = read_segment_classes(segment_classes) if isinstance(segment_classes, (str, os.PathLike)) else segment_classes
    ids: list[str] = []
    files: list[str | None] = []
    label_lists: list[np.ndarray] = []
    bad: list[BadRecord] = []
    paths = [str(p) for p in paths]
    for path, index, item in iter_videos(paths, context_only=True):
        if isinstance(item, BadRecord):
            bad.append(item)
            continue
        ids.append(item.id)
        files.append(f"{path}#{index}")
        label_lists.append(item.labels)
    if not ids:
        first = bad[0] if bad else None
        raise input_error(first.path if first else (paths[0] if paths else "(no files)"),
                          f"no readable YouTube-8M record ({first.reason})" if first else "no records",
                          "pass frame- or video-level YouTube-8M TFRecords")
    seen = np.unique(np.concatenate(label_lists)) if label_lists else np.zeros(0, np.int64)
    space = label_space(vocab, seg, seen.tolist())
    rows, cols = [], []
    dropped = 0
    for i, labels in enumerate(label_lists):
        for c in labels.tolist():
            j = space.column.get(int(c))
            if j is None:
                dropped += 1
            else:
                rows.append(i)
                cols.append(j)
    y = sp.csr_matrix((np.ones(len(rows), np.uint8), (rows, cols)), shape=(len(ids), len(space)))
    y.sum_duplicates()
    y.data[:] = 1
    notes = [f"skipped {b}" for b in bad]
    if dropped:
        notes.append(f"{dropped} label(s) outside the {len(space)} label columns were dropped")
    return Annotations(labels=space.names, image_ids=ids, files=files, positives=y.astype(np.uint8).tocsr(),
                       ignore=None, source=paths[0] if len(paths) == 1 else f"{paths[0]} (+{len(paths) - 1} files)",
                       format="yt8m", notes=notes,
                       meta={"label_order": "id", "class_ids": space.class_ids, "bad_records": len(bad)})
