"""The one exception family for mistakes a user can fix.

Each message is one line: the file (or option) at fault, what was found, and the command or
flag that produces the right input. The CLI turns these into a red line on stderr and exit
code 1; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import os


class MlgraphError(Exception):
    """A user-fixable problem. ``str(err)`` is the complete one-line message."""


class InputError(MlgraphError):
    """An input file is missing, empty, malformed or inconsistent."""


class SchemaError(MlgraphError):
    """A file is not the kind of artifact a command expected."""


class MismatchError(MlgraphError):
    """Two artifacts disagree (label sets, heads, datasets)."""


def where(path: str | os.PathLike, line: int | None = None) -> str:
    """Render ``path`` or ``path:line`` for an error message."""
    text = os.fspath(path)
    return f"{text}:{line}" if line is not None else text


def input_error(path: str | os.PathLike, what: str, fix: str | None = None, *, line: int | None = None) -> InputError:
    """Build an :class:`InputError` whose message reads ``FILE[:LINE]: WHAT (FIX)``."""
    message = f"{where(path, line)}: {what}"
    if fix:
        message += f" ({fix})"
    return InputError(message)
