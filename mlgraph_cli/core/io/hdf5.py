"""HDF5 artifacts (features, embeddings): the signature, opening with a schema check, attributes
stored as JSON text, and UTF-8 string datasets. h5py is imported inside the functions: the CLI
imports this module on its start-up path, and h5py costs a tenth of a second."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any, Sequence

from mlgraph_cli.core.io.artifacts import _jsonable, check_schema, maker, schema_tag
from mlgraph_cli.errors import SchemaError, input_error


HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def is_hdf5(path: str | os.PathLike) -> bool:
    """Whether ``path`` starts with the HDF5 signature."""
    try:
        with open(path, "rb") as fh:
            return fh.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE
    except OSError:
        return False


def refuse_hdf5(path: str | os.PathLike, kind: str) -> None:
    """If ``path`` is an HDF5 file, raise :class:`SchemaError` naming what it is (for non-HDF5 kinds)."""
    if not is_hdf5(path):
        return
    import h5py

    try:
        with h5py.File(path, "r") as f:
            found = f.attrs.get("schema")
    except OSError:  # a damaged HDF5 file is not a `kind` file either
        found = None
    check_schema(path, found.decode() if isinstance(found, bytes) else found, kind)


def h5_write_attrs(obj: Any, attrs: dict[str, Any]) -> None:
    """Store attributes on an h5py object; dicts and lists are stored as JSON text."""
    for key, value in attrs.items():
        if isinstance(value, (dict, list, tuple)):
            obj.attrs[key] = json.dumps(_jsonable(value), ensure_ascii=False)
        elif value is None:
            obj.attrs[key] = "null"
        else:
            obj.attrs[key] = _jsonable(value)


def h5_read_attrs(obj: Any) -> dict[str, Any]:
    """Read attributes back, decoding the JSON text written by :func:`h5_write_attrs`."""
    out: dict[str, Any] = {}
    for key, value in obj.attrs.items():
        if isinstance(value, bytes):
            value = value.decode("utf-8")
        if isinstance(value, str) and value[:1] in "[{" or value == "null":
            with contextlib.suppress(ValueError):
                value = json.loads(value)
        elif hasattr(value, "item") and getattr(value, "shape", None) == ():
            value = value.item()
        out[key] = value
    return out


def h5_open(path: str | os.PathLike, kind: str, mode: str = "r"):
    """Open an mlgraph HDF5 artifact of ``kind`` and check its schema tag."""
    import h5py

    p = Path(path)
    if not p.is_file():
        raise input_error(p, "no such file", f"make one with `{maker(kind)}`")
    try:
        f = h5py.File(p, mode)
    except OSError:
        raise SchemaError(
            f"{p}: not an HDF5 file (expected a {kind} file, {schema_tag(kind)}; make one with `{maker(kind)}`)"
        ) from None
    found = f.attrs.get("schema")
    if isinstance(found, bytes):
        found = found.decode()
    try:
        check_schema(p, found, kind)
    except SchemaError:
        f.close()
        raise
    return f


def h5_write_strings(group: Any, name: str, values: Sequence[str]) -> None:
    import h5py
    import numpy as np

    group.create_dataset(name, data=np.array(list(values), dtype=object), dtype=h5py.string_dtype("utf-8"))


def h5_read_strings(dset: Any) -> list[str]:
    return [str(v) for v in dset.asstr()[:]]
