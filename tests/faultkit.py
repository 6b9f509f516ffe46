"""Helpers for the issue-17 tests (test_reliability_second.py, test_fuzz_artifacts.py).

Everything here goes through the command line or the file formats, never through the package's
internal modules: a tiny valid project made with ``mlgraph`` itself, a subprocess runner with a
timeout (so a hang fails a test instead of blocking the suite), a copy of a run folder, and
YouTube-8M TFRecords written by hand from the protobuf wire format (docs/video.md).
"""

from __future__ import annotations

import os
import shutil
import signal
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import trainkit

REPO = Path(__file__).resolve().parents[1]
EXTRACT = ["--backbone", "resnet18", "--weights", "none", "--image-size", "64", "--workers", "0", "--device", "cpu"]
TRAIN = ["--epochs", "1", "--batch-size", "4", "--device", "cpu", "--val-fraction", "0"]


def invoke(*args):
    """``mlgraph ARGS`` in process (as the conftest ``cli`` fixture, usable from module fixtures)."""
    from typer.testing import CliRunner

    from mlgraph_cli.cli.app import app

    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "100", "TERMINAL_WIDTH": "100"})


def ok(*args):
    result = invoke(*args)
    assert result.exit_code == 0, (args, result.output)
    return result


def build_project(root: Path, *, categories: dict[str, str] | None = None) -> dict[str, Path]:
    """8 tiny images with COCO labels, their graph, embeddings, features and a 1-epoch run.

    ``categories`` renames label names of the COCO file first (e.g. to a formula-looking label)."""
    import json

    root.mkdir(parents=True, exist_ok=True)
    ann = trainkit.make_images(root / "images", 8, seed=0)
    if categories:
        coco = json.loads(ann.read_text())
        for cat in coco["categories"]:
            cat["name"] = categories.get(cat["name"], cat["name"])
        ann.write_text(json.dumps(coco))
    p = {"root": root, "images": root / "images", "annotations": ann, "graph": root / "graph.json",
         "embeddings": root / "emb.h5", "features": root / "f.h5", "run": root / "run"}
    ok("build-graph", ann, "-o", p["graph"], "-q")
    ok("embed", p["graph"], "-o", p["embeddings"], "--dim", "8", "--steps", "50", "-q")
    ok("extract", p["images"], "-a", ann, "-o", p["features"], *EXTRACT, "-q")
    ok("train", "--features", p["features"], "--embeddings", p["embeddings"], "-o", p["run"], *TRAIN,
       "--probe-epochs", "2", "-q")
    return p


def copy_run(src: Path, dst: Path) -> Path:
    """A copy of a run folder; the 43 MB random backbone is hard-linked instead of copied."""
    def copy(a, b):
        if Path(a).name == "backbone.safetensors":
            os.link(a, b)
        else:
            shutil.copy2(a, b)

    shutil.copytree(src, dst, copy_function=copy)
    return dst


# ---------------------------------------------------------------------------------------------
# Processes

@dataclass
class Ran:
    """A finished (or killed) ``python -m mlgraph_cli`` process."""

    args: list
    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool

    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


def env(**extra: str) -> dict[str, str]:
    out = dict(os.environ, MLGRAPH_OFFLINE="1", MLGRAPH_PROGRESS="0", COLUMNS="100", TERMINAL_WIDTH="100")
    out["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
    out.update(extra)
    return out


def start(*args, cwd: Path | None = None, **popen) -> subprocess.Popen:
    """Start ``mlgraph ARGS`` in its own process group (so a hung one can be killed whole)."""
    return subprocess.Popen([sys.executable, "-m", "mlgraph_cli", *map(str, args)], cwd=cwd, env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace",
                            start_new_session=True, **popen)


def finish(proc: subprocess.Popen, timeout: float) -> Ran:
    """Wait up to ``timeout`` s; a process still running then is killed and reported as timed out."""
    try:
        out, err = proc.communicate(timeout=max(timeout, 0.1))
        return Ran(proc.args, proc.returncode, out, err, False)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = proc.communicate()
        return Ran(proc.args, None, out, err, True)


def first_line(proc: subprocess.Popen, timeout: float) -> str | None:
    """The first non-empty stderr line of ``proc`` within ``timeout`` s (None: none came, or it ended)."""
    import select
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stderr], [], [], max(deadline - time.monotonic(), 0))
        if not ready:
            return None
        line = proc.stderr.readline()
        if not line:
            return None  # the process ended
        if line.strip():
            return line
    return None


def mlgraph(*args, cwd: Path | None = None, timeout: float = 60) -> Ran:
    return finish(start(*args, cwd=cwd), timeout)


