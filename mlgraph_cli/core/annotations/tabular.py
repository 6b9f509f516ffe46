"""Generic tables: CSV (``path,label1;label2`` or a one-hot ``path,<label>,...`` table) and JSONL
(``{"image": ..., "labels": [...]}`` per line). Labels are columns in first-appearance order.

Each format has a fast path for the plain shape (numpy over the bytes for CSV, one regex for
JSONL) and an exact path (the csv module, the JSON parser) for everything else; both give the
same result, and the exact path also locates errors by line.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from mlgraph_cli.core.annotations.common import Annotations, merge_rows, tokens_matrix
from mlgraph_cli.core.annotations.guesses import joined_labels, refuse_bar_joined, unknown_header
from mlgraph_cli.errors import input_error

# Column names that mark the first CSV row as a header (compared lower-case).
CSV_PATH_COLUMNS = ("path", "image", "image_path", "file", "filename", "file_name", "image_name", "image_id", "img",
                    "name", "id")
CSV_LABEL_COLUMNS = ("labels", "label", "tags", "tag", "classes", "class", "categories")
DEFAULT_LABEL_DELIMITER = ";"
# One-hot cells: 1 positive, -1 negative, 0 negative or "difficult" (see _read_csv_wide); 9 = look again.
_ONE_HOT = {"1": 1, "1.0": 1, "0": 0, "0.0": 0, "-1": -1, "-1.0": -1, "": 0}


# ---------------------------------------------------------------------------------------------
# CSV

def read_csv(p: Path, text: str, delimiter: str | None, label_delimiter: str | None) -> Annotations:
    """delimiter: column separator (default: tab for .tsv or a tab-only first line, else ``,``);
    label_delimiter: between labels of one row (default ``;``). A header row is recognised by its
    column names (:data:`CSV_PATH_COLUMNS`, :data:`CSV_LABEL_COLUMNS`)."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    head, _, rest = text.partition("\n")
    delimiter = _unescape(delimiter) or ("\t" if p.suffix.lower() == ".tsv" or ("\t" in head and "," not in head)
                                          else ",")
    guessed = not label_delimiter  # the label delimiter is a guess unless the user gave one
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
    y, labels = tokens_matrix(tokens, counts)
    broken = next((name for name in labels if "\n" in name), None)
    if broken is not None:  # a quoted field across lines: a label name is one line of text
        raise input_error(p, f"label {broken!r} holds a line break", "write each label on one line, or fix the quotes")
    notes: list[str] = []
    if label_delimiter != " " and len(labels) > 1 and all(" " in x for x in labels[:50]):
        notes.append(f"every label name contains a space and none a {label_delimiter!r}: if labels are space "
                     "separated, pass --label-delimiter ' '")
    if guessed:
        refuse_bar_joined(p, labels, (delimiter, label_delimiter))
        notes += joined_labels(labels, (delimiter, label_delimiter))
    if not header:
        notes += unknown_header(head, paths, y, labels, f"{CSV_PATH_COLUMNS[0]},{CSV_LABEL_COLUMNS[0]}")
    joined = "\n".join(paths)
    if " " in joined or "\t" in joined:  # strip only when some path may need it (substring tests are fast)
        paths = [x.strip() for x in paths]
    ids, files, y = merge_rows(p, paths, paths, y, numbers, notes)
    return Annotations(labels=labels, image_ids=ids, files=files, positives=y, ignore=None, source=str(p),
                       format="csv", notes=notes,
                       meta={"delimiter": delimiter, "label_delimiter": label_delimiter, "header": header,
                             **_imagefolder_root(p)})


