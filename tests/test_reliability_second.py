"""Issue 17 ("Nothing lost, second pass"): every case of the issue as a test, written before the fix.

The tests go through the command line (in process with typer's runner, or as ``python -m
mlgraph_cli`` where a hang, a signal, two processes or a deleted working folder is involved) and
through the file formats (artifacts crafted with h5py, json, plain bytes), never through internal
modules, so they survive the package's restructuring. What each test asserts is the issue's "Done
means": a one-line error naming the file (and the fix), exit 1 (or 2 for a flag), or a correct
result; nothing a user has is destroyed; no traceback. A case that fails today carries a strict
xfail naming it: remove the mark when the fix lands (a strict xfail fails once the test passes).
"""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import shutil
import stat
import subprocess
import time
from pathlib import Path

import faultkit
import h5py
import numpy as np
import pytest
from conftest import one_line_error
from faultkit import EXTRACT, TRAIN, copy_run

try:  # Python 3.11+; tomli for 3.10, as the package does
    import tomllib
except ModuleNotFoundError:  # pragma: no cover
    import tomli as tomllib


def issue(short: str):
    return pytest.mark.xfail(strict=True, reason=f"issue 17: {short}")


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A trained tiny project: 8 images, COCO annotations, graph, embeddings, features, a 1-epoch run."""
    return faultkit.build_project(tmp_path_factory.mktemp("project"))


@pytest.fixture
def run(project, tmp_path):
    """A copy of the project's run, free to damage."""
    return copy_run(project["run"], tmp_path / "run")


def flag_error(result, flag: str) -> str:
    """A refused flag: exit 1 with one line, or a usage error (exit 2); the flag named; no traceback."""
    assert result.exit_code in (1, 2), (result.exit_code, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    if result.exit_code == 1:
        assert len(lines) == 1, result.stderr
    assert flag in result.stderr, result.stderr
    return result.stderr


def clean_error(ran: faultkit.Ran, *names) -> str:
    """The subprocess version of ``one_line_error``: exit 1, one line on stderr, no traceback."""
    assert not ran.timed_out, f"hung (killed after the timeout): {ran.args}"
    assert ran.returncode == 1, (ran.returncode, ran.stderr[-3000:])
    lines = ran.error_lines()
    assert len(lines) == 1 and "Traceback" not in ran.stderr, ran.stderr[-3000:]
    for name in names:
        assert str(name) in lines[0], lines[0]
    return lines[0]


def edit_json(path: Path, change) -> Path:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=2))
    return path


def edit_h5(src: Path, dst: Path, change) -> Path:
    shutil.copy(src, dst)
    with h5py.File(dst, "a") as f:
        change(f)
    return dst


def replace(f, name: str, data) -> None:
    del f[name]
    f[name] = data


def digest(path: Path) -> bytes:
    return path.read_bytes()


# =============================================================================================
# Data losses
# ---------------------------------------------------------------------------------------------
# Outputs over inputs: the guard that build-graph, embed and extract have, missing elsewhere


def _yt8m_inputs(tmp: Path) -> tuple[Path, Path]:
    records = faultkit.write_records(tmp / "r.tfrecord", [faultkit.video_example(f"v{i}", [i % 3, 3], seed=i)
                                                         for i in range(6)])
    vocabulary = tmp / "voc.csv"
    vocabulary.write_text("Index,TrainVideoCount,KnowledgeGraphId,Name\n0,9,/m/a,Game\n1,9,/m/b,Car\n"
                          "2,9,/m/c,Music\n3,9,/m/d,Dance\n")
    return records, vocabulary


def _over_input(case: str, p: dict, tmp: Path) -> tuple[list, Path]:
    """(arguments, the input that -o names) of one case."""
    if case in ("evaluate-config-json", "evaluate-best-weights", "predict-config-json"):
        run = copy_run(p["run"], tmp / "run")
        target = run / ("best.safetensors" if case == "evaluate-best-weights" else "config.json")
        if case.startswith("evaluate"):
            return ["evaluate", run, "--features", p["features"], "-o", target, "--device", "cpu", "--no-plots"], target
        return ["predict", p["images"], "--model", run, "-o", target, "--device", "cpu"], target
    if case == "evaluate-features":
        features = shutil.copy(p["features"], tmp / "t.h5")
        return ["evaluate", p["run"], "--features", features, "-o", features, "--device", "cpu", "--no-plots"], Path(features)
    if case == "predict-list-txt":
        listing = tmp / "list.txt"
        listing.write_text("".join(f"{q}\n" for q in sorted(p["images"].glob("*.png"))[:3]))
        return ["predict", listing, "--model", p["run"], "-o", listing, "--device", "cpu"], listing
    if case == "build-graph-classes":
        ann = tmp / "ann.csv"
        ann.write_text("ImageID,Source,LabelName,Confidence\nimg1,verification,/m/07j7r,1\n"
                       "img2,verification,/m/04hgtk,1\nimg2,verification,/m/07j7r,1\n")
        classes = tmp / "c.csv"
        classes.write_text("/m/07j7r,Tree\n/m/04hgtk,Human head\n")
        return ["build-graph", ann, "--classes", classes, "-o", classes], classes
    records, vocabulary = _yt8m_inputs(tmp)
    return {
        "import-yt8m-record": (["import-yt8m", records, "-o", records], records),
        "import-yt8m-vocabulary": (["import-yt8m", records, "--vocabulary", vocabulary, "-o", vocabulary], vocabulary),
        "build-graph-vocabulary": (["build-graph", records, "--vocabulary", vocabulary, "-o", vocabulary], vocabulary),
    }[case]


