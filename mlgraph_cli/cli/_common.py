"""What every command shares: consoles, the error boundary, progress bars, the project."""

from __future__ import annotations

import errno
import functools
import os
import re
import time
from typing import Any, Callable

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from mlgraph_cli.core.progress import ProgressHook
from mlgraph_cli.errors import MlgraphError

class _Console(Console):
    """A console that wraps lines only on a terminal.

    Sent to a pipe or a file, rich would hard-wrap every message at 80 columns, splitting
    commands and paths that a reader (or a script) needs whole; so off a terminal every print
    is a soft wrap (one line per message), whatever the caller asked.
    """

    @property
    def soft_wrap(self) -> bool:  # type: ignore[override]
        return self._soft_wrap or not self.is_terminal

    @soft_wrap.setter
    def soft_wrap(self, value: bool) -> None:
        self._soft_wrap = value

    def print(self, *args: Any, **kwargs: Any) -> None:
        if not self.is_terminal:
            kwargs["soft_wrap"] = True
        super().print(*args, **kwargs)


# Results go to stdout (so they pipe); progress, summaries and errors go to stderr.
out = _Console(highlight=False, soft_wrap=True)
err = _Console(stderr=True, highlight=False)


def fail(message: str) -> None:
    """Print a one-line error on stderr and exit with code 1."""
    # Printed without markup so file names with brackets come through as they are.
    err.print(f"Error: {message}", style="bold red", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(1)


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn :class:`MlgraphError` and operating-system failures (read-only, full disk, permission,
    a folder in the way, ...) into one red line and exit code 1 at the CLI boundary."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except MlgraphError as exc:
            fail(str(exc))
        except OSError as exc:
            line = os_error_line(exc)
            if line is None:  # not a failure of the file system: a bug, keep the traceback
                raise
            fail(line)
        except KeyboardInterrupt:
            err.print("Interrupted; partial outputs were not kept under their final names.", style="yellow")
            raise typer.Exit(130) from None

    return wrapper


# errno -> what the user can do about it
_OS_FIXES = {
    errno.EROFS: "the file system is read-only: write somewhere else (-o) or make it writable",
    errno.EACCES: "write somewhere you may (-o), or change the permissions",
    errno.EPERM: "write somewhere you may (-o), or change the permissions",
    errno.ENOSPC: "the disk is full: free some space, or write to another disk (-o)",
    errno.EDQUOT: "the disk quota is used up: free some space, or write to another disk (-o)",
    errno.EISDIR: "a folder is in the way: pass a file name, not a folder",
    errno.ENOTDIR: "a part of the path is a file, not a folder: check the path",
    errno.EEXIST: "something is in the way: check the path",
    errno.ELOOP: "a symbolic link points back at itself: fix or remove the link",
    errno.ENAMETOOLONG: "use a shorter name",
    errno.ENOENT: "check the path",
    errno.EIO: "the disk reported an input/output error: check the disk",
}
_H5_NAME = re.compile(r"name = '([^']*)'")
_H5_MESSAGE = re.compile(r"error message = '([^']*)'")


def os_error_line(exc: OSError) -> str | None:
    """One line for an operating-system failure: ``PATH: what happened (what to do)``.

    h5py puts the file name and the system's message inside its own text; they are taken from
    there. Returns None for an OSError with no errno (not a file-system failure).
    """
    from mlgraph_cli.core.io.inputs import cwd_exists  # cli modules import core inside their functions

    code = exc.errno
    if code is None:
        return None
    text = str(exc.strerror or "")
    name = exc.filename
    if name is None and (match := _H5_NAME.search(text)):
        name = match.group(1)
    if match := _H5_MESSAGE.search(text):
        text = match.group(1)
    what = text or os.strerror(code)
    fix = _OS_FIXES.get(code, "check the path and the disk")
    if code == errno.ENOENT and not cwd_exists():  # a relative path, or the folder itself, is gone
        fix = "the current folder was deleted: cd into a folder that exists, or pass absolute paths"
        name = name if name is not None else "the current folder"
    where = f"{os.fspath(name)}: " if name is not None else ""
    return f"{where}{what} ({fix})"


def progress_bar(quiet: bool = False) -> ProgressHook:
    """The progress hook a command passes to its stage.

    - a terminal: a rich progress bar, redrawn in place (:class:`RichProgress`);
    - anything else (a log file of a cluster job, a pipe): a plain line every
      ``MLGRAPH_PROGRESS_INTERVAL`` seconds (30 by default) with the count, rate and time left
      (:class:`LogProgress`), since a bar redrawn in place is unreadable there;
    - ``--quiet``, or ``MLGRAPH_PROGRESS=0``: nothing (notes through ``log`` still print unless quiet);
      ``MLGRAPH_PROGRESS=1`` draws the rich bar wherever stderr goes.
    """
    mode = os.environ.get("MLGRAPH_PROGRESS", "")
    if quiet:
        return RichProgress(quiet=True)
    if err.is_terminal or mode == "1":
        return RichProgress()
    if mode == "0":
        return RichProgress(bar=False)
    return LogProgress()


class RichProgress(ProgressHook):
    """A rich progress bar on stderr, driven by library code through :class:`ProgressHook`.
    ``quiet``: neither bar nor notes; ``bar`` False: notes only."""

    def __init__(self, quiet: bool = False, bar: bool = True) -> None:
        self.quiet, self.bar = quiet, bar
        self._progress: Progress | None = None
        self._task: Any = None
        self._unit = "items"

    def start(self, description: str, total: int | None = None, unit: str = "items") -> None:
        self.stop()
        if self.quiet or not self.bar:
            return
        self._unit = unit
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=err,
            transient=False,
        )
        self._progress.start()
        self._task = self._progress.add_task(description, total=total, rate="")

    def advance(self, n: int = 1) -> None:
        if self._progress is None:
            return
        self._progress.advance(self._task, n)
        task = self._progress.tasks[0]
        speed = task.speed
        if speed:
            self._progress.update(self._task, rate=f"{speed:,.1f} {self._unit}/s")

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def log(self, message: str) -> None:
        target = self._progress.console if self._progress is not None else err
        target.print(message, style="yellow", markup=False, highlight=False)


