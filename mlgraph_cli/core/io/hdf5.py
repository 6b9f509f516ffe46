"""HDF5 artifacts (features, embeddings): the signature, opening with a schema check, attributes
stored as JSON text, UTF-8 string datasets, and the checks every reader makes of a dataset
(:func:`h5_dataset`, :func:`h5_strings`, :func:`check_finite`): a dataset and not a group, the
dtype the artifact stores, the axes and rows that agree with the rest of the file, finite values.
Each failure is one line naming the file, the dataset and the command that remakes the file.
h5py is imported at the top: ``mlgraph --help`` never imports this module (tests/test_imports.py)."""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any, Sequence

import h5py
import numpy as np

from mlgraph_cli.core.io.artifacts import _jsonable, check_schema, maker, schema_tag
from mlgraph_cli.core.io.inputs import check_input_file, special_file
from mlgraph_cli.errors import InputError, SchemaError, input_error

# dtype kinds an artifact's numeric datasets may have, by what they hold
FLOATS = "f"
NUMBERS = "fiu"  # labels may be stored as small ints or as floats
KIND_NAMES = {"f": "floating-point numbers", "i": "integers", "u": "integers", "b": "true/false values",
              "c": "complex numbers", "S": "strings", "O": "strings", "U": "strings", "V": "records"}


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
        if isinstance(value, str) and (value[:1] in "[{" or value == "null"):
            with contextlib.suppress(ValueError, RecursionError):  # not our JSON: kept as the text it is
                value = json.loads(value)
        elif hasattr(value, "item") and getattr(value, "shape", None) == ():
            value = value.item()
        out[key] = value
    return out


def h5_open(path: str | os.PathLike, kind: str, mode: str = "r"):
    """Open an mlgraph HDF5 artifact of ``kind`` and check its schema tag."""
    p = check_input_file(path, fix=f"make one with `{maker(kind)}`")  # a FIFO would block the open
    try:
        f = h5py.File(p, mode)
    except OSError:
        raise SchemaError(
            f"{p}: not an HDF5 file (expected a {kind} file, {schema_tag(kind)}; make one with `{maker(kind)}`)"
        ) from None
    found = f.attrs.get("schema")
    if isinstance(found, bytes):
        found = found.decode("utf-8", "replace")
    if not isinstance(found, str):
        found = None
    try:
        check_schema(p, found, kind)
    except SchemaError:
        f.close()
        raise
    return f


def h5_write_strings(group: Any, name: str, values: Sequence[str]) -> None:
    group.create_dataset(name, data=np.array(list(values), dtype=object), dtype=h5py.string_dtype("utf-8"))


def h5_read_strings(dset: Any) -> list[str]:
    return [str(v) for v in dset.asstr()[:]]


def _lookup(f: Any, name: str, path: str | os.PathLike, fix: str, required: bool) -> Any:
    """``f[name]`` when it is a dataset; None when absent and not ``required``; else one line."""
    if name not in f:
        if required:
            raise input_error(path, f"no `{name}` dataset", fix)
        return None
    ds = f.get(name)
    if not isinstance(ds, h5py.Dataset):
        raise input_error(path, f"`{name}` is a group, not a dataset", fix)
    return ds


def h5_has_dataset(path: str | os.PathLike, name: str) -> bool:
    """Whether the HDF5 file at ``path`` holds a dataset ``name``; False when it is not a regular
    file or cannot be read (its reader then says why)."""
    if special_file(path) is not None:  # a FIFO would block the open
        return False
    try:
        with h5py.File(path, "r") as f:
            return isinstance(f.get(name), h5py.Dataset)
    except (OSError, ValueError):
        return False


def h5_dataset(f: Any, name: str, path: str | os.PathLike, *, kinds: str, fix: str, ndim: int | None = None,
               rows: int | None = None, required: bool = True) -> Any:
    """``f[name]`` checked: a dataset (not a group), of a dtype kind in ``kinds`` (numpy's letters:
    :data:`FLOATS`, :data:`NUMBERS`), with ``ndim`` axes and ``rows`` entries along the first.
    None when absent and not ``required``; any other failure is one line naming ``name``."""
    ds = _lookup(f, name, path, fix, required)
    if ds is None:
        return None
    kind = ds.dtype.kind
    if h5py.check_string_dtype(ds.dtype) is not None or kind not in kinds:
        found = "strings" if h5py.check_string_dtype(ds.dtype) is not None else KIND_NAMES.get(kind, str(ds.dtype))
        want = " or ".join(dict.fromkeys(KIND_NAMES[k] for k in kinds))
        raise input_error(path, f"`{name}` holds {found}, not {want}", fix)
    _check_shape(ds, name, path, fix, ndim, rows)
    return ds


def h5_strings(f: Any, name: str, path: str | os.PathLike, *, fix: str, rows: int | None = None,
               required: bool = True) -> list[str] | None:
    """``f[name]`` as a list of text: a 1-D dataset of strings (UTF-8), ``rows`` long."""
    ds = _lookup(f, name, path, fix, required)
    if ds is None:
        return None
    if h5py.check_string_dtype(ds.dtype) is None:
        raise input_error(path, f"`{name}` holds {KIND_NAMES.get(ds.dtype.kind, str(ds.dtype))}, not strings", fix)
    _check_shape(ds, name, path, fix, 1, rows)
    try:
        return h5_read_strings(ds)
    except UnicodeDecodeError:
        raise input_error(path, f"`{name}` holds text that is not UTF-8", fix) from None


def _check_shape(ds: Any, name: str, path: str | os.PathLike, fix: str, ndim: int | None, rows: int | None) -> None:
    if ndim is not None and ds.ndim != ndim:
        raise input_error(path, f"`{name}` has shape {ds.shape}, not {ndim} axes", fix)
    if rows is not None and (ds.ndim == 0 or ds.shape[0] != rows):
        found = ds.shape[0] if ds.ndim else "no"
        raise input_error(path, f"`{name}` has {found} rows for {rows} entries of the file (the datasets disagree)",
                          fix)


def check_finite(values: Any, name: str, path: str | os.PathLike, fix: str) -> None:
    """Refuse NaN and infinities in a numeric array read from ``path``'s ``name``."""
    bad = ~np.isfinite(values)
    if bad.any():
        first = np.argwhere(bad)[0].tolist()
        raise InputError(f"{os.fspath(path)}: `{name}` holds NaN or infinite values (at {first}; {fix})")