OVER_INPUT = ["evaluate-config-json", "evaluate-features", "evaluate-best-weights", "predict-config-json",
              "predict-list-txt", "import-yt8m-record", "build-graph-classes", "import-yt8m-vocabulary",
              "build-graph-vocabulary"]


@pytest.mark.parametrize("case", OVER_INPUT)
def test_output_over_an_input_is_refused(cli, project, tmp_path, case):
    """`-o` naming one of the command's inputs: `OUT: is also an input of this command (IN), ...
    (pass another file name to -o)` (docs/reliability.md), and the input keeps its bytes."""
    args, target = _over_input(case, project, tmp_path)
    before = digest(target)
    line = one_line_error(cli(*args))
    assert str(target) in line and "-o" in line, line
    assert digest(target) == before


# ---------------------------------------------------------------------------------------------
# train -o over a folder that is not its own resumable run

TRAIN_FAST = [*TRAIN, "--probe-epochs", "0", "-q"]


def test_train_over_a_run_without_resume_state_is_refused(cli, project, run):
    """A run folder lacking `resume.pt` is still someone's run: without --force, refused (naming the
    folder and --force), and its weights and config stay as they were."""
    (run / "resume.pt").unlink()
    kept = {name: digest(run / name) for name in ("best.safetensors", "config.json", "metrics.jsonl")}
    line = one_line_error(cli("train", "--features", project["features"], "--embeddings", project["embeddings"],
                              "-o", run, *TRAIN_FAST, "--seed", "5"))
    assert str(run) in line and "--force" in line, line
    assert {name: digest(run / name) for name in kept} == kept


def test_train_over_someone_elses_files_is_refused(cli, project, tmp_path):
    """A non-empty folder that is not this command's resumable run is taken without --force."""
    folder = tmp_path / "theirs"
    folder.mkdir()
    (folder / "config.json").write_text('{"mine": 1}\n')
    (folder / "metrics.jsonl").write_text('{"epoch": 1, "note": "mine"}\n')
    line = one_line_error(cli("train", "--features", project["features"], "--embeddings", project["embeddings"],
                              "-o", folder, *TRAIN_FAST))
    assert str(folder) in line and "--force" in line, line
    assert (folder / "config.json").read_text() == '{"mine": 1}\n'
    assert (folder / "metrics.jsonl").read_text() == '{"epoch": 1, "note": "mine"}\n'


def test_two_train_runs_to_one_folder(project, tmp_path):
    """Two `train -o RUN` at once: the second is refused with one line naming RUN (as a second
    `extract` to one output is), and the folder holds the first run's 20 epochs, once each.

    The race is made certain rather than likely: the first run is paused (SIGSTOP) once it has
    chosen the folder and says so on stderr, before its first epoch is saved, and resumed once
    the second has got as far (or has ended)."""
    import signal

    out = tmp_path / "run"
    args = ["train", "--features", project["features"], "--embeddings", project["embeddings"], "-o", out,
            "--epochs", "20", "--batch-size", "4", "--device", "cpu", "--val-fraction", "0", "--probe-epochs", "0"]
    first = faultkit.start(*args, "--seed", "1")
    try:
        assert faultkit.first_line(first, 60) is not None, "the first run printed nothing"
        os.kill(first.pid, signal.SIGSTOP)
        second = faultkit.start(*args, "--seed", "2")
        seen = faultkit.first_line(second, 60) or ""  # read off the pipe here: put back below
    finally:
        os.kill(first.pid, signal.SIGCONT)
    ran = {1: faultkit.finish(first, 120), 2: faultkit.finish(second, 120)}
    ran[2].stderr = seen + ran[2].stderr
    codes = [ran[1].returncode, ran[2].returncode]
    assert codes == [0, 1], (codes, ran[2].stderr[-300:])
    clean_error(ran[2], out)
    epochs = [json.loads(line)["epoch"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert epochs == list(range(1, 21))
    assert json.loads((out / "args.json").read_text())["config"]["seed"] == 1


# ---------------------------------------------------------------------------------------------
# merge onto a full disk

@pytest.fixture(scope="module")
def shards(project, tmp_path_factory):
    """Two shards of 4 images each of the project's extraction (`extract --shard I/2`)."""
    folder = tmp_path_factory.mktemp("shards")
    for i in range(2):
        faultkit.ok("extract", project["images"], "-a", project["annotations"], "-o", folder / "s.h5", *EXTRACT,
                    "--batch-size", "4", "--shard", f"{i}/2", "-q")
    return [folder / "s.shard-0-of-2.h5", folder / "s.shard-1-of-2.h5"]


def test_merge_onto_a_full_disk_simulated(cli, shards, tmp_path, monkeypatch):
    """ENOSPC on every write under the output folder (as tests/test_os_errors.py simulates it)."""
    locked = tmp_path / "locked"
    locked.mkdir()
    faultkit.fake_os(monkeypatch, locked, errno.ENOSPC)
    result = cli("merge", *shards, "-o", locked / "m.h5")
    monkeypatch.undo()
    line = one_line_error(result)
    assert str(locked) in line and "the disk is full" in line, line
    assert list(locked.iterdir()) == []


@pytest.mark.skipif(not faultkit.user_namespaces(), reason="needs unshare (a user namespace) for a small tmpfs")
def test_merge_when_the_disk_fills_midway(shards, tmp_path):
    """A real full disk: a 64 KB tmpfs (in a user namespace) that the ~300 KB merged file outgrows.
    One line naming the output and the fix (exit 1), and no lock or temporary file left behind."""
    disk = tmp_path / "disk"
    disk.mkdir()
    out = disk / "m.h5"
    import shlex
    import sys

    merge = " ".join(shlex.quote(str(a)) for a in [sys.executable, "-m", "mlgraph_cli", "merge", *shards, "-o", out])
    report_file = tmp_path / "report.txt"  # outside the tmpfs, which is gone with the namespace
    q = shlex.quote
    script = (f"mount -t tmpfs -o size=64k tmpfs {q(str(disk))} || exit 99; {merge} >/dev/null; "
              f"echo RC=$? > {q(str(report_file))}; ls -A {q(str(disk))} >> {q(str(report_file))}")
    proc = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script],
                          env=faultkit.env(), capture_output=True, text=True, timeout=120, check=False)
    report = report_file.read_text().split() if report_file.exists() else []
    assert report and report[0].startswith("RC="), (proc.returncode, proc.stderr[-2000:])
    ran = faultkit.Ran([merge], int(report[0][3:]), "", proc.stderr, False)
    line = clean_error(ran, out)
    assert "the disk is full" in line, line
    assert report[1:] == [], f"left on the disk: {report[1:]}"


