"""The one way a JSON artifact is read: :func:`read_json` (a file) and :func:`parse_json` (text:
a line of metrics.jsonl, an HDF5 attribute), bounded and strict.

What a hand-edited or hostile file can hold beyond a syntax error, each turned into one line
naming the file (and the field): nesting deeper than the parser's recursion limit (Python's
``json`` raises RecursionError), ``NaN`` and ``Infinity`` (Python's ``json`` accepts them; no
mlgraph artifact writes them), numbers whose magnitude no artifact has (an integer beyond int64,
which numpy would wrap into a negative count, or a float that overflows to infinity).

The numbers are checked without a Python call per number: a regular expression over the text
finds candidates (19 or more digits in a row, a three-digit exponent), and only then is the
parsed document walked to name the field. A multi-million-edge graph pays one C-speed scan.
"""

from __future__ import annotations

import json
import math
import os
import re
from typing import Any, Iterator

from mlgraph_cli.core.io.inputs import check_input_file
from mlgraph_cli.errors import input_error

MAX_INT = 2**63 - 1  # int64: what numpy and HDF5 hold
_HUGE = re.compile(r"\d{19,}|\d[eE]\+?\d{3}")


def read_json(path: str | os.PathLike, *, fix: str | None = None) -> Any:
    """Parse a JSON file (UTF-8); a missing, special, empty, malformed or out-of-range file is a
    one-line :class:`~mlgraph_cli.errors.InputError` ending in ``fix``."""
    p = check_input_file(path, fix=fix)
    raw = p.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise input_error(p, "not UTF-8 text", fix, line=raw.count(b"\n", 0, exc.start) + 1) from None
    if not text.strip():
        raise input_error(p, "the file is empty", fix)
    return parse_json(text, p, fix=fix)


def parse_json(text: str, path: str | os.PathLike, *, fix: str | None = None, line: int | None = None) -> Any:
    """Parse ``text`` read from ``path`` (``line``: where it starts, for a line of a .jsonl file)."""
    try:
        doc = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        at = exc.lineno + (line - 1 if line is not None else 0)
        raise input_error(path, f"malformed JSON: {exc.msg}", fix, line=at) from None
    except RecursionError:
        raise input_error(path, "JSON nested too deeply to read (no mlgraph file nests more than a few levels)",
                          fix, line=line) from None
    except ValueError as exc:  # NaN / Infinity, refused by _no_constant
        raise input_error(path, str(exc), fix, line=line) from None
    if _HUGE.search(text):
        for where, value in _numbers(doc, ""):
            if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT:
                raise input_error(path, f"{where or 'the value'} is {_short(value)}, beyond the largest whole "
                                        f"number an artifact holds (2**63 - 1)", fix, line=line)
            if isinstance(value, float) and not math.isfinite(value):
                raise input_error(path, f"{where or 'the value'} overflows to infinity", fix, line=line)
    return doc


def _no_constant(name: str) -> Any:
    raise ValueError(f"holds {name}, which is not a JSON number")


def _short(value: int) -> str:
    text = str(value)
    return text if len(text) <= 24 else f"a {len(text)}-digit number"


def _numbers(doc: Any, where: str) -> Iterator[tuple[str, Any]]:
    """(JSON path, number) of every number in ``doc``, iteratively (no recursion limit)."""
    stack = [(where, doc)]
    while stack:
        at, value = stack.pop()
        if isinstance(value, dict):
            stack.extend((f"{at}.{k}" if at else str(k), v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((f"{at}[{i}]", v) for i, v in enumerate(value))
        elif isinstance(value, (int, float)):
            yield at, value


def describe(value: Any) -> str:
    """How a message names a JSON value of the wrong kind: its type and a short repr."""
    kind = {dict: "an object", list: "a list", str: "a string", bool: "true/false", type(None): "null"}.get(
        type(value), "a number")
    text = repr(value)
    return f"{kind} ({text[:40]}{'...' if len(text) > 40 else ''})"