def _read_csv_wide(p: Path, head: str, body: str, delimiter: str) -> Annotations:
    """One-hot table `path,<label 1>,...,<label C>` with 1 / 0 / -1 cells (ML-GCN's VOC cache, fastai).

    1 is a positive. When the table uses -1 for negatives, 0 means "difficult" (ML-GCN's VOC
    convention) and goes to the ignore mask; otherwise 0 is a negative. Empty cells are negative.
    """
    labels = [c.strip() for c in next(csv.reader([head], delimiter=delimiter))[1:]]
    if len(set(labels)) != len(labels) or not all(labels):
        raise input_error(p, "the header's label names must be distinct and not empty", line=1)
    paths, cells, numbers = [], [], []
    reader = csv.reader(io.StringIO(body), delimiter=delimiter)  # a quoted field may span lines
    for row in reader:
        if not any(c.strip() for c in row):
            continue
        if len(row) != len(labels) + 1:
            raise input_error(p, f"row has {len(row)} columns, the header {len(labels) + 1}", line=1 + reader.line_num)
        paths.append(row[0].strip())
        cells.append(row[1:])
        numbers.append(1 + reader.line_num)
    flat = list(itertools.chain.from_iterable(cells))
    codes = np.fromiter(map(_ONE_HOT.get, flat, itertools.repeat(9)), dtype=np.int8, count=len(flat))
    for k in np.flatnonzero(codes == 9).tolist():  # only cells that need stripping, or bad ones
        value = _ONE_HOT.get(flat[k].strip())
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
        ids, files, both = merge_rows(p, paths, paths, sp.hstack([pos, ign]).tocsr(), np.asarray(numbers), notes)
        pos, ign = both[:, :len(labels)].tocsr(), both[:, len(labels):].tocsr()
    else:
        ign = None
        ids, files, pos = merge_rows(p, paths, paths, pos, np.asarray(numbers), notes)
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
    Returns (paths, label fields, (R,) line numbers).
    """
    paths, fields, numbers = [], [], []
    same = delimiter == label_delimiter
    reader = csv.reader(io.StringIO(body), delimiter=delimiter)  # a quoted field may span lines
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


# ---------------------------------------------------------------------------------------------
# JSONL

_JSON_STR = r'"([^"\\\n]*)"'  # a JSON string without escapes
_WS = r"[ \t]*"
# The one-line shape `{"image": "...", "labels": ["...", ...]}`, strings without escapes.
_JSONL_LINE = re.compile(
    rf'^{_WS}\{{{_WS}"image"{_WS}:{_WS}{_JSON_STR}{_WS},{_WS}"labels"{_WS}:{_WS}\[{_WS}'
    rf'((?:"[^"\\\n]*"(?:{_WS},{_WS}"[^"\\\n]*")*)?){_WS}\]{_WS}\}}{_WS}\r?$', re.M)
_JSONL_SHAPE = 'write {"image": "a.jpg", "labels": ["cat", "dog"]}'
# Keys of an object's image path: ours, then Hugging Face imagefolder's metadata.jsonl (``file_name``).
JSONL_PATH_KEYS = ("image", "path", "file", "file_name")
# Files that Hugging Face's imagefolder reads: their file names are relative to their own folder.
IMAGEFOLDER_METADATA = ("metadata.jsonl", "metadata.csv")
# Label keys whose value may be one name instead of a list (``"label": "cat"``).
_ONE_LABEL_KEYS = ("label", "tag", "class")


def read_jsonl(p: Path, text: str) -> Annotations:
    """The image path is ``image`` (or ``path`` / ``file`` / ``file_name``); the labels are ``labels``
    (or another of :data:`CSV_LABEL_COLUMNS`: a list of names; ``label``, ``tag`` and ``class`` may
    hold one name); the id is ``id`` when given, else the path."""
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
    y, labels = tokens_matrix(tokens, counts)
    notes: list[str] = []
    ids, files, y = merge_rows(p, ids, images, y, numbers + 1, notes)
    return Annotations(labels=labels, image_ids=ids, files=files, positives=y, ignore=None, source=str(p),
                       format="jsonl", notes=notes, meta=_imagefolder_root(p))


def _imagefolder_root(p: Path) -> dict[str, str]:
    """Hugging Face's ``metadata.jsonl`` / ``.csv`` names files relative to its folder: the images folder."""
    return {"image_root": str(p.parent)} if p.name.lower() in IMAGEFOLDER_METADATA else {}


def _jsonl_exact(p: Path, lines: list[str], numbers: list[int]):
    """Any valid JSONL: one json.loads over all lines; errors are located line by line.

    numbers: 0-based indices of the non-blank lines. Returns (images, ids, tokens, (R,) counts).
    """
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
    images, label_lists = [], []
    for k, o in enumerate(objs):
        keys = o if isinstance(o, dict) else {}
        path_key = next((key for key in JSONL_PATH_KEYS if key in keys), None)
        label_key = next((key for key in CSV_LABEL_COLUMNS if key in keys), None)
        img, labels = keys.get(path_key), keys.get(label_key)
        labels = [labels] if isinstance(labels, str) and label_key in _ONE_LABEL_KEYS else labels  # one `label`
        if path_key is None or label_key is None or not isinstance(img, str) or not isinstance(labels, list):
            what = ("expected an object with an image path (\"image\" or \"file_name\") and \"labels\""
                    if path_key is None or label_key is None else
                    f"\"{path_key}\" must be a path" if not isinstance(img, str) else
                    f"\"{label_key}\" must be a list of names")
            raise input_error(p, what, _JSONL_SHAPE, line=numbers[k] + 1)
        images.append(img)
        label_lists.append(labels)
    tokens = list(itertools.chain.from_iterable(label_lists))
    try:
        names_ok = all(type(t) is str for t in dict.fromkeys(tokens))  # checks distinct tokens only
    except TypeError:  # a list or object among the labels is unhashable
        names_ok = False
    if not names_ok:
        k = next(k for k, ls in enumerate(label_lists) if not all(type(t) is str for t in ls))
        raise input_error(p, "\"labels\" must be a list of names", _JSONL_SHAPE, line=numbers[k] + 1)
    counts = np.fromiter(map(len, label_lists), dtype=np.int64, count=len(label_lists))
    ids = [str(o.get("id", img)) for o, img in zip(objs, images)]
    return images, ids, tokens, counts