# ---------------------------------------------------------------------------------------------
# FIFOs: inside input folders and lists (hangs today), as inputs, and as outputs. All in
# subprocesses started together with a 60 s timeout, so a hang costs one minute, not one each.

PREDICT = ["--device", "cpu", "--format", "jsonl"]


@pytest.fixture(scope="module")
def fifo_procs(project, shards, tmp_path_factory):
    """The FIFO cases, started together (see ``start_fifo_cases_early``); killed at the end if hung."""
    root = tmp_path_factory.mktemp("fifos")
    folder = root / "photos"
    folder.mkdir()
    for q in sorted(project["images"].glob("*.png"))[:3]:
        shutil.copy(q, folder / q.name)
    os.mkfifo(folder / "pipe.png")
    listing = root / "list.txt"
    listing.write_text("".join(f"{folder / n}\n" for n in ("scene000.png", "pipe.png", "scene001.png", "scene002.png")))
    for name in ("fifo.h5", "out-yt8m.h5", "out-merge.h5"):
        os.mkfifo(root / name)
    records, _ = _yt8m_inputs(root)
    p = project
    cases = {
        "predict-folder": ["predict", folder, "--model", p["run"], *PREDICT],
        "predict-list": ["predict", listing, "--model", p["run"], *PREDICT],
        "extract-folder": ["extract", folder, "-o", root / "folder.h5", *EXTRACT],
        "extract-list": ["extract", listing, "-o", root / "list.h5", *EXTRACT],
        "train-features": ["train", "--features", root / "fifo.h5", "--embeddings", p["embeddings"], "-o", root / "r1",
                           *TRAIN_FAST],
        "evaluate-features": ["evaluate", p["run"], "--features", root / "fifo.h5", "-o", root / "e.json",
                              "--device", "cpu", "--no-plots"],
        "inspect-embeddings": ["inspect", root / "fifo.h5"],
        "import-yt8m-output": ["import-yt8m", records, "-o", root / "out-yt8m.h5"],
        "merge-output": ["merge", *shards, "-o", root / "out-merge.h5"],
    }
    procs = {name: faultkit.start(*args, cwd=root) for name, args in cases.items()}
    yield {"root": root, "procs": procs, "deadline": time.monotonic() + 60}
    for proc in procs.values():
        if proc.poll() is None:
            faultkit.finish(proc, 0)


@pytest.fixture(scope="module", autouse=True)
def start_fifo_cases_early(request):
    """Start the FIFO processes with the module's first test when any FIFO test is selected, so
    their 60 s timeout runs beside the other tests instead of after them."""
    if any("fifo_runs" in getattr(item, "fixturenames", ()) and item.module is request.module
           for item in request.session.items):
        request.getfixturevalue("fifo_procs")


@pytest.fixture(scope="module")
def fifo_runs(fifo_procs):
    deadline = fifo_procs["deadline"]
    ran = {name: faultkit.finish(proc, deadline - time.monotonic()) for name, proc in fifo_procs["procs"].items()}
    return {"root": fifo_procs["root"], "ran": ran}


@pytest.mark.parametrize("case", [
    "predict-folder", "predict-list"])
