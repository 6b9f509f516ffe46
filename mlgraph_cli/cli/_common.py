"""What every command shares: consoles, the error boundary, progress bars, the project."""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import re
import shlex
import sys
from enum import Enum
from typing import Annotated, Any, Callable, Iterator

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

class Checkpoint(str, Enum):
    """Which weights of a run to use."""

    best = "best"
    last = "last"


CheckpointOption = Annotated[Checkpoint, typer.Option("--checkpoint", help="Which weights.")]



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
    where = f"{os.fspath(name)}: " if name is not None else ""
    return f"{where}{what} ({fix})"


class RichProgress(ProgressHook):
    """A rich progress bar on stderr, driven by library code through :class:`ProgressHook`."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self._progress: Progress | None = None
        self._task: Any = None
        self._unit = "items"

    def start(self, description: str, total: int | None = None, unit: str = "items") -> None:
        self.stop()
        if self.quiet:
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
            disable=not err.is_terminal and os.environ.get("MLGRAPH_PROGRESS") != "1",
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


def summary(message: str) -> None:
    """A closing line for the user on stderr (stdout is kept for data)."""
    err.print(message, highlight=False)


def default_help(cls: type, name: str) -> str:
    """``[default: X]`` from a config dataclass field (escaped for rich markup), so help never
    repeats a default by hand. Floats print in ``:g`` form (0.001, 5)."""
    value = cls.__dataclass_fields__[name].default
    return f"\\[default: {value:g}]" if isinstance(value, float) else f"\\[default: {value}]"


def load_project():
    """The project of the current folder, or None (imported here so commands stay light)."""
    from mlgraph_cli.core.project import find_project

    return find_project()


def is_stdout(path: Any) -> bool:
    return path is not None and os.fspath(path) == "-"


def stderr_is_terminal() -> bool:
    return sys.stderr.isatty()


# ---------------------------------------------------------------------------------------------
# Commands that run other commands (`demo`, `fit`): each step is the command a user would type,
# printed before it runs and run in this process, so it can be copied and run again by hand.

@contextlib.contextmanager
def inside(folder: Any) -> Iterator[None]:
    """Run the steps with ``folder`` as the current folder (a project's commands find mlgraph.toml there)."""
    before = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


def show_step(args: list[str] | str, note: str | None = None) -> None:
    """A rule, then ``$ mlgraph ARGS`` (a string: ``# TEXT``); ``note`` says why the step does not run."""
    from rich.rule import Rule

    err.print(Rule(style="dim"))
    line = f"# {args}" if isinstance(args, str) else f"$ mlgraph {shlex.join(args)}"
    err.print(line if note is None else f"{line}  # {note}", style="bold cyan" if note is None else "dim",
              markup=False, highlight=False, soft_wrap=True)


def run_step(args: list[str]) -> None:
    """Run one mlgraph command in process, as typed; its failure or interruption (already reported by
    the step) ends the calling command with the step's exit code."""
    from typer.main import get_command

    from mlgraph_cli.cli.app import app

    show_step(args)
    code = get_command(app).main(args=args, prog_name="mlgraph", standalone_mode=False)
    if code:
        raise typer.Exit(code)


# ---------------------------------------------------------------------------------------------
# Shared by `embed` and `inspect` (here, so that no command module imports another)

class Adjacency(str, Enum):
    """Adjacency kinds (the names of mlgraph_cli.core.graph.adjacency.ADJACENCIES)."""

    cond_mean = "cond-mean"
    binary = "binary"
    mlgcn = "mlgcn"
    jaccard = "jaccard"
    npmi = "npmi"


def choice_value(choice: Enum | None) -> str | None:
    return choice.value if choice is not None else None


def _fmt(value: float | None) -> str:
    import math

    return "n/a" if value is None or not math.isfinite(value) else f"{value:.3f}"


def print_report(report: dict[str, Any], *, limit: int = 20) -> None:
    """The report as a headline and a rich table (stdout); graph neighbours are marked with *."""
    from rich.table import Table
    from rich.text import Text

    nb = report["neighbours"]
    params = ", ".join(f"{k}={v}" for k, v in nb["params"].items())
    out.print(f"{report['embeddings']} ({report['method']}, {report['labels']} labels x {report['dimension']}) "
              f"against {report['graph']}", markup=False)
    out.print(f"neighbour mAP {_fmt(report['map'])} over {report['labels_with_neighbours']} labels with a neighbour "
              f"(neighbours: {nb['kind']} adjacency{f' with {params}' if params else ''} > {nb['min_weight']:g}); "
              f"cosine vs {report['reference']['kind']}: Spearman {_fmt(report.get('spearman'))}, "
              f"Pearson {_fmt(report.get('pearson'))}", markup=False)
    nearest = report.get("nearest") or {}
    if not nearest:
        return
    table = Table(title="Nearest labels by cosine (* = graph neighbour)", title_justify="left")
    table.add_column("label")
    table.add_column("nearest labels (cosine)")
    names = list(nearest)
    shown = names if limit == 0 else names[:limit]
    for name in shown:
        cells = [f"{'*' if n['neighbour'] else ''}{n['label']} ({n['cosine']:.2f})" for n in nearest[name]]
        table.add_row(Text(name), Text(", ".join(cells)))  # Text: label names are not markup
    out.print(table)
    if len(shown) < len(names):
        out.print(f"... {len(names) - len(shown)} more labels (--limit 0 shows all, --json gives everything)",
                  markup=False)
