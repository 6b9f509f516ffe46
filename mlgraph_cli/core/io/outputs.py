"""The one way an output is written: :func:`write_output` (and :func:`write_text`,
:func:`write_json` on top of it), which every command's files go through.

- Never over an input: :func:`check_output_not_input` compares an output with the command's
  inputs (the files named on the command line and those read without being named: a run's
  config.json and weights, a list file, a vocabulary) after resolving symlinks and ``..`` (and,
  for files that exist, by inode, so hard links count), before anything is written.
- Never replacing what is not a regular file: :func:`output_target` follows links to the file
  they name; a character device or a FIFO is a stream the bytes are written into; anything else
  (a block device, a socket) is refused.
- Never half a file: the content goes to a temporary name beside the destination and is renamed
  into place, with the mode a plain ``open()`` would give (0666 less the umask).
- One writer at a time: :class:`WriteLock`, an advisory lock on ``.<name>.lock`` beside the
  output (a run folder's lock is beside the folder). Why a lock file of our own rather than
  HDF5's file locking: HDF5 only locks while the file is open, reports a held lock as the same
  ``OSError`` as a damaged file, and is switched off by ``HDF5_USE_FILE_LOCKING=FALSE`` on many
  clusters. ``fcntl.flock`` on a separate file is released by the kernel when the process dies
  (even by ``kill -9``, so a lock never goes stale), and the PID written into the file lets the
  message say who holds it. Where ``fcntl`` does not exist (Windows) no lock is taken.

Writers that build a resumable file of their own (``extract``, ``import-yt8m``, ``merge``) use the
same pieces: :func:`check_output` first, then :class:`WriteLock` on the target it returns.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import stat
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

from mlgraph_cli.core.io.inputs import special_kind
from mlgraph_cli.errors import MlgraphError


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
    kind = special_kind(st.st_mode)
    if stream_ok and (stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode)):
        return dest, True
    fix = "pass the name of a file to write" if not stream_ok else "pass a file name, or a pipe or /dev/stdout"
    raise MlgraphError(f"{os.fspath(dest)}: is {kind}, not a regular file, and would be replaced by this output "
                       f"({fix} with -o)")


def check_output(path: str | os.PathLike, inputs: Iterable[str | os.PathLike | None] = (), *, flag: str = "-o",
                 stream_ok: bool = True) -> tuple[Path, bool]:
    """What :func:`write_output` checks before it writes, for a stage to call before its work:
    ``path`` is none of ``inputs`` and can be written without replacing what is not a regular file.
    Returns :func:`output_target`'s ``(path, is_stream)``."""
    check_output_not_input(path, inputs, flag=flag)
    return output_target(path, stream_ok=stream_ok)


@contextlib.contextmanager
def write_output(path: str | os.PathLike, inputs: Iterable[str | os.PathLike | None] = (), *, flag: str = "-o",
                 stream_ok: bool = True) -> Iterator[Path]:
    """The one way an output file is written: yield a temporary path for its content, and put it in
    place if the block succeeds.

    Before anything is written: ``path`` is refused when it is one of ``inputs`` (by inode, through
    links: :func:`check_output_not_input`) or something that a rename would replace (a folder, a
    block device, a socket: :func:`output_target`). A regular (or new) file is then locked
    (:class:`WriteLock`, so two mlgraph processes never write one file), written under a temporary
    name beside it and renamed over it, so a reader never sees half a file. A stream (a character
    device, a FIFO) gets the bytes written into it once they are complete, and is never replaced
    (``stream_ok`` False refuses it). The file gets the mode a plain ``open()`` would give (0666 less
    the umask), whatever the library that wrote it chose. On any exception (KeyboardInterrupt
    included) the temporary file is removed and the destination is left as it was.
    """
    dest, stream = check_output(path, inputs, flag=flag, stream_ok=stream_ok)
    lock = None
    try:
        if stream:  # a temporary file in the system's temporary folder, never in /dev
            fd, tmp = tempfile.mkstemp(prefix=".mlgraph-", suffix=".tmp")
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            lock = WriteLock(dest)
            fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    except OSError as exc:
        if lock is not None:
            lock.release()
        raise os_error_for(exc, dest) from None
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if stream:
            with open(tmp_path, "rb") as src, open(dest, "wb") as sink:
                shutil.copyfileobj(src, sink)
            tmp_path.unlink()
            return
        if dest.is_dir():
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), os.fspath(dest))
        # mkstemp creates 0600, and some writers (safetensors) make the file anew: set the mode last.
        os.chmod(tmp_path, 0o666 & ~current_umask())
        os.replace(tmp_path, dest)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        if isinstance(exc, OSError):
            raise os_error_for(exc, dest) from None
        raise
    finally:
        if lock is not None:
            lock.release()


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


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


def write_text(path: str | os.PathLike, text: str, inputs: Iterable[str | os.PathLike | None] = (), *,
               flag: str = "-o") -> None:
    """Write ``text`` (UTF-8) through :func:`write_output`; ``-`` writes to stdout."""
    if os.fspath(path) == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    with write_output(path, inputs, flag=flag) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, data: Any, inputs: Iterable[str | os.PathLike | None] = (), *,
               flag: str = "-o") -> None:
    write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n", inputs, flag=flag)


def same_path(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether ``a`` and ``b`` name the same file (symlinks, ``..`` and hard links followed)."""
    pa, pb = Path(a), Path(b)
    try:
        if pa.exists() and pb.exists():
            return os.path.samefile(pa, pb)
    except OSError:
        pass
    return pa.resolve() == pb.resolve()


def check_output_not_input(output: str | os.PathLike, inputs: Iterable[str | os.PathLike | None], *,
                           flag: str = "-o") -> None:
    """Raise a one-line :class:`MlgraphError` when ``output`` is one of ``inputs``.

    ``inputs`` may hold None (an input not given) and ``-`` (stdin); both are skipped, as is an
    ``output`` of ``-`` (stdout).
    """
    if os.fspath(output) == "-":
        return
    for source in inputs:
        if source is None or os.fspath(source) == "-":
            continue
        if same_path(output, source):
            raise MlgraphError(f"{os.fspath(output)}: is also an input of this command ({os.fspath(source)}), and "
                               f"writing it would destroy that input (pass another file name to {flag})")


def lock_path(dest: str | os.PathLike) -> Path:
    d = Path(dest)
    return d.with_name(f".{d.name}.lock")


class WriteLock:
    """Hold the lock of ``dest`` until :meth:`release`; another holder is a one-line error."""

    def __init__(self, dest: str | os.PathLike, what: str = "file") -> None:
        self.dest = Path(dest)
        self.path = lock_path(dest)
        self._fd: int | None = None
        try:
            # lazy: POSIX only; without it the lock is skipped (ImportError below)
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            return
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            except OSError as exc:  # read-only folder, permission: say so of the output, not of the lock
                raise OSError(exc.errno, exc.strerror, os.fspath(self.dest)) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                holder = _read_pid(fd)
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    who = f" (process {holder})" if holder else ""
                    raise MlgraphError(f"{self.dest}: another mlgraph is writing this {what}{who}; wait for it to "
                                       f"finish, or write to another {what} with -o") from None
                raise
            # The holder before us may have removed the file between our open and our lock.
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        """Remove the lock file and let go (the file is removed first, while still held)."""
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self._fd)
            self._fd = None


def _read_pid(fd: int) -> str:
    try:
        return os.pread(fd, 32, 0).decode().strip()
    except (OSError, UnicodeDecodeError):
        return ""