def test_fifo_among_predict_inputs_is_skipped(fifo_runs, case):
    """The FIFO is skipped with a reason, like any unreadable file; the 3 images are labelled."""
    ran = fifo_runs["ran"][case]
    assert not ran.timed_out, "predict hung on the FIFO"
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert len(ran.stdout.splitlines()) == 3 and "Traceback" not in ran.stderr
    assert "pipe.png" in ran.stderr, ran.stderr


@pytest.mark.parametrize("case", [
    "extract-folder", "extract-list"])
def test_fifo_among_extract_inputs_is_skipped(fifo_runs, case):
    """The FIFO is a skipped input with its reason in the file's `skipped`; 3 rows; no lock or
    partial file left."""
    ran = fifo_runs["ran"][case]
    assert not ran.timed_out, "extract hung on the FIFO"
    assert ran.returncode == 0 and "Traceback" not in ran.stderr, ran.stderr[-2000:]
    out = fifo_runs["root"] / ("folder.h5" if case == "extract-folder" else "list.h5")
    with h5py.File(out, "r") as f:
        assert f["ids"].shape[0] == 3
        assert any("pipe.png" in s for s in f["skipped"].asstr()[:])
    assert not list(fifo_runs["root"].glob(f".{out.name}.*"))


@pytest.mark.parametrize("case", ["train-features", "evaluate-features", "inspect-embeddings"])
def test_an_existing_fifo_is_not_called_missing(fifo_runs, case):
    """A named pipe given where an HDF5 file belongs: one line that names it and says what it is,
    not `no such file` (which sends the user looking for a typo)."""
    line = clean_error(fifo_runs["ran"][case], fifo_runs["root"] / "fifo.h5")
    assert "no such file" not in line.lower(), line


@pytest.mark.parametrize("case", ["import-yt8m-output", "merge-output"])
def test_fifo_output_of_a_resumable_command_is_refused_and_stays(fifo_runs, case):
    """`-o` onto a FIFO for the HDF5 writers: refused, and the FIFO stays a FIFO (never replaced)."""
    out = fifo_runs["root"] / ("out-yt8m.h5" if case == "import-yt8m-output" else "out-merge.h5")
    clean_error(fifo_runs["ran"][case], out)
    assert stat.S_ISFIFO(os.lstat(out).st_mode)


# =============================================================================================
# Silently wrong results

def test_virtual_merge_notices_a_re_extracted_shard(cli, project, shards, tmp_path):
    """A virtual merged file reads its maps from the shards; once a shard is made again with other
    weights, reading the merged file is refused with one line naming it (and `mlgraph merge`)."""
    for s in shards:
        shutil.copy(s, tmp_path / s.name)
    merged = tmp_path / "mv.h5"
    assert cli("merge", *[tmp_path / s.name for s in shards], "-o", merged, "--virtual").exit_code == 0
    assert cli("evaluate", project["run"], "--features", merged, "-o", tmp_path / "e1.json", "--device", "cpu",
               "--no-plots").exit_code == 0
    again = cli("extract", project["images"], "-a", project["annotations"], "-o", tmp_path / "s.h5", *EXTRACT,
                "--batch-size", "4", "--shard", "1/2", "--seed", "1", "-q")
    assert again.exit_code == 0, again.output
    line = one_line_error(cli("evaluate", project["run"], "--features", merged, "-o", tmp_path / "e2.json",
                              "--device", "cpu", "--no-plots"))
    assert str(merged) in line or "s.shard-1-of-2.h5" in line, line


@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_ids_shorter_than_rows(cli, project, tmp_path, command):
    """`ids` with 5 entries for 8 feature rows: one line naming the file and `ids`."""
    bad = edit_h5(project["features"], tmp_path / "short.h5", lambda f: replace(f, "ids", f["ids"][:5]))
    line = one_line_error(_consume_features(cli, command, project, bad, tmp_path))
    assert str(bad) in line and "ids" in line, line


def _consume_features(cli, command, project, features, tmp_path):
    if command == "train":
        return cli("train", "--features", features, "--embeddings", project["embeddings"], "-o", tmp_path / "r",
                   *TRAIN_FAST)
    return cli("evaluate", project["run"], "--features", features, "-o", tmp_path / "e.json", "--device", "cpu",
               "--no-plots")


@pytest.fixture(scope="module")
def stopped(project, tmp_path_factory):
    """A run stopped by SIGTERM after epoch 1 of 40 (resumable), on the project's features."""
    folder = tmp_path_factory.mktemp("stopped")
    return faultkit.stop_after_first_epoch(folder / "run", project["features"], project["embeddings"])


@pytest.fixture(scope="module")
def other_features(project, tmp_path_factory):
    """The project's images extracted again with another random backbone (--seed 1): same shapes."""
    out = tmp_path_factory.mktemp("other") / "f1.h5"
    faultkit.ok("extract", project["images"], "-a", project["annotations"], "-o", out, *EXTRACT, "--seed", "1", "-q")
    return out


def test_resume_refuses_changed_training_features(cli, project, other_features, tmp_path):
    """The features a stopped run trained on were made again (other backbone weights) under the same
    name: `train --resume` refuses with one line naming that file."""
    features = shutil.copy(project["features"], tmp_path / "f.h5")
    run = faultkit.stop_after_first_epoch(tmp_path / "run", Path(features), project["embeddings"])
    shutil.copy(other_features, features)
    line = one_line_error(cli("train", "--resume", run))
    assert str(features) in line, line