class LogProgress(ProgressHook):
    """Progress as plain lines for a log file: tqdm's meter (count, percentage, elapsed, time
    left, rate) every ``interval`` seconds, and a last line when a phase that printed any ends."""

    def __init__(self, interval: float | None = None) -> None:
        self.interval = interval if interval is not None else float(os.environ.get("MLGRAPH_PROGRESS_INTERVAL", 30))
        self._phase: tuple[str, int | None, str] | None = None
        self._n = 0
        self._t0 = self._last = 0.0
        self._printed = False

    def start(self, description: str, total: int | None = None, unit: str = "items") -> None:
        self.stop()
        self._phase, self._n, self._printed = (description, total, unit), 0, False
        self._t0 = self._last = time.monotonic()

    def advance(self, n: int = 1) -> None:
        if self._phase is None:
            return
        self._n += n
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self._line(now)

    def stop(self) -> None:
        if self._phase is not None and self._printed:
            self._line(time.monotonic())
        self._phase = None

    def log(self, message: str) -> None:
        err.print(message, markup=False, highlight=False)

    def _line(self, now: float) -> None:
        from tqdm import tqdm

        description, total, unit = self._phase
        err.print(tqdm.format_meter(self._n, total, now - self._t0, prefix=description, unit=unit, ascii=True,
                                    ncols=100), markup=False, highlight=False)
        self._printed = True


def summary(message: str) -> None:
    """A closing line for the user on stderr (stdout is kept for data)."""
    err.print(message, highlight=False)


def load_project():
    """The project of the current folder, or None (imported here so commands stay light)."""
    from mlgraph_cli.core.project import find_project

    return find_project()


def is_stdout(path: Any) -> bool:
    return path is not None and os.fspath(path) == "-"

