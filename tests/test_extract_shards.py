"""Sharded extraction: `--shard I/N` + `mlgraph merge`, and `torchrun ... extract`, equal one process's file."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

import mlgraph_cli
from conftest import one_line_error
from mlgraph_cli.core.features.file import open_features, partial_path
from mlgraph_cli.core.features.shards import parse_shard, shard_range
from shardkit import assert_same_file
from test_extract import FAST, make_images, run_until_killed, write_coco

ROOT = Path(mlgraph_cli.__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """9 labelled images (one unreadable) and the single-process features file."""
    from typer.testing import CliRunner

    from mlgraph_cli.cli.app import app

    tmp = tmp_path_factory.mktemp("shards")
    files = make_images(tmp / "imgs", n=8)
    (tmp / "imgs" / "broken.jpg").write_bytes(b"not an image")
    write_coco(tmp / "ann.json", [*files, "broken.jpg"])
    args = ["extract", str(tmp / "imgs"), "--annotations", str(tmp / "ann.json"), *FAST, "-q"]
    result = CliRunner().invoke(app, [*args, "-o", str(tmp / "single.h5")])
    assert result.exit_code == 0, result.output
    return {"tmp": tmp, "args": args, "single": tmp / "single.h5"}


def shards(cli, data, out: Path, count: int, *extra: str) -> list[Path]:
    for i in range(count):
        result = cli(*data["args"], *extra, "-o", out, "--shard", f"{i}/{count}")
        assert result.exit_code == 0, result.output
    return [out.with_name(f"{out.stem}.shard-{i}-of-{count}.h5") for i in range(count)]


def test_shard_ranges_tile_the_plan_in_whole_batches():
    for total, count, unit in [(9, 2, 4), (100, 7, 32), (3, 5, 4), (0, 2, 4)]:
        ranges = [shard_range(total, i, count, unit) for i in range(count)]
        assert ranges[0][0] == 0 and ranges[-1][1] == total
        assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
        assert all(lo % unit == 0 for lo, _ in ranges)
    assert parse_shard("3/8") == (3, 8)


def test_two_shards_merged_equal_one_process(cli, data, tmp_path):
    parts = shards(cli, data, tmp_path / "f.h5", 2)
    result = cli("merge", *reversed(parts), "-o", tmp_path / "merged.h5")
    assert result.exit_code == 0, result.output
    assert_same_file(data["single"], tmp_path / "merged.h5")
    assert "broken.jpg" in (tmp_path / "merged.h5.skipped.txt").read_text()

    # --virtual: no maps copied, the same numbers read through the shards, from anywhere
    result = cli("merge", *parts, "-o", tmp_path / "virtual.h5", "--virtual")
    assert result.exit_code == 0, result.output
    # the one attribute more: the fingerprint of each shard's rows, checked on every read
    assert_same_file(data["single"], tmp_path / "virtual.h5", ignore=("provenance", "virtual_sources"))
    with h5py.File(tmp_path / "virtual.h5", "r") as f:
        assert f["features"].is_virtual
    moved = tmp_path / "moved"
    moved.mkdir()
    for p in [tmp_path / "virtual.h5", *parts]:
        shutil.move(p, moved / p.name)
    cwd = os.getcwd()
    os.chdir(moved.parent.parent)
    try:
        ff = open_features(moved / "virtual.h5")
        assert np.array_equal(ff.read(slice(None)), open_features(data["single"]).read(slice(None)))
        ff.close()
    finally:
        os.chdir(cwd)
    (moved / parts[1].name).unlink()
    with pytest.raises(Exception, match="not beside it"):
        open_features(moved / "virtual.h5")


def test_a_killed_shard_resumes_and_the_merge_equals_one_process(cli, data, tmp_path):
    out = tmp_path / "f.h5"
    extra = ["--annotations", str(data["tmp"] / "ann.json"), "--shard", "1/2"]
    run_until_killed(tmp_path, data["tmp"] / "imgs", out, 4, *extra)
    part = out.with_name("f.shard-1-of-2.h5")
    assert partial_path(part).exists() and not part.exists()
    result = cli(*data["args"], "-o", out, "--shard", "1/2", "--verbose")
    assert result.exit_code == 0, result.output
    assert "Resuming" in result.output
    parts = [out.with_name("f.shard-0-of-2.h5"), part]
    result = cli(*data["args"], "-o", out, "--shard", "0/2")
    assert result.exit_code == 0 and cli("merge", *parts, "-o", tmp_path / "m.h5").exit_code == 0
    assert_same_file(data["single"], tmp_path / "m.h5")


def test_a_finished_shard_is_not_extracted_again(cli, data, tmp_path):
    parts = shards(cli, data, tmp_path / "f.h5", 2)
    before = parts[0].stat().st_mtime_ns
    result = cli(*data["args"], "-o", tmp_path / "f.h5", "--shard", "0/2")
    assert result.exit_code == 0, result.output
    assert parts[0].stat().st_mtime_ns == before


def test_merge_refuses_missing_repeated_foreign_and_unfinished_shards(cli, data, tmp_path):
    parts = shards(cli, data, tmp_path / "f.h5", 3)
    out = tmp_path / "m.h5"
    assert "1 of 3 shards are missing: 1/3" in one_line_error(cli("merge", parts[0], parts[2], "-o", out))
    assert "given twice" in one_line_error(cli("merge", parts[0], parts[1], parts[2], parts[1], "-o", out))
    other = shards(cli, data, tmp_path / "o.h5", 3, "--image-size", "32")
    assert "another plan or other settings" in one_line_error(cli("merge", parts[0], other[1], parts[2], "-o", out))
    assert "not a shard" in one_line_error(cli("merge", data["single"], "-o", out))
    # overlapping: a shard cut with another batch size covers other inputs
    odd = shards(cli, data, tmp_path / "b.h5", 3, "--batch-size", "2")
    assert "overlapping or missing inputs" in one_line_error(cli("merge", parts[0], odd[1], parts[2], "-o", out))
    # unfinished: only the partial file is there
    parts[2].rename(partial_path(parts[2]))
    assert "unfinished shard" in one_line_error(cli("merge", *parts, "-o", out))
    with h5py.File(partial_path(parts[2]), "a") as f:
        f.attrs["complete"] = False
    partial_path(parts[2]).rename(parts[2])
    assert "unfinished shard" in one_line_error(cli("merge", *parts, "-o", out))
    assert not out.exists()
    assert "expected I/N" in one_line_error(cli(*data["args"], "-o", out, "--shard", "2/2"))


def test_torchrun_two_processes_equal_one_process(data, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MLGRAPH_PROGRESS": "0",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    out = tmp_path / "ddp.h5"
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                           "-m", "mlgraph_cli", *data["args"], "-o", str(out)],
                          capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_same_file(data["single"], out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp.h5", "ddp.h5.skipped.txt"]  # shards removed