def test_resume_refuses_another_runs_resume_state(cli, project, stopped, tmp_path):
    other = tmp_path / "other"
    assert cli("train", "--features", project["features"], "--embeddings", project["embeddings"], "-o", other,
               "--epochs", "2", "--batch-size", "4", "--device", "cpu", "--val-fraction", "0", "--probe-epochs", "0",
               "-q").exit_code == 0
    run = copy_run(stopped, tmp_path / "run")
    shutil.copy(other / "resume.pt", run / "resume.pt")
    line = one_line_error(cli("train", "--resume", run))
    assert str(run / "resume.pt") in line, line


def test_run_with_zero_std_is_refused(cli, project, run):
    edit_json(run / "config.json", lambda c: c["backbone"]["preprocessing"].__setitem__("std", [0, 0, 0]))
    line = one_line_error(cli("predict", project["images"], "--model", run, *PREDICT))
    assert str(run / "config.json") in line, line


def _nan_weights(run: Path) -> None:
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    for name in ("best.safetensors", "last.safetensors"):
        path = run / name
        with safe_open(path, "np") as f:
            meta = f.metadata()
        tensors = load_file(path)
        key = min(tensors)
        tensors[key] = tensors[key].copy()
        tensors[key].flat[0] = np.nan
        save_file(tensors, path, metadata=meta)


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_run_with_a_nan_weight_is_refused(cli, project, run, tmp_path, command):
    """A weights file holding NaN (its metadata intact): one line naming the weights file."""
    _nan_weights(run)
    if command == "predict":
        result = cli("predict", project["images"], "--model", run, *PREDICT)
    else:
        result = cli("evaluate", run, "--features", project["features"], "-o", tmp_path / "e.json", "--device", "cpu",
                     "--no-plots")
    line = one_line_error(result)
    assert str(run / "best.safetensors") in line, line


def test_reversed_labels_with_weights_without_metadata(cli, project, run):
    """Weights without mlgraph's metadata cannot be tied to config.json (`config_digest`), so they
    are refused (one line naming the weights file), rather than trusted: here config.json's labels
    were reversed and the weights re-saved by a tool that drops metadata."""
    from safetensors.numpy import load_file, save_file

    edit_json(run / "config.json", lambda c: c.__setitem__("labels", c["labels"][::-1]))
    for name in ("best.safetensors", "last.safetensors"):
        save_file(load_file(run / name), run / name)
    line = one_line_error(cli("predict", project["images"], "--model", run, *PREDICT))
    assert str(run / "best.safetensors") in line, line


def test_nan_word_vectors_are_refused(cli, project, tmp_path):
    vectors = tmp_path / "vec.txt"
    vectors.write_text("blue 0.1 0.2 nan\ntriangle 0.3 0.1 0.2\ngreen 0.5 0.5 0.1\ncircle 0.1 0.9 0.3\n"
                       "red 0.2 0.2 0.8\nsquare 0.4 0.1 0.1\n")
    line = one_line_error(cli("embed", project["graph"], "--init", vectors, "-o", tmp_path / "e.h5", "--dim", "3",
                              "--steps", "5"))
    assert str(vectors) in line, line
    assert not (tmp_path / "e.h5").exists()


@pytest.mark.parametrize("flag,value", [("--tau", "nan"), ("--self-weight", "inf")])
def test_embed_refuses_non_finite_flags(cli, project, tmp_path, flag, value):
    result = cli("embed", project["graph"], "-o", tmp_path / "e.h5", "--dim", "4", "--steps", "5",
                 "--adjacency", "binary", flag, value)
    flag_error(result, flag)
    assert not (tmp_path / "e.h5").exists()


def test_complex_embeddings_are_refused(cli, project, tmp_path):
    bad = edit_h5(project["embeddings"], tmp_path / "c.h5",
                  lambda f: replace(f, "embeddings", f["embeddings"][:].astype(np.complex64) + 1j))
    line = one_line_error(cli("train", "--features", project["features"], "--embeddings", bad, "-o", tmp_path / "r",
                              *TRAIN_FAST))
    assert str(bad) in line, line


def test_one_image_under_two_spellings(cli, tmp_path):
    """`a.jpg` and `./a.jpg` are one file: listed twice with different labels, refused as an exact
    duplicate is (`image 'a.jpg' is listed again with different labels`)."""
    ann = tmp_path / "t.csv"
    ann.write_text("path,labels\na.jpg,cat\nb.jpg,dog\n./a.jpg,dog\n")
    line = one_line_error(cli("build-graph", ann, "-o", tmp_path / "g.json"))
    assert str(ann) in line and "a.jpg" in line, line


def test_quoted_label_with_a_newline(cli, tmp_path):
    """CSV `a.jpg,"cat<newline>dog"`: either one line naming the file (a label name cannot hold a
    line break), or the label kept exactly. Never silently another label (`catdog`)."""
    ann = tmp_path / "t.csv"
    ann.write_text('path,labels\na.jpg,"cat\ndog"\nb.jpg,dog\n')
    result = cli("build-graph", ann, "-o", tmp_path / "g.json")
    if result.exit_code == 0:
        labels = [n["id"] for n in json.loads((tmp_path / "g.json").read_text())["nodes"]]
        assert sorted(labels) == ["cat\ndog", "dog"], labels
    else:
        assert str(ann) in one_line_error(result)


