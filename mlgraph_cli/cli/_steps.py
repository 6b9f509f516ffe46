"""Commands that run other commands (``mlgraph demo``, ``mlgraph fit``): each step is the command a
user would type, printed before it runs and run in this process, so it can be copied and run
again by hand."""

from __future__ import annotations

import contextlib
import os
import shlex
from typing import Any, Iterator

import typer

from mlgraph_cli.cli._common import err


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
