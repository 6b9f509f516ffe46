"""Artifacts: the one way an output is written (core/io/outputs.py), the bounded JSON reader
(core/io/jsonfile.py), schema tags and their error messages, HDF5 attributes and dataset checks."""

from __future__ import annotations

import os
import stat

import pytest

from mlgraph_cli.core.io.outputs import WriteLock, write_output, write_text
from mlgraph_cli.core.io.artifacts import check_schema, provenance
from mlgraph_cli.core.io.hdf5 import FLOATS, h5_dataset, h5_open, h5_read_attrs, h5_strings, h5_write_attrs
from mlgraph_cli.core.io.jsonfile import read_json
from mlgraph_cli.errors import InputError, MlgraphError, SchemaError


def test_write_output_keeps_the_old_file_when_interrupted(tmp_path):
    dest = tmp_path / "out.json"
    dest.write_text("old", encoding="utf-8")
    with pytest.raises(KeyboardInterrupt):
        with write_output(dest) as tmp:
            tmp.write_text("half", encoding="utf-8")
            raise KeyboardInterrupt
    assert dest.read_text(encoding="utf-8") == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_write_output_gives_the_usual_file_mode_whatever_the_writer_made(tmp_path):
    write_text(tmp_path / "a.txt", "x")
    with write_output(tmp_path / "b.bin") as tmp:  # a writer that makes its file anew, 0600 (as safetensors does)
        tmp.unlink()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o600)
        os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    for name in ("a.txt", "b.bin"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o666 & ~umask


def test_write_output_refuses_an_input_and_a_locked_output(tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("keep", encoding="utf-8")
    os.link(src, tmp_path / "hard.txt")
    with pytest.raises(MlgraphError, match=r"hard.txt: is also an input of this command .*\(pass another file name to -o\)"):
        write_text(tmp_path / "hard.txt", "x", [src])
    assert src.read_text(encoding="utf-8") == "keep"
    held = WriteLock(tmp_path / "out.txt")
    try:
        with pytest.raises(MlgraphError, match=r"out.txt: another mlgraph is writing this file \(process \d+\)"):
            write_text(tmp_path / "out.txt", "x")
    finally:
        held.release()
    write_text(tmp_path / "out.txt", "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hard.txt", "in.txt", "out.txt"]


def test_write_output_writes_into_a_fifo_and_never_replaces_it(tmp_path):
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(open(fifo, "rb").read()))
    reader.start()
    write_text(fifo, "through the pipe")
    reader.join(10)
    assert got == [b"through the pipe"] and stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_check_schema_names_the_command_that_makes_the_right_file():
    with pytest.raises(SchemaError, match=r"g.json: expected a graph file \(mlgraph/graph@1\) but found an? embeddings "
                                          r"file .*make one with `mlgraph build-graph`"):
        check_schema("g.json", "mlgraph/embeddings@1", "graph")
    with pytest.raises(SchemaError, match="without an mlgraph schema tag"):
        check_schema("x.h5", None, "features")
    check_schema("ok.json", "mlgraph/graph@1", "graph")


def test_read_json_errors_name_file_and_line(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "a": 1,\n  oops\n}', encoding="utf-8")
    with pytest.raises(InputError, match=r"bad.json:3: malformed JSON"):
        read_json(bad)
    empty = tmp_path / "empty.json"
    empty.write_text("  \n", encoding="utf-8")
    with pytest.raises(InputError, match="empty.json: the file is empty"):
        read_json(empty)
    with pytest.raises(InputError, match="no such file"):
        read_json(tmp_path / "missing.json")


@pytest.mark.parametrize("text,message", [
    ('{"a": NaN}', r"x.json: holds NaN, which is not a JSON number"),
    ('{"n": {"count": 10000000000000000000}}', r"x.json: n.count is 10000000000000000000, beyond the largest whole"),
    ('{"f": [1, 1e400]}', r"x.json: f\[1\] overflows to infinity"),
    ("[" * 100_000 + "]" * 100_000, r"x.json: JSON nested too deeply to read"),
])
def test_read_json_refuses_what_no_artifact_holds(tmp_path, text, message):
    (tmp_path / "x.json").write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match=message):
        read_json(tmp_path / "x.json")


def test_read_json_names_a_fifo_as_such(tmp_path):
    os.mkfifo(tmp_path / "p.json")
    with pytest.raises(InputError, match=r"p.json: is a named pipe \(FIFO\), not a regular file"):
        read_json(tmp_path / "p.json")


def test_h5_dataset_checks_kind_dtype_and_rows(tmp_path):
    import h5py
    import numpy as np

    path = tmp_path / "x.h5"
    with h5py.File(path, "w") as f:
        f["ids"] = np.array([b"a", b"b"])
        f["vectors"] = np.zeros((3, 2), np.float32)
        f["ints"] = np.zeros(3, np.int64)
        f.create_group("group")
    with h5py.File(path, "r") as f:
        assert h5_strings(f, "ids", path, fix="F") == ["a", "b"]
        for call, message in [
            (lambda: h5_dataset(f, "vectors", path, kinds=FLOATS, rows=2, fix="F"), "`vectors` has 3 rows for 2"),
            (lambda: h5_dataset(f, "ints", path, kinds=FLOATS, fix="F"), "`ints` holds integers, not floating-point"),
            (lambda: h5_dataset(f, "group", path, kinds=FLOATS, fix="F"), "`group` is a group, not a dataset"),
            (lambda: h5_dataset(f, "nope", path, kinds=FLOATS, fix="F"), "no `nope` dataset"),
            (lambda: h5_strings(f, "ints", path, fix="F"), "`ints` holds integers, not strings"),
        ]:
            with pytest.raises(InputError, match=message):
                call()


def test_h5_attributes_round_trip_and_schema_is_checked(tmp_path):
    import h5py

    path = tmp_path / "e.h5"
    with h5py.File(path, "w") as f:
        h5_write_attrs(f, {"schema": "mlgraph/embeddings@1", "dimension": 4, "adjacency": {"kind": "binary", "tau": 0.4},
                           "provenance": provenance("mlgraph embed", {"seed": 1, "path": tmp_path})})
    with h5_open(path, "embeddings") as f:
        attrs = h5_read_attrs(f)
    assert attrs["dimension"] == 4
    assert attrs["adjacency"] == {"kind": "binary", "tau": 0.4}
    assert attrs["provenance"]["params"] == {"seed": 1, "path": str(tmp_path)}
    with pytest.raises(SchemaError, match="expected a features file .* found an? embeddings file .*`mlgraph extract`"):
        h5_open(path, "features")
    text = tmp_path / "not.h5"
    text.write_text("hello", encoding="utf-8")
    with pytest.raises(SchemaError, match="not an HDF5 file"):
        h5_open(text, "features")


def test_an_hdf5_artifact_given_as_a_graph_is_named(tmp_path):
    import h5py

    from mlgraph_cli.core.graph.files import read_graph

    path = tmp_path / "graph.json"  # misnamed: really an embeddings file
    with h5py.File(path, "w") as f:
        f.attrs["schema"] = "mlgraph/embeddings@1"
    with pytest.raises(SchemaError, match="expected a graph file .* found an embeddings file .*`mlgraph build-graph`"):
        read_graph(path)
