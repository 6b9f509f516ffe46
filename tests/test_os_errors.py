"""Every writing command turns an operating-system failure into one line (exit 1, the path, a fix)
and leaves no half-written file: a folder in the way, a file where a folder should be, a
read-only file system, a full disk, permission denied (the last three simulated: tests run as
root, and a real read-only mount needs privileges a test does not have)."""

from __future__ import annotations

import builtins
import errno
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

import trainkit
from conftest import one_line_error

EXTRACT = ["--backbone", "resnet18", "--weights", "none", "--image-size", "64", "--workers", "0", "--device", "cpu"]


def _run(*args):
    from mlgraph_cli.cli.app import app

    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "100", "TERMINAL_WIDTH": "100"})


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A trained tiny project: annotations, graph, embeddings, features, a run."""
    root = tmp_path_factory.mktemp("project")
    trainkit.make_images(root / "images", 8, seed=0)
    steps = [
        ("build-graph", root / "images.json", "-o", root / "graph.json"),
        ("embed", root / "graph.json", "-o", root / "emb.h5", "--dim", "8"),
        ("extract", root / "images", "-a", root / "images.json", "-o", root / "f.h5", *EXTRACT),
        ("train", "--features", root / "f.h5", "--embeddings", root / "emb.h5", "-o", root / "run", "--epochs", "1",
         "--batch-size", "4", "--device", "cpu", "--val-fraction", "0"),
    ]
    for args in steps:
        result = _run(*args)
        assert result.exit_code == 0, (args, result.output)
    return root


def command(name: str, project: Path, out: Path) -> list:
    """The arguments of one writing command whose output is ``out``."""
    p = project
    return {
        "build-graph": ["build-graph", p / "images.json", "-o", out],
        "embed": ["embed", p / "graph.json", "-o", out, "--dim", "8"],
        "extract": ["extract", p / "images", "-o", out, *EXTRACT],
        "train": ["train", "--features", p / "f.h5", "--embeddings", p / "emb.h5", "-o", out, "--epochs", "1",
                  "--device", "cpu", "--val-fraction", "0"],
        "evaluate": ["evaluate", p / "run", "--features", p / "f.h5", "-o", out, "--device", "cpu"],
        "predict": ["predict", p / "images", "--model", p / "run", "--format", "csv", "-o", out, "--device", "cpu"],
        "make-dataset": ["make-dataset", "fashion-scenes", out, "--train", "4", "--val", "0", "--test", "0",
                         "--size", "64"],
        "init": ["init", out],  # no dataset paths: their "no such file" warnings would add lines
    }[name]


COMMANDS = ["build-graph", "embed", "extract", "train", "evaluate", "predict", "make-dataset", "init"]
FILE_OUTPUTS = ["build-graph", "embed", "extract", "evaluate", "predict"]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp") or ".partial" in p.name)


@pytest.mark.parametrize("name", COMMANDS)
def test_a_file_where_a_folder_should_be(project, tmp_path, name):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder\n")
    line = one_line_error(_run(*command(name, project, blocker / "out" / "x.json")))
    assert str(blocker) in line and "Traceback" not in line
    assert "a file, not a folder" in line or "in the way" in line
    assert blocker.read_text() == "a file, not a folder\n"


@pytest.mark.parametrize("name", FILE_OUTPUTS)
def test_output_is_a_folder(project, tmp_path, name):
    folder = tmp_path / "out.json"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine\n")
    line = one_line_error(_run(*command(name, project, folder)))
    assert line.startswith(f"Error: {folder}:") and "folder" in line.split(":", 2)[2]
    assert (folder / "keep.txt").read_text() == "mine\n" and leftovers(tmp_path) == []


def fake_os(monkeypatch, root: Path, code: int) -> None:
    """Make every write under ``root`` fail with ``code``, as a read-only mount, a full disk or a
    folder without write permission would (creating a file or folder; opening one for writing)."""
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


FIXES = {errno.EROFS: "read-only", errno.ENOSPC: "the disk is full", errno.EACCES: "write somewhere you may"}


@pytest.mark.parametrize("name", COMMANDS)
@pytest.mark.parametrize("code", [errno.EROFS, errno.ENOSPC, errno.EACCES], ids=["erofs", "enospc", "eacces"])
def test_read_only_full_or_forbidden(project, tmp_path, monkeypatch, name, code):
    locked = tmp_path / "locked"
    locked.mkdir()
    args = command(name, project, locked / ("out" if name in ("train", "make-dataset", "init") else "out.json"))
    fake_os(monkeypatch, locked, code)
    line = one_line_error(_run(*args))
    monkeypatch.undo()
    assert str(locked) in line and FIXES[code] in line, line
    assert list(locked.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# Outputs that are not regular files: written into (a stream), or refused; never replaced

TEXT_OUTPUTS = ["build-graph", "evaluate", "predict"]  # each writes one artifact a pipe can take
RESUMABLE = ["extract"]  # a file that is resumed and read back: never a stream


def _is_char_device(path: str) -> bool:
    import stat

    return stat.S_ISCHR(os.stat(path).st_mode)


@pytest.mark.parametrize("name", TEXT_OUTPUTS + ["embed"])
def test_output_linked_to_dev_null_is_written_into_and_stays_a_device(project, tmp_path, name):
    link = tmp_path / "out.json"
    link.symlink_to("/dev/null")
    result = _run(*command(name, project, link))
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and _is_char_device("/dev/null") and leftovers(tmp_path) == []


@pytest.mark.parametrize("name", TEXT_OUTPUTS)
def test_output_linked_to_dev_full_is_one_line_and_the_device_stays(project, tmp_path, name):
    link = tmp_path / "out.json"
    link.symlink_to("/dev/full")
    line = one_line_error(_run(*command(name, project, link)))
    assert str(link) in line and "No space left on device" in line and "the disk is full" in line, line
    assert _is_char_device("/dev/full") and leftovers(tmp_path) == []


@pytest.mark.parametrize("name", TEXT_OUTPUTS)
def test_output_fifo_gets_the_bytes_and_stays_a_fifo(project, tmp_path, name):
    import stat
    import threading

    fifo = tmp_path / "out.pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    result = _run(*command(name, project, fifo))
    reader.join(timeout=60)
    assert result.exit_code == 0, result.output
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and got and got[0].strip()
    reference = tmp_path / "reference.out"
    assert _run(*command(name, project, reference)).exit_code == 0
    if name != "evaluate":  # evaluate's metrics JSON carries the time it was made
        # the same bytes as a regular file gets, but for the output's own name in the provenance
        assert got[0].replace(str(fifo).encode(), b"OUT") == reference.read_bytes().replace(str(reference).encode(), b"OUT")


@pytest.mark.parametrize("name", RESUMABLE)
@pytest.mark.parametrize("target", ["fifo", "dev-null"])
def test_resumable_outputs_refuse_a_stream(project, tmp_path, name, target):
    import stat

    out = tmp_path / "out.h5"
    if target == "fifo":
        os.mkfifo(out)
    else:
        out.symlink_to("/dev/null")
    line = one_line_error(_run(*command(name, project, out)))
    assert str(out) in line and "not a regular file" in line and "-o" in line, line
    assert (stat.S_ISFIFO(os.lstat(out).st_mode) if target == "fifo" else out.is_symlink())
    assert _is_char_device("/dev/null") and leftovers(tmp_path) == []


def test_output_through_a_symlink_replaces_the_file_not_the_link(project, tmp_path):
    real = tmp_path / "real" / "graph.json"
    real.parent.mkdir()
    real.write_text("old\n")
    link = tmp_path / "graph.json"
    link.symlink_to(real)
    assert _run(*command("build-graph", project, link)).exit_code == 0
    assert link.is_symlink() and '"mlgraph/graph@1"' in real.read_text()
