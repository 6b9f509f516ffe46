"""How a command declares its options: help defaults read from the config dataclasses, the flags
a user gave gathered into overrides, and ``KEY=VALUE`` flags parsed as TOML scalars.

Choices are ``Literal[TUPLE]`` of a tuple defined once in core's light config modules
(``Literal[OPTIMIZERS]``): typer lists them in ``--help`` and refuses anything else with exit 2.
"""

from __future__ import annotations

import dataclasses
from typing import Any

try:  # Python 3.11+; tomli is the same parser, packaged for 3.10 (as core/project.py)
    import tomllib
except ModuleNotFoundError:  # pragma: no cover
    import tomli as tomllib

import typer

from mlgraph_cli.errors import MlgraphError


def default_text(cls: type, name: str) -> str | None:
    """What an unset ``name`` of the config dataclass ``cls`` becomes, as help shows it: the
    field's ``metadata["default"]`` (a computed default), else its value (floats in ``:g`` form:
    0.001, 5); None when the field has no default to show (None, a factory)."""
    f = cls.__dataclass_fields__[name]
    if "default" in f.metadata:
        return f.metadata["default"]
    value = f.default
    if value is None or value is dataclasses.MISSING:
        return None
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"{value:g}" if isinstance(value, float) else str(value)


def default_help(cls: type, name: str) -> str:
    """``[default: X]`` for :func:`default_text` (escaped for rich markup), or "" when there is none."""
    text = default_text(cls, name)
    return f"\\[default: {text}]" if text is not None else ""


def config_option(cls: type, name: str, *flags: str, help: str, panel: str | None = None, **kw: Any) -> Any:
    """A ``typer.Option`` for the field ``name`` of ``cls`` whose help ends with the field's default.
    ``flags``: ``--name`` (underscores as dashes) unless given. The option's own default stays None
    (not given), so mlgraph.toml and the dataclass decide."""
    shown = default_help(cls, name)
    return typer.Option(*(flags or ("--" + name.replace("_", "-"),)), help=f"{help} {shown}" if shown else help,
                        show_default=False, rich_help_panel=panel, **kw)


def plain_option(*flags: str, help: str, panel: str | None = None, **kw: Any) -> Any:
    """A ``typer.Option`` with no default shown (a path resolved from the project, a run's own value)."""
    return typer.Option(*flags, help=help, show_default=False, rich_help_panel=panel, **kw)


def given(**options: Any) -> dict[str, Any]:
    """The options a user gave ({field: value} without the Nones), as a stage's overrides."""
    return {k: v for k, v in options.items() if v is not None}


def key_values(pairs: list[str] | None, flag: str, choices: tuple[str, ...] | None = None) -> dict[str, Any]:
    """``["groups=4", "init=random"]`` -> ``{"groups": 4, "init": "random"}``: each value read as a
    TOML value (4, 0.5, true, "text", [1, 2]), a bare word as a string. ``choices``: the keys
    allowed. A malformed pair or an unknown key is one line naming ``flag``."""
    parsed: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise MlgraphError(f"{flag} {pair}: expected KEY=VALUE (e.g. {flag} hidden=512)")
        if choices is not None and key not in choices:
            raise MlgraphError(f"{flag} {pair}: unknown key {key!r} (valid keys: {', '.join(choices)})")
        parsed[key] = toml_value(text.strip())
    return parsed


def toml_value(text: str) -> Any:
    """A TOML value (``4``, ``0.5``, ``true``, ``"a b"``, ``[1, 2]``), or the text itself when it is
    not one (``random``), so a word needs no quotes."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text
