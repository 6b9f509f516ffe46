"""The ``mlgraph`` command: a typer app whose commands each live in their own module.

Nothing here (or in any command module at import time) imports torch, numpy or h5py, so
``mlgraph --help`` answers at once; heavy imports happen inside the command bodies.
"""

from __future__ import annotations

import importlib
from typing import Annotated, Optional

import typer

from mlgraph_cli import __version__
from mlgraph_cli.cli._help import HelpGroup, use_plain_help

HELP = (
    "Multi-label image classification with cross-modality attention guided by label-graph "
    "embeddings (You et al., AAAI 2020). Each stage reads and writes plain files:\n\n"
    "build-graph -> embed -> extract -> train -> evaluate -> predict"
)

app = typer.Typer(
    name="mlgraph",
    cls=HelpGroup,
    help=HELP,
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish, PowerShell
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="Example: mlgraph init --annotations data/train.json --images data/images && mlgraph build-graph",
)

# Command modules, in the order of the pipeline; each defines register(app).
COMMANDS = (
    "make_dataset",
    "init",
    "build_graph",
    "embed", "inspect",
    "import_yt8m",
    "extract", "merge",
    "train", "evaluate", "predict", "export",
    "fit",
    "demo",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mlgraph {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True,
                                                    help="Show the version and exit.")] = None,
) -> None:
    """Multi-label classification with cross-modality attention and label-graph embeddings."""


for _name in COMMANDS:
    importlib.import_module(f"mlgraph_cli.cli.{_name}").register(app)
use_plain_help(app)  # INPUTS... and no <bool> in every command's help


def main() -> None:
    app(prog_name="mlgraph")
