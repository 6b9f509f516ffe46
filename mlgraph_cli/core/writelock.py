"""One writer per output: an advisory lock on ``.<name>.lock`` beside the file being written.

Why a lock file of our own rather than HDF5's file locking: HDF5 only locks while the file is
open, reports a held lock as the same ``OSError`` as a damaged file (which is how a second
``extract`` came to delete the first one's partial file), and is switched off by
``HDF5_USE_FILE_LOCKING=FALSE`` on many clusters. ``fcntl.flock`` on a separate file is taken
before the partial file is touched, is released by the kernel when the process dies (even by
``kill -9``, so a lock never goes stale), and the PID written into the file lets the message say
who holds it. Where ``fcntl`` does not exist (Windows) no lock is taken.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from mlgraph_cli.errors import MlgraphError


def lock_path(dest: str | os.PathLike) -> Path:
    d = Path(dest)
    return d.with_name(f".{d.name}.lock")


class WriteLock:
    """Hold the lock of ``dest`` until :meth:`release`; another holder is a one-line error."""

    def __init__(self, dest: str | os.PathLike) -> None:
        self.dest = Path(dest)
        self.path = lock_path(dest)
        self._fd: int | None = None
        try:
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
                    raise MlgraphError(f"{self.dest}: another mlgraph is writing this file{who}; wait for it to "
                                       f"finish, or write to another file with -o") from None
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
