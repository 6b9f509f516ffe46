"""Artifacts: atomic writes, schema tags and their error messages, HDF5 attributes."""

from __future__ import annotations

import os
import stat

import pytest

from mlgraph_cli.core.io.outputs import atomic_output, atomic_write_text
from mlgraph_cli.core.io.artifacts import check_schema, provenance, read_json
from mlgraph_cli.core.io.hdf5 import h5_open, h5_read_attrs, h5_write_attrs
from mlgraph_cli.errors import InputError, SchemaError


def test_atomic_output_keeps_the_old_file_when_interrupted(tmp_path):
    dest = tmp_path / "out.json"
    dest.write_text("old", encoding="utf-8")
    with pytest.raises(KeyboardInterrupt):
        with atomic_output(dest) as tmp:
            tmp.write_text("half", encoding="utf-8")
            raise KeyboardInterrupt
    assert dest.read_text(encoding="utf-8") == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_atomic_write_gives_the_usual_file_mode(tmp_path):
    atomic_write_text(tmp_path / "a.txt", "x")
    mode = stat.S_IMODE(os.stat(tmp_path / "a.txt").st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask


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
