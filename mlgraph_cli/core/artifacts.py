"""What every artifact carries, and how it is written safely.

Each file mlgraph writes says what it is (a schema tag such as ``mlgraph/graph@1``), which
mlgraph version and command made it, and with which parameters. Readers check the tag and name
the command that makes the right file when it is wrong. Writes go to a temporary name in the
destination folder and are renamed into place, so an interrupted run never leaves a half file
under the real name.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import hashlib
import json
import os
import shutil
import stat
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator, Sequence

from mlgraph_cli import __version__
from mlgraph_cli.errors import MlgraphError, SchemaError, input_error

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


def output_target(path: str | os.PathLike, *, stream_ok: bool = True) -> tuple[Path, bool]:
    """Where an output really goes: ``(path, is_stream)``.

    A regular file reached through symbolic links is written where the links end (the links stay
    links). A character device or a FIFO (``/dev/stdout``, ``/dev/null``, a named pipe, a link
    to ``/proc/self/fd/1``) is a stream: the bytes are written into it, since renaming a file onto
    it would replace the device node or the pipe with a plain file and deliver nothing. A stream
    is refused where the artifact must be a file (``stream_ok`` False: an HDF5 file that is
    resumed or read back), and so is anything else that is not a regular file (a block device, a
    socket), whatever the command.
    """
    dest = Path(path)
    try:
        st = os.stat(dest)  # follows links
    except FileNotFoundError:
        # Nothing there yet; a dangling link is written where it points.
        return (Path(os.path.realpath(dest)) if dest.is_symlink() else dest), False
    except OSError as exc:
        raise os_error_for(exc, dest) from None
    if stat.S_ISREG(st.st_mode):
        return Path(os.path.realpath(dest)), False
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), os.fspath(dest))
    kind = _special_kind(st.st_mode)
    if stream_ok and (stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode)):
        return dest, True
    fix = "pass the name of a file to write" if not stream_ok else "pass a file name, or a pipe or /dev/stdout"
    raise MlgraphError(f"{os.fspath(dest)}: is {kind}, not a regular file, and would be replaced by this output "
                       f"({fix} with -o)")


def _special_kind(mode: int) -> str:
    for test, name in ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "a special file"


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path for ``path``'s content; put it in place if the block succeeds.

    A regular (or new) file is replaced by a rename of the temporary file beside it, so a reader
    never sees half a file. A stream (a character device, a FIFO: :func:`output_target`) gets
    the bytes written into it once they are complete, and is never replaced. On any exception
    (KeyboardInterrupt included) the temporary file is removed and the destination is left as it
    was.
    """
    dest, stream = output_target(path)
    try:
        if stream:  # a temporary file in the system's temporary folder, never in /dev
            fd, tmp = tempfile.mkstemp(prefix=".mlgraph-", suffix=".tmp")
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    except OSError as exc:
        raise os_error_for(exc, dest) from None
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates 0600; give the artifact the mode a plain open() would (0666 less the umask).
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp_path, 0o666 & ~umask)
        yield tmp_path
        if stream:
            with open(tmp_path, "rb") as src, open(dest, "wb") as sink:
                shutil.copyfileobj(src, sink)
            tmp_path.unlink()
            return
        if dest.is_dir():
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), os.fspath(dest))
        os.replace(tmp_path, dest)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        if isinstance(exc, OSError):
            raise os_error_for(exc, dest) from None
        raise


def os_error_for(exc: OSError, dest: Path) -> OSError:
    """``exc`` told of ``dest`` when it is about ``dest`` or its temporary file (a name the user
    never sees); an error about another file (an input, a folder on the way) is left as it is.
    h5py puts the file name and the system's message inside its own text: they are taken from there."""
    if exc.errno is None:
        return exc
    text = str(exc.strerror or "")
    named = exc.filename
    if named is None and "name = '" in text:
        named = text.split("name = '", 1)[1].split("'", 1)[0]
    if named is not None and os.fspath(named) != os.fspath(dest):
        p = Path(os.fspath(named))
        if not (p.parent == dest.parent and p.name.startswith(f".{dest.name}.") and p.name.endswith(".tmp")):
            return exc
    if "error message = '" in text:
        text = text.split("error message = '", 1)[1].split("'", 1)[0]
    return OSError(exc.errno, text or os.strerror(exc.errno), os.fspath(dest))


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically; ``-`` writes to stdout."""
    if os.fspath(path) == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def read_json(path: str | os.PathLike, *, fix: str | None = None) -> Any:
    """Parse a JSON file; missing, empty or malformed files become one-line input errors."""
    p = Path(path)
    if not p.is_file():
        raise input_error(p, "no such file", fix)
    text = p.read_text(encoding="utf-8", errors="replace")
    if not text.strip():
        raise input_error(p, "the file is empty", fix)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise input_error(p, f"malformed JSON: {exc.msg}", fix, line=exc.lineno) from None


# ---------------------------------------------------------------------------------------------
# HDF5 helpers (h5py is imported lazily so the CLI starts fast)

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
