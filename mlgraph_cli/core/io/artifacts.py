"""What every artifact carries, and how it is written safely.

Each file mlgraph writes says what it is (a schema tag such as ``mlgraph/graph@1``), which
mlgraph version and command made it, and with which parameters. Readers check the tag and name
the command that makes the right file when it is wrong. Writes go to a temporary name in the
destination folder and are renamed into place, so an interrupted run never leaves a half file
under the real name.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
from typing import Any, Sequence

from mlgraph_cli import __version__
from mlgraph_cli.errors import SchemaError

# kind -> (schema tag, the command that makes it)
SCHEMAS: dict[str, tuple[str, str]] = {
    "graph": ("mlgraph/graph@1", "mlgraph build-graph"),
    "embeddings": ("mlgraph/embeddings@1", "mlgraph embed"),
    "features": ("mlgraph/features@1", "mlgraph extract"),
    "run": ("mlgraph/run@1", "mlgraph train"),
    "run-args": ("mlgraph/run-args@1", "mlgraph train"),
    "metrics": ("mlgraph/metrics@1", "mlgraph evaluate"),
}


def schema_tag(kind: str) -> str:
    return SCHEMAS[kind][0]


def maker(kind: str) -> str:
    """The command that produces an artifact of ``kind``."""
    return SCHEMAS[kind][1]


def check_schema(path: str | os.PathLike, found: Any, kind: str) -> None:
    """Raise :class:`SchemaError` unless ``found`` is the schema tag of ``kind``."""
    expected = schema_tag(kind)
    if found == expected:
        return
    other = next((k for k, (tag, _) in SCHEMAS.items() if tag == found), None)
    article = "an" if other and other[0] in "aeiou" else "a"
    what = f"{article} {other} file ({found})" if other else ("a file without an mlgraph schema tag" if not found else f"schema {found!r}")
    raise SchemaError(
        f"{os.fspath(path)}: expected a {kind} file ({expected}) but found {what} "
        f"(make one with `{maker(kind)}`)"
    )


def provenance(command: str, params: dict[str, Any]) -> dict[str, Any]:
    """Who made an artifact: the mlgraph version, the command, its resolved parameters, when."""
    return {
        "mlgraph_version": __version__,
        "command": command,
        "params": {k: _jsonable(v) for k, v in params.items()},
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def labels_digest(labels: Sequence[str]) -> str:
    """A short, order-sensitive fingerprint of a label list (sha256 of the names, one per line)."""
    return hashlib.sha256("\n".join(labels).encode("utf-8")).hexdigest()[:16]


def file_digest(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes, hex."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()