def stop_after_first_epoch(run: Path, features: Path, embeddings: Path, epochs: int = 40) -> Path:
    """A run stopped by SIGTERM (a batch scheduler) after its first epoch: resumable."""
    proc = start("train", "--features", features, "--embeddings", embeddings, "-o", run, "--epochs", epochs,
                 "--batch-size", "4", "--device", "cpu", "--val-fraction", "0", "--probe-epochs", "0")
    for line in proc.stderr:
        if line.startswith("epoch 1/"):
            proc.send_signal(signal.SIGTERM)
            break
    ran = finish(proc, 300)  # a bound on a hang, not a time: a loaded machine may take long to stop
    assert ran.returncode == 130, (ran.returncode, ran.stderr[-2000:])
    assert (run / "resume.pt").is_file()
    return run


# ---------------------------------------------------------------------------------------------
# YouTube-8M TFRecords, by hand (tf.train.Example / SequenceExample wire format, TFRecord framing)

def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # int64 two's complement, as protobuf writes negative int64
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _feature(value) -> bytes:
    if isinstance(value, bytes):
        return _field(1, _field(1, value))  # bytes_list
    arr = np.asarray(value)
    if arr.dtype.kind == "f":
        return _field(2, _field(1, arr.astype("<f4").tobytes()))  # float_list, packed
    return _field(3, _field(1, b"".join(_varint(int(v)) for v in arr)))  # int64_list, packed


def _features(entries: dict) -> bytes:
    return b"".join(_field(1, _field(1, k.encode()) + _field(2, _feature(v))) for k, v in entries.items())


def video_example(vid: str, labels, *, seed: int = 0) -> bytes:
    """A video-level record: id, labels, mean_rgb (1024), mean_audio (128)."""
    rng = np.random.default_rng(seed)
    return _field(1, _features({"id": vid.encode(), "labels": np.asarray(labels, np.int64),
                                "mean_rgb": rng.normal(size=1024).astype(np.float32),
                                "mean_audio": rng.normal(size=128).astype(np.float32)}))


def frame_example(vid: str, labels, frames: int, *, seed: int = 0) -> bytes:
    """A frame-level record: context id, labels; feature lists rgb (1024 B) and audio (128 B) per frame."""
    rng = np.random.default_rng(seed)
    context = _features({"id": vid.encode(), "labels": np.asarray(labels, np.int64)})
    lists = b""
    for key, width in (("rgb", 1024), ("audio", 128)):
        steps = b"".join(_field(1, _feature(rng.integers(0, 256, width, dtype=np.uint8).tobytes()))
                         for _ in range(frames))
        lists += _field(1, _field(1, key.encode()) + _field(2, steps))
    return _field(1, context) + _field(2, lists)


def masked_crc(data: bytes) -> int:
    import google_crc32c

    crc = google_crc32c.value(bytes(data))
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def frame(data: bytes) -> bytes:
    """One record with its TFRecord framing: length, masked CRC32C of the length, data, masked CRC32C."""
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", masked_crc(length)) + data + struct.pack("<I", masked_crc(data))


def header_claiming(length: int) -> bytes:
    """A record header whose (valid-checksum) length field claims ``length`` bytes."""
    raw = struct.pack("<Q", length)
    return raw + struct.pack("<I", masked_crc(raw))


def write_records(path: Path, records) -> Path:
    path.write_bytes(b"".join(frame(r) for r in records))
    return path


# ---------------------------------------------------------------------------------------------
# Faults

def fake_os(monkeypatch, root: Path, code: int) -> None:
    """Every write under ``root`` fails with ``code`` (as tests/test_os_errors.py simulates a full
    disk): creating or opening a file for writing, making a folder."""
    import builtins
    import errno

    real_open, real_os_open, real_mkdir = builtins.open, os.open, os.mkdir

    def under(path) -> bool:
        try:
            return Path(os.fspath(path)).resolve().is_relative_to(root.resolve())
        except TypeError:  # a file descriptor
            return False

    def refuse(path):
        raise OSError(code, os.strerror(code), os.fspath(path))

    def fake_open(file, mode="r", *args, **kwargs):
        if under(file) and any(c in mode for c in "wax+"):
            refuse(file)
        return real_open(file, mode, *args, **kwargs)

    def fake_os_open(path, flags, *args, **kwargs):
        if under(path) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            refuse(path)
        return real_os_open(path, flags, *args, **kwargs)

    def fake_mkdir(path, *args, **kwargs):
        if under(path):
            if os.path.exists(path):
                raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), os.fspath(path))
            refuse(path)
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(os, "open", fake_os_open)
    monkeypatch.setattr(os, "mkdir", fake_mkdir)


def user_namespaces() -> bool:
    """Whether this machine lets an unprivileged process mount a tmpfs in its own namespace."""
    if shutil.which("unshare") is None:
        return False
    try:
        return subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "true"], capture_output=True,
                              timeout=20, check=False).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False
