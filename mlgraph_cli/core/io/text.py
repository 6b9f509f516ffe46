"""Text an output holds, made safe for its format.

- Names that are not valid UTF-8 (a file name with a Latin-1 byte reaches Python as a surrogate
  escape, ``caf\\udce9.png``) cannot be written to a UTF-8 file: :func:`printable` writes the
  odd byte as ``\\xe9`` (so ``caf\\xe9.png``, readable and telling which byte it was).
- A CSV cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is run as a
  formula by spreadsheet tools (a label named ``=cmd|calc``): :func:`csv_cell` prefixes it with an
  apostrophe, as OWASP's "CSV Injection" page advises; numbers are left as they are.
"""

from __future__ import annotations

import csv
import io
import re
from typing import Any, Iterable, Sequence

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def printable(text: str) -> str:
    """``text`` as it can be written to a UTF-8 file: unchanged when it is, else each byte that
    was not UTF-8 written as ``\\xNN`` (any other lone surrogate as U+FFFD)."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate that is not an escaped byte
        return text.encode("utf-8", "replace").decode("utf-8")


def printable_strings(value: Any) -> Any:
    """``value`` (a JSON-able row) with every string passed through :func:`printable`."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {printable_strings(k): printable_strings(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [printable_strings(v) for v in value]
    return value


def csv_cell(value: Any) -> Any:
    """A cell that a spreadsheet shows as text, never runs as a formula (numbers unchanged)."""
    if not isinstance(value, str):
        return value
    text = printable(value)
    if text.startswith(FORMULA_START) and not _NUMBER.match(text):
        return "'" + text
    return text


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A CSV document (``\\n`` line ends) whose every cell went through :func:`csv_cell`."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([csv_cell(c) for c in row] for row in rows)
    return buf.getvalue()
