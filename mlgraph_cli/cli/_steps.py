"""Commands that run other mlgraph commands (``mlgraph demo``, ``mlgraph fit``): each step is the
command a user would type, printed before it runs and run in this process, so a user can copy any
one of them and run it again by hand."""

from __future__ import annotations

import contextlib
import os
import shlex
from pathlib import Path
from typing import Iterator

import typer
from rich.rule import Rule

from mlgraph_cli.cli._common import err


@contextlib.contextmanager
def inside(folder: Path) -> Iterator[None]:
    """Run the steps with ``folder`` as the current folder (a project's commands find mlgraph.toml there)."""
    before = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


def show_step(args: list[str] | str, note: str | None = None) -> None:
    """The rule and ``$ mlgraph ARGS`` line of a step (a string: a step that is no command, shown as
    a ``# TEXT`` comment); ``note`` (dim) says why it does not run."""
    err.print(Rule(style="dim"))
    line = f"# {args}" if isinstance(args, str) else f"$ mlgraph {shlex.join(args)}"
    if note is None:
        err.print(line, style="bold cyan", markup=False, highlight=False, soft_wrap=True)
    else:
        err.print(f"{line}  # {note}", style="dim", markup=False, highlight=False, soft_wrap=True)


def run_step(args: list[str]) -> None:
    """Run one mlgraph command in process, as typed; a failure (its one-line error is printed
    already) or an interruption ends the calling command with the step's exit code."""
    from typer.main import get_command

    from mlgraph_cli.cli.app import app

    show_step(args)
    code = get_command(app).main(args=args, prog_name="mlgraph", standalone_mode=False)
    if code:
        raise typer.Exit(code)
