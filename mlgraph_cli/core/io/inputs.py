"""What an input path must be before it is opened.

- A regular file (:func:`check_input_file`, :func:`special_file`): a named pipe would block the
  read forever and a device never ends, so they are refused (or skipped, among the images of a
  folder or a list) with what they are, never reported as missing.
- Inside its folder: a file name read from an annotation file must stay in the folder it is
  relative to, unless the user says otherwise on the command line (:func:`check_inside_folder`).
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Iterable

from mlgraph_cli.errors import MlgraphError, input_error


def special_kind(mode: int) -> str:
    """What a file that is not regular is, for a message (``a named pipe (FIFO)``, ...)."""
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "a special file"


def special_file(path: str | os.PathLike) -> str | None:
    """``is a named pipe (FIFO), not a regular file`` (the reason to skip ``path``), or None for a
    regular file or one that cannot be looked at (the opening then says why). Links are followed."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    return None if stat.S_ISREG(mode) else f"is {special_kind(mode)}, not a regular file"


def check_input_file(path: str | os.PathLike, *, fix: str | None = None) -> Path:
    """``path`` as a :class:`Path` when it names a regular file (links followed); otherwise a
    one-line :class:`~mlgraph_cli.errors.InputError`: ``no such file``, ``is a folder, not a
    file``, ``is a named pipe (FIFO), not a regular file``. Checked before the file is opened."""
    p = Path(path)
    try:
        mode = os.stat(p).st_mode
    except FileNotFoundError:
        raise input_error(p, "no such file" if cwd_exists() or p.is_absolute() else
                          "not found, and the current folder no longer exists (it was deleted)", fix) from None
    except NotADirectoryError:
        raise input_error(p, "no such file (a part of the path is a file, not a folder)", fix) from None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENAMETOOLONG, errno.EACCES):
            raise OSError(exc.errno, exc.strerror, os.fspath(p)) from None
        raise
    if stat.S_ISDIR(mode):
        raise input_error(p, "is a folder, not a file", fix)
    if not stat.S_ISREG(mode):
        raise input_error(p, f"is {special_kind(mode)}, not a regular file", fix)
    return p


def cwd_exists() -> bool:
    """Whether the current folder still exists (a deleted one makes every relative path fail)."""
    try:
        os.getcwd()
        return True
    except OSError:
        return False


def leaves_folder(name: str) -> bool:
    """Whether a file name taken from an input file points outside the folder it is relative to.

    The test is on the text (absolute, a drive, or ``..`` climbing above the start), not on
    resolved symlinks: a link the user made inside the images folder is the user's choice, while a
    name written in an annotation file may come from anyone.
    """
    text = name.replace("\\", "/")
    if os.path.isabs(text) or text.startswith("/") or (len(text) > 2 and text[0].isalpha() and text[1:3] == ":/"):
        return True
    depth = 0
    for part in text.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        elif part not in ("", "."):
            depth += 1
    return False


def check_inside_folder(folder: str | os.PathLike, names: Iterable[str], source: str | os.PathLike, *,
                        flag: str = "--allow-outside-paths") -> None:
    """Raise a one-line :class:`MlgraphError` naming ``source`` and the first of ``names`` (file
    names read from ``source``, relative to ``folder``) that leaves ``folder``."""
    for index, name in enumerate(names):
        if leaves_folder(str(name)):
            raise MlgraphError(f"{os.fspath(source)}: entry {index + 1} names {name!r}, which is outside the images "
                               f"folder {os.fspath(folder)} (fix the entry, or pass {flag} to read it anyway)")
