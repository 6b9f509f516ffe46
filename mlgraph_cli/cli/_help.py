"""How ``--help`` names what a command takes: ``INPUTS...`` rather than ``{inputs}...``, and no
``<bool>`` beside a flag (a flag takes no value). typer's documented extension point, a command
class (``cls``), changes only the help text; parsing is typer's own."""

from __future__ import annotations

from typer.core import TyperCommand, TyperGroup


class _PlainHelp:
    def get_params(self, ctx):
        params = super().get_params(ctx)
        for param in params:
            if getattr(param, "is_flag", False) and param.metavar is None:
                param.metavar = ""  # the help's type column stays empty for a flag
        return params

    def collect_usage_pieces(self, ctx) -> list[str]:
        """``[OPTIONS] NAME...`` in the usage line, arguments in capitals as in the Arguments panel."""
        pieces = super().collect_usage_pieces(ctx)
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                name = (param.metavar or param.name or "").upper() + ("..." if param.nargs != 1 else "")
                old = param.get_usage_pieces(ctx)
                at = next((i for i in range(len(pieces)) if pieces[i:i + len(old)] == old), None)
                if at is not None:
                    pieces[at:at + len(old)] = [name if param.required else f"[{name}]"]
        return pieces


class HelpCommand(_PlainHelp, TyperCommand):
    """Every mlgraph command."""


class HelpGroup(_PlainHelp, TyperGroup):
    """The ``mlgraph`` group (its --version, --install-completion, --help)."""


def use_plain_help(app) -> None:
    """Give every command registered on ``app`` (with typer's default class) the plain help."""
    for info in app.registered_commands:
        if info.cls in (None, TyperCommand):
            info.cls = HelpCommand