def test_yt8m_negative_class(cli, tmp_path):
    """A record with class -1 (no such YouTube-8M class): never a label column "-1". Either one line
    naming the file, or the record reported and skipped as a corrupt record is (exit 0, named on
    stderr)."""
    records = faultkit.write_records(tmp_path / "neg.tfrecord", [
        faultkit.video_example(f"v{i}", [i % 2, -1] if i == 0 else [i % 2], seed=i) for i in range(4)])
    out = tmp_path / "f.h5"
    result = cli("import-yt8m", records, "-o", out)
    if result.exit_code == 0:
        assert "Traceback" not in result.output and str(records) in result.stderr, result.stderr
        with h5py.File(out, "r") as f:
            assert "-1" not in f["label_names"].asstr()[:].tolist()
    else:
        assert str(records) in one_line_error(result)


def test_yt8m_duplicate_video_ids(cli, tmp_path):
    """Two records with id 'a' and different labels: refused as duplicate images are."""
    records = faultkit.write_records(tmp_path / "dup.tfrecord", [
        faultkit.video_example(v, labels, seed=i) for i, (v, labels) in enumerate([("a", [0]), ("b", [1]), ("a", [1])])])
    line = one_line_error(cli("import-yt8m", records, "-o", tmp_path / "f.h5"))
    assert str(records) in line and "'a'" in line, line


@pytest.fixture(scope="module")
def video_run(tmp_path_factory):
    """A video run (gap head, 1 epoch) on 9 frame-level YouTube-8M records of 3 frames."""
    root = tmp_path_factory.mktemp("yt8m")
    records = faultkit.write_records(root / "train.tfrecord", [
        faultkit.frame_example(f"v{i}", [i % 3], 3, seed=i) for i in range(9)])
    faultkit.ok("import-yt8m", records, "-o", root / "t.h5", "-q")
    faultkit.ok("train", "--features", root / "t.h5", "--head", "gap", "-o", root / "run", *TRAIN, "-q")
    return root / "run"


def test_zero_frame_video_is_not_scored(cli, video_run, tmp_path):
    """A frame-level record with no frames has nothing to score: it is skipped and named on stderr
    (exit 0 for the other video), never given scores."""
    records = faultkit.write_records(tmp_path / "test.tfrecord", [
        faultkit.frame_example("full", [0], 3, seed=1), faultkit.frame_example("empty", [1], 0)])
    result = cli("predict", records, "--model", video_run, *PREDICT, "--threshold", "0", "--topk", "3")
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    videos = [json.loads(line)["video"] for line in result.stdout.splitlines()]
    assert videos == ["full"], result.stdout
    assert "empty" in result.stderr


def test_init_with_a_newline_in_a_path(cli, project, tmp_path):
    """A path with a line break: written as a TOML escape that reads back as the same path, or
    refused with one line and no mlgraph.toml."""
    folder = tmp_path / "p"
    folder.mkdir()
    name = "a\nb.json"
    shutil.copy(project["annotations"], folder / name)
    result = cli("init", folder, "--annotations", name)
    toml = folder / "mlgraph.toml"
    if result.exit_code == 0:
        assert tomllib.loads(toml.read_text())["dataset"]["annotations"] == name
    else:
        one_line_error(result)
        assert not toml.exists()


def test_weights_follow_the_umask(cli, project, tmp_path):
    """Under umask 022 every file of a run is 0644, the weights as much as config.json."""
    before = os.umask(0o022)
    try:
        result = cli("train", "--features", project["features"], "--embeddings", project["embeddings"],
                     "-o", tmp_path / "run", *TRAIN_FAST)
    finally:
        os.umask(before)
    assert result.exit_code == 0, result.output
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "run").iterdir() if p.is_file()}
    assert set(modes.values()) == {0o644}, {k: oct(v) for k, v in modes.items()}


@pytest.fixture(scope="module")
def formula_run(tmp_path_factory):
    """A project whose label 'red-square' is named `=cmd|calc`."""
    return faultkit.build_project(tmp_path_factory.mktemp("formula"), categories={"red-square": "=cmd|calc"})


def test_predict_csv_cells_are_not_formulas(cli, formula_run, tmp_path):
    """CSV opened in a spreadsheet: a cell starting with = + - @ is a formula. The label is written
    with a leading apostrophe (OWASP's advice) and no cell of the file starts a formula."""
    out = tmp_path / "p.csv"
    result = cli("predict", formula_run["images"], "--model", formula_run["run"], "-o", out, "--device", "cpu",
                 "--threshold", "0")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert any(r["label"].lstrip("'") == "=cmd|calc" for r in rows)
    cells = [cell for r in rows for cell in r.values()]
    assert not [c for c in cells if c[:1] in ("=", "+", "@") or (c[:1] == "-" and not _number(c))], cells[:12]


def _number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


