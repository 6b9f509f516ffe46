"""`mlgraph extract` under faults: a disk that fills up, rows counted but never written, two
writers on one output, annotation paths that leave the images folder, list files that are not
lists, URLs."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import one_line_error
from mlgraph_cli.core.features.file import FeatureWriter, partial_path
from test_extract import FAST, flat, make_images, write_coco

DATASETS = ("features", "ids", "files", "labels", "label_names", "skipped")


@pytest.fixture
def annotated(tmp_path, cli):
    """Ten images, one annotated but missing (a skipped input), and a clean reference run."""
    names = make_images(tmp_path / "imgs", n=10)
    write_coco(tmp_path / "ann.json", names[:4] + ["missing.jpg"] + names[4:])
    ref = tmp_path / "ref.h5"
    result = cli("extract", tmp_path / "imgs", "-a", tmp_path / "ann.json", "-o", ref, *FAST)
    assert result.exit_code == 0, result.output
    return ref


def extract(cli, tmp_path, out):
    return cli("extract", tmp_path / "imgs", "-a", tmp_path / "ann.json", "-o", out, *FAST)


def assert_same_datasets(out: Path, ref: Path) -> None:
    with h5py.File(out, "r") as a, h5py.File(ref, "r") as b:
        for name in DATASETS:
            assert a[name][()].tobytes() == b[name][()].tobytes() if a[name].dtype.kind != "O" else \
                list(a[name].asstr()[()]) == list(b[name].asstr()[()]), name


def fill_disk_after(monkeypatch, rows: int) -> None:
    """The disk is full once ``rows`` rows are written: the free-space check before a batch says so."""
    from mlgraph_cli.core.features import file as features

    real = features.check_free_space
    state = {"writes": 0}

    def full(path, batch_bytes):
        if state["writes"] >= rows:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, batch_bytes)
        state["writes"] += 4  # FAST's batch size

    monkeypatch.setattr(features, "check_free_space", full)


def test_a_full_disk_stops_cleanly_and_the_rerun_resumes_exactly(tmp_path, cli, monkeypatch, annotated):
    out = tmp_path / "out.h5"
    fill_disk_after(monkeypatch, 4)
    line = one_line_error(extract(cli, tmp_path, out))
    partial = partial_path(out)
    assert line == (f"Error: {partial}: No space left on device; 4 of 11 images are written and kept (free some space "
                    f"and run the same command again to resume, or delete {partial} to start over)")
    assert partial.exists() and not out.exists()
    monkeypatch.undo()
    result = extract(cli, tmp_path, out)
    assert result.exit_code == 0, result.output
    assert "Resuming" in result.stderr
    assert_same_datasets(out, annotated)


def test_rows_counted_but_not_on_disk_are_extracted_again(tmp_path, cli, monkeypatch, annotated):
    """The failure seen on a full disk: counters moved past rows that are zeros in the file."""
    out = tmp_path / "out.h5"
    fill_disk_after(monkeypatch, 8)
    one_line_error(extract(cli, tmp_path, out))
    monkeypatch.undo()
    with h5py.File(partial_path(out), "a") as h:
        assert int(h.attrs["rows_done"]) == 7  # two batches of four inputs, one of them missing
        h["features"][5:7] = 0  # rows 5-6 never reached the disk, though counted
    result = extract(cli, tmp_path, out)
    assert result.exit_code == 0, result.output
    # Row 5 is in the second batch (rows 4-6, inputs 4-7): that whole batch is extracted again.
    assert "Resuming" in result.stderr and "3 row(s) were not on disk as counted" in flat(result.stderr)
    assert "4 of 11 images were done" in flat(result.stderr)
    assert_same_datasets(out, annotated)


def test_a_torn_batch_is_dropped_on_resume(tmp_path, cli, monkeypatch, annotated):
    """A write that fails inside a batch (after the rows were resized, before the counters)."""
    out = tmp_path / "out.h5"
    real = FeatureWriter.append

    def torn(self, maps, ids, *args, **kwargs):
        if self.rows_done >= 4:
            ds = self.file["features"]
            ds.resize(self.rows_done + 2, axis=0)
            ds[self.rows_done:] = 3.0
            raise OSError(errno.EIO, "Input/output error")
        return real(self, maps, ids, *args, **kwargs)

    monkeypatch.setattr(FeatureWriter, "append", torn)
    line = one_line_error(extract(cli, tmp_path, out))
    assert "Input/output error; 4 of 11 images are written and kept (fix the disk and run" in line
    monkeypatch.undo()
    assert extract(cli, tmp_path, out).exit_code == 0
    assert_same_datasets(out, annotated)


def test_free_space_is_checked_before_a_batch(tmp_path, monkeypatch):
    import shutil

    from mlgraph_cli.core.features import checks as feature_checks

    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**9, 10**9 - 10**6, 10**6))
    with pytest.raises(OSError) as caught:
        feature_checks.check_free_space(tmp_path / "x.h5", 10**6)
    assert caught.value.errno == errno.ENOSPC and "only 1.0 MB free" in caught.value.strerror
    feature_checks.check_free_space(tmp_path / "x.h5", 0)  # nothing to write, nothing to check


def test_a_second_writer_is_refused_and_deletes_nothing(tmp_path, cli, annotated):
    out = tmp_path / "out.h5"
    first = FeatureWriter(out, shapes={"features": (512, 2, 2)}, plan="first", attrs={})
    first.append({"features": np.ones((1, 512, 2, 2))}, ["a"], ["a.png"], None, inputs_consumed=1)
    try:
        line = one_line_error(extract(cli, tmp_path, out))
        assert line.startswith(f"Error: {out}: another mlgraph is writing this file (process ")
        assert line.endswith("wait for it to finish, or write to another file with -o")
        assert first.rows_done == 1 and partial_path(out).exists()
    finally:
        first.close()
    result = extract(cli, tmp_path, out)  # the lock goes with its holder
    assert result.exit_code == 0, result.output
    assert not (tmp_path / ".out.h5.lock").exists()


# ---------------------------------------------------------------------------------------------
# Paths that leave the images folder

@pytest.mark.parametrize("entry", ["../outside/x.jpg", "sub/../../outside/x.jpg", "ABSOLUTE"])
def test_annotation_paths_outside_the_images_folder(tmp_path, cli, entry):
    (tmp_path / "outside").mkdir()
    secret = tmp_path / "outside" / "x.jpg"
    make_images(tmp_path / "imgs", n=2)
    from PIL import Image

    Image.new("RGB", (40, 40)).save(secret)
    name = str(secret) if entry == "ABSOLUTE" else entry
    write_coco(tmp_path / "ann.json", ["img00.jpg", name])
    out = tmp_path / "out.h5"
    line = one_line_error(cli("extract", tmp_path / "imgs", "-a", tmp_path / "ann.json", "-o", out, *FAST))
    assert line == (f"Error: {tmp_path / 'ann.json'}: entry 2 names {name!r}, which is outside the images folder "
                    f"{tmp_path / 'imgs'} (fix the entry, or pass --allow-outside-paths to read it anyway)")
    assert not out.exists() and not partial_path(out).exists()
    result = cli("extract", tmp_path / "imgs", "-a", tmp_path / "ann.json", "-o", out, *FAST, "--allow-outside-paths")
    assert result.exit_code == 0, result.output
    with h5py.File(out, "r") as h:
        assert len(h["ids"]) == 2


def test_leaves_folder():
    from mlgraph_cli.core.io.inputs import leaves_folder

    for name in ["a.jpg", "sub/a.jpg", "sub/../a.jpg", "./a.jpg", "a..b.jpg", "C:.jpg"]:
        assert not leaves_folder(name), name
    for name in ["../a.jpg", "sub/../../a.jpg", "/etc/passwd", "C:/x.jpg", "..\\a.jpg"]:
        assert leaves_folder(name), name


# ---------------------------------------------------------------------------------------------
# Honest inputs

def test_a_url_says_urls_are_not_supported(tmp_path, cli):
    line = one_line_error(cli("extract", "http://example.com/cat.jpg", "-o", tmp_path / "f.h5", *FAST))
    assert line == ("Error: http://example.com/cat.jpg: URLs are not supported (download the images first, then pass "
                    "the files or their folder)")


def test_a_text_file_that_is_not_a_list(tmp_path, cli):
    (tmp_path / "labels.txt").write_text("img00.jpg 1 0 1\nimg01.jpg 0 1 1\n")
    line = one_line_error(cli("extract", tmp_path / "labels.txt", "-o", tmp_path / "f.h5", *FAST))
    assert line.startswith(f"Error: {tmp_path / 'labels.txt'}: does not look like a list of image paths: 2 of 2 lines")
    assert not (tmp_path / "f.h5").exists()


def test_a_symlink_loop_in_the_images_folder_is_a_skipped_image(tmp_path, cli):
    make_images(tmp_path / "imgs", n=3)
    os.symlink("b.jpg", tmp_path / "imgs" / "a.jpg")
    os.symlink("a.jpg", tmp_path / "imgs" / "b.jpg")
    os.symlink("..", tmp_path / "imgs" / "sub" / "up")  # a folder loop: not followed
    result = cli("extract", tmp_path / "imgs", "-o", tmp_path / "f.h5", *FAST)
    assert result.exit_code == 0, result.output
    report = (tmp_path / "f.h5.skipped.txt").read_text().splitlines()
    assert report == ["a.jpg\tcannot be opened: Too many levels of symbolic links",
                      "b.jpg\tcannot be opened: Too many levels of symbolic links"]


def test_a_second_process_is_refused_while_the_first_writes(tmp_path, cli):
    """The reported case: two real `extract` processes to one output."""
    from test_extract import run_until_killed

    make_images(tmp_path / "imgs", n=10)
    out = tmp_path / "out.h5"
    seen = {}

    def second_run(pid):
        seen["line"] = one_line_error(cli("extract", tmp_path / "imgs", "-o", out, *FAST))
        seen["pid"] = pid
        with h5py.File(partial_path(out), "r", locking=False) as h:
            seen["rows"] = int(h.attrs["rows_done"])

    run_until_killed(tmp_path, tmp_path / "imgs", out, 4, while_paused=second_run)
    assert seen["line"] == (f"Error: {out}: another mlgraph is writing this file (process {seen['pid']}); wait for it "
                            "to finish, or write to another file with -o")
    assert seen["rows"] == 4  # the first run's work was not deleted
    result = cli("extract", tmp_path / "imgs", "-o", out, *FAST)  # the killed holder's lock is gone with it
    assert result.exit_code == 0, result.output
    assert "Resuming" in result.stderr


def test_hdf5_write_failures_become_os_errors_naming_the_file(tmp_path):
    from mlgraph_cli.core.features.checks import disk_errors

    h5_text = ("Can't close dataset (file write failed: time = now, filename = 'x', file descriptor = 4, errno = 28, "
               "error message = 'No space left on device', buf = 0x1, total write size = 8548)")
    with pytest.raises(OSError) as caught, disk_errors(tmp_path / "p"):
        raise RuntimeError(h5_text)
    assert (caught.value.errno, caught.value.strerror, caught.value.filename) == (
        errno.ENOSPC, "No space left on device", str(tmp_path / "p"))
    with pytest.raises(RuntimeError, match="CUDA out of memory"), disk_errors(tmp_path / "p"):
        raise RuntimeError("CUDA out of memory")  # not a file write: left as it is