# =============================================================================================
# Tracebacks

def _non_utf8_folder(project, tmp_path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    pngs = sorted(project["images"].glob("*.png"))
    for q in pngs[:3]:
        shutil.copy(q, folder / q.name)
    try:
        shutil.copy(pngs[3], os.path.join(os.fsencode(folder), b"caf\xe9.png"))
    except OSError as exc:  # a file system that only takes UTF-8 names
        pytest.skip(f"cannot make a non-UTF-8 file name here: {exc}")
    return folder


def test_non_utf8_file_name_in_extract(cli, project, tmp_path):
    """The image is extracted (or skipped with a reason); the command does not crash."""
    folder = _non_utf8_folder(project, tmp_path)
    out = tmp_path / "f.h5"
    result = cli("extract", folder, "-o", out, *EXTRACT, "-q")
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    with h5py.File(out, "r") as f:
        assert f["ids"].shape[0] + f["skipped"].shape[0] == 4


@pytest.mark.parametrize("suffix", ["jsonl", "csv"])
def test_non_utf8_file_name_in_predict_output(cli, project, tmp_path, suffix):
    """Every image gets its row; the file stays valid UTF-8 (the odd byte escaped or replaced)."""
    folder = _non_utf8_folder(project, tmp_path)
    out = tmp_path / f"p.{suffix}"
    result = cli("predict", folder, "--model", project["run"], "-o", out, "--device", "cpu", "--topk", "1",
                 "--threshold", "0")
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    lines = out.read_bytes().decode("utf-8").splitlines()
    assert len(lines) == (4 if suffix == "jsonl" else 5), lines


def _graph_edit(case: str, graph: Path, out: Path) -> Path:
    if case == "nested-100000-deep":
        out.write_text("[" * 100_000 + "]" * 100_000)
        return out
    data = json.loads(graph.read_text())
    if case == "graph-is-a-list":
        data["graph"] = [1, 2]
    elif case == "num-images-1e30":
        data["graph"]["num_images"] = 10**30
        for node in data["nodes"]:
            node["count"] = 10**29
    out.write_text(json.dumps(data))
    return out


@pytest.mark.parametrize("case", ["graph-is-a-list", "num-images-1e30", "nested-100000-deep"])
def test_hand_edited_graph_json(cli, project, tmp_path, case):
    bad = _graph_edit(case, project["graph"], tmp_path / "g.json")
    line = one_line_error(cli("embed", bad, "-o", tmp_path / "e.h5", "--dim", "4", "--steps", "5"))
    assert str(bad) in line, line


EMBEDDING_EDITS = {
    "vectors-as-strings": lambda f: replace(f, "embeddings", np.array([[b"a"] * 8] * 3)),
    "labels-as-ints": lambda f: replace(f, "labels", np.arange(3)),
    "group-for-dataset": lambda f: (f.__delitem__("embeddings"), f.create_group("embeddings")),
}


@pytest.mark.parametrize("case", list(EMBEDDING_EDITS))
def test_hand_edited_embeddings(cli, project, tmp_path, case):
    bad = edit_h5(project["embeddings"], tmp_path / "e.h5", EMBEDDING_EDITS[case])
    line = one_line_error(cli("train", "--features", project["features"], "--embeddings", bad, "-o", tmp_path / "r",
                              *TRAIN_FAST))
    assert str(bad) in line, line


FEATURE_EDITS = {
    "no-features": (lambda f: f.__delitem__("features"), "features"),
    "no-ids": (lambda f: f.__delitem__("ids"), "ids"),
    "fewer-label-rows": (lambda f: replace(f, "labels", f["labels"][:5]), "labels"),
}


@pytest.mark.parametrize("command", ["train", "evaluate"])
@pytest.mark.parametrize("case", list(FEATURE_EDITS))
def test_hand_edited_features(cli, project, tmp_path, case, command):
    change, field = FEATURE_EDITS[case]
    bad = edit_h5(project["features"], tmp_path / "f.h5", change)
    line = one_line_error(_consume_features(cli, command, project, bad, tmp_path))
    assert str(bad) in line and field in line, line


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_config_with_zero_in_channels(cli, project, run, tmp_path, command):
    edit_json(run / "config.json", lambda c: c["head"].__setitem__("in_channels", 0))
    if command == "predict":
        result = cli("predict", project["images"], "--model", run, *PREDICT)
    else:
        result = cli("evaluate", run, "--features", project["features"], "-o", tmp_path / "e.json", "--device", "cpu",
                     "--no-plots")
    line = one_line_error(result)
    assert str(run / "config.json") in line, line


METRICS_EDITS = {"not-json": lambda text: text + "{not json\n",
                 "mistyped": lambda text: '{"epoch": "one", "train_loss": "x"}\n',
                 "a-list": lambda text: "[1, 2]\n"}


@pytest.mark.parametrize("case", list(METRICS_EDITS))
def test_corrupt_metrics_line_on_resume(cli, stopped, tmp_path, case):
    run = copy_run(stopped, tmp_path / "run")
    metrics = run / "metrics.jsonl"
    metrics.write_text(METRICS_EDITS[case](metrics.read_text()))
    line = one_line_error(cli("train", "--resume", run))
    assert str(metrics) in line, line


def test_invalid_utf8_in_the_project_file(cli, tmp_path, monkeypatch):
    (tmp_path / "mlgraph.toml").write_bytes(b'[dataset]\nannotations = "caf\xe9.json"\n')
    monkeypatch.chdir(tmp_path)
    line = one_line_error(cli("build-graph"))
    assert "mlgraph.toml" in line, line


@pytest.mark.parametrize("command", ["import-yt8m", "build-graph"])
def test_tfrecord_length_field_of_2_60(cli, tmp_path, command):
    """A length field (with a valid checksum) claiming 2^60 bytes in a 2 KB file is a truncated
    record: reported and the rest of the file skipped, as `file ends inside a record` is (exit 0,
    the first video kept), or one line naming the file; never an attempt to read 2^60 bytes."""
    records = tmp_path / "huge.tfrecord"
    records.write_bytes(faultkit.frame(faultkit.video_example("v0", [0, 1])) + faultkit.header_claiming(2**60)
                        + bytes(16))
    out = tmp_path / ("f.h5" if command == "import-yt8m" else "g.json")
    result = cli(command, records, "-o", out)
    if result.exit_code == 0:
        assert "Traceback" not in result.output and str(records) in result.stderr, result.output
    else:
        assert str(records) in one_line_error(result)


def test_predict_image_size_zero(cli, project):
    flag_error(cli("predict", project["images"], "--model", project["run"], "--image-size", "0", "--device", "cpu"),
               "--image-size")


def test_embed_dim_two_million(cli, project, tmp_path):
    """A width far beyond any use (and beyond memory): refused before anything is allocated."""
    flag_error(cli("embed", project["graph"], "-o", tmp_path / "e.h5", "--dim", "2000000", "--steps", "1"), "--dim")


def test_deleted_working_directory_with_absolute_paths(project, tmp_path):
    """Every path is absolute, so the command does not need its working folder: it works."""
    gone = tmp_path / "gone"
    gone.mkdir()
    out = tmp_path / "g.json"

    def enter_and_delete():
        os.chdir(gone)
        os.rmdir(gone)

    proc = faultkit.start("build-graph", project["annotations"], "-o", out, preexec_fn=enter_and_delete)
    ran = faultkit.finish(proc, 60)
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert json.loads(out.read_text())["graph"]["num_images"] == 8


def test_mp4_with_default_options_and_a_0_frame_clip(cli, tmp_path):
    """Video files with no optional flag (was `int(config.workers)` on None); a clip with no frame
    is skipped with its reason, the others extracted."""
    av = pytest.importorskip("av")
    from fractions import Fraction

    folder = tmp_path / "clips"
    folder.mkdir()
    rows = ["path,labels"]
    for i, colour in enumerate([(230, 30, 30), (30, 30, 230)]):
        with av.open(str(folder / f"c{i}.mp4"), "w") as container:
            stream = container.add_stream("libx264", rate=Fraction(4))
            stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
            for k in range(4):
                picture = np.full((32, 32, 3), 90, np.uint8)
                if k == i + 1:
                    picture[:] = colour
                for packet in stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        rows.append(f"c{i}.mp4,{'red' if i == 0 else 'blue'}")
    container = av.open(str(folder / "empty.mp4"), "w")  # a clip with no frame at all
    stream = container.add_stream("libx264", rate=Fraction(4))
    stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
    container.close()
    rows.append("empty.mp4,red")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "clips.h5"
    result = cli("extract", folder, "-a", folder / "labels.csv", "-o", out, "--backbone", "resnet18", "--weights", "none",
                 "--image-size", "32", "--device", "cpu", "-q")
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    with h5py.File(out, "r") as f:
        assert f["ids"].shape[0] == 2
        assert [s.split("\t")[0] for s in f["skipped"].asstr()[:]] == ["empty.mp4"]


# ---------------------------------------------------------------------------------------------
# Clear errors that mislead

def test_image_size_too_large_is_not_called_too_small(cli, project, tmp_path):
    line = one_line_error(cli("extract", project["images"], "-o", tmp_path / "f.h5", "--backbone", "resnet18",
                              "--weights", "none", "--image-size", "100000", "--device", "cpu"))
    assert "--image-size" in line and "too small" not in line, line


def test_half_label_is_reported_as_half(cli, project, tmp_path):
    bad = edit_h5(project["features"], tmp_path / "f.h5",
                  lambda f: replace(f, "labels", np.where(f["labels"][:] == 1, 0.5, 0.0).astype(np.float32)))
    line = one_line_error(cli("train", "--features", bad, "--embeddings", project["embeddings"], "-o", tmp_path / "r",
                              *TRAIN_FAST))
    assert str(bad) in line and "0.5" in line, line


def test_huge_count_is_not_reported_as_negative(cli, project, tmp_path):
    bad = edit_json(Path(shutil.copy(project["graph"], tmp_path / "g.json")),
                    lambda d: d["nodes"][0].__setitem__("count", 10**19))
    line = one_line_error(cli("embed", bad, "-o", tmp_path / "e.h5", "--dim", "4", "--steps", "5"))
    assert str(bad) in line and "-9223372036854775808" not in line, line
