"""Issue 17, point 4: property-based tests (Hypothesis) of the artifact readers, through the CLI.

Each property starts from a tiny valid artifact made by mlgraph itself (graph JSON, features and
embeddings HDF5, a run's config.json, mlgraph.toml, YouTube-8M TFRecords), mutates it the way a
hand edit, another tool or a damaged disk would (wrong dtypes, shapes that disagree, NaN and
infinities, missing datasets, a group where a dataset belongs, huge numbers, stray bytes), feeds it
to the command that reads it, and asserts the contract of docs/reliability.md: exit 0 (the mutation
left a valid file) or exit 1 / 2 with exactly one line on stderr and no traceback.

Examples are drawn deterministically (``derandomize``) and not shrunk, so a run takes the same
time and a failing property reports the first failing example it met.

Numbers are drawn from a fixed set of edge values (0, -1, 2**64, 10**30, NaN, inf, 1e300, ...)
rather than from all integers: a mid-sized value such as an image side of 20,000 px is valid and
merely slow, and would make the suite slow rather than find a bug.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import tempfile
from pathlib import Path

import h5py
import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
import faultkit
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from mlgraph_cli.cli._steps import inside

FUZZ = settings(max_examples=30, deadline=None, derandomize=True, database=None, phases=[Phase.explicit, Phase.generate],
                report_multiple_bugs=False,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A tiny valid project (graph, embeddings, features, run) and YouTube-8M records."""
    root = tmp_path_factory.mktemp("fuzzbase")
    p = faultkit.build_project(root)
    p["records"] = faultkit.write_records(root / "r.tfrecord", [faultkit.video_example(f"v{i}", [i % 3, 3], seed=i)
                                                                for i in range(3)])
    return p


@contextlib.contextmanager
def scratch():
    """A fresh folder per example (function-scoped fixtures are shared across Hypothesis examples)."""
    folder = Path(tempfile.mkdtemp(prefix="fuzz-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def assert_clean(result, what: str) -> None:
    """Exit 0, or exit 1 / 2 with exactly one line on stderr; never a traceback."""
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        f"{what}: {type(result.exception).__name__}: {result.exception}"
    assert "Traceback" not in result.output, what
    if result.exit_code == 0:
        return
    assert result.exit_code in (1, 2), (what, result.exit_code, result.output[-1500:])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    if result.exit_code == 1:
        assert len(lines) == 1, (what, lines[:6])


# ---------------------------------------------------------------------------------------------
# Values and JSON mutations

EDGE_NUMBERS = [0, -1, 1, 2, 3, 10**30, -(2**63), 2**64, 0.5, -0.5, 1e300, -1e300, 1e-300,
                math.nan, math.inf, -math.inf]
leaves = st.one_of(st.none(), st.booleans(), st.sampled_from(EDGE_NUMBERS), st.integers(-3, 10),
                   st.text(max_size=6), st.sampled_from(["", "cat", "../../x", "\n", "é"]))
json_values = st.recursive(leaves, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c, max_size=3),
                           max_leaves=6)


def json_paths(doc, prefix=()):
    yield prefix
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from json_paths(value, prefix + (key,))
    elif isinstance(doc, list):
        for i, value in enumerate(doc[:4]):
            yield from json_paths(value, prefix + (i,))


def mutate_json(doc, data):
    """One hand edit anywhere in ``doc``: a value replaced, a key or item deleted, a value wrapped
    in a list, a list item repeated."""
    path = data.draw(st.sampled_from(list(json_paths(doc))), label="path")
    action = data.draw(st.sampled_from(["replace", "delete", "wrap", "repeat"]), label="action")
    if not path:
        return data.draw(json_values, label="document")
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1]
    if action == "replace":
        parent[key] = data.draw(json_values, label="value")
    elif action == "delete":
        del parent[key]
    elif action == "wrap":
        parent[key] = [parent[key]]
    elif isinstance(parent, list):
        parent.append(parent[key])
    else:
        parent[key] = [parent[key], parent[key]]
    return doc


# ---------------------------------------------------------------------------------------------
# Graph JSON -> embed

@FUZZ
@given(data=st.data())
def test_graph_json(base, data):
    doc = mutate_json(json.loads(base["graph"].read_text()), data)
    with scratch() as tmp:
        graph = tmp / "g.json"
        graph.write_text(json.dumps(doc))
        assert_clean(faultkit.invoke("embed", graph, "-o", tmp / "e.h5", "--dim", "4", "--steps", "2", "-q"),
                     f"embed on {json.dumps(doc)[:300]}")


# ---------------------------------------------------------------------------------------------
# HDF5 mutations (features and embeddings)

DTYPES = ["int8", "int64", "uint64", "float16", "float64", "complex64", "bool", "string"]


def _as_dtype(values: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "string":
        return np.array([str(v).encode() for v in values.ravel()], dtype="S").reshape(values.shape)
    if values.dtype.kind in "OSU":
        return np.zeros(values.shape, dtype=dtype)
    with np.errstate(all="ignore"):
        return values.astype(dtype)


def mutate_h5(path: Path, data, names: list[str]) -> str:
    """One damage to an HDF5 artifact; returns a description."""
    family = data.draw(st.sampled_from(["dtype", "rows", "nonfinite", "delete", "group", "attr", "shape", "empty"]),
                       label="family")
    name = data.draw(st.sampled_from(names), label="dataset")
    with h5py.File(path, "a") as f:
        if name not in f:
            return f"{name} absent"
        values = f[name][()]
        if family == "dtype":
            dtype = data.draw(st.sampled_from(DTYPES), label="dtype")
            del f[name]
            f[name] = _as_dtype(values, dtype)
            return f"{name} as {dtype}"
        if family == "rows":
            rows = data.draw(st.integers(0, 12), label="rows")
            reps = -(-rows // max(len(values), 1)) if len(values) else 0
            new = np.concatenate([values] * max(reps, 1))[:rows] if len(values) else values
            del f[name]
            f[name] = new
            return f"{name} with {rows} rows"
        if family == "nonfinite" and values.dtype.kind in "fiu" and values.size:
            value = data.draw(st.sampled_from([math.nan, math.inf, -math.inf]), label="value")
            flat = values.astype(np.float32 if values.dtype.kind != "f" else values.dtype).ravel()
            flat[data.draw(st.integers(0, flat.size - 1), label="at")] = value
            del f[name]
            f[name] = flat.reshape(values.shape)
            return f"{name} holding {value}"
        if family == "delete":
            del f[name]
            return f"{name} deleted"
        if family == "group":
            del f[name]
            f.create_group(name)
            return f"{name} a group"
        if family == "shape" and values.ndim >= 1 and values.size:
            kind = data.draw(st.sampled_from(["flat", "extra-axis", "transpose", "scalar"]), label="shape")
            new = {"flat": values.reshape(len(values), -1) if values.ndim > 1 else values.reshape(-1, 1),
                   "extra-axis": values[..., None], "transpose": values.T, "scalar": values.ravel()[0]}[kind]
            del f[name]
            f[name] = new
            return f"{name} {kind}"
        if family == "empty":
            del f[name]
            f[name] = values[:0]
            return f"{name} empty"
        key = data.draw(st.sampled_from(sorted(f.attrs.keys()) + ["schema", "dimension", "image_size", "rows_done"]),
                        label="attr")
        value = data.draw(st.sampled_from([np.uint64(2**64 - 1), np.int64(-(2**63)), 10**18, -1, 0, math.nan,
                                           math.inf, "", "x" * 1000, "mlgraph/graph@1", np.zeros(3)]), label="attr value")
        f.attrs[key] = value
        return f"attr {key} = {value!r:.40}"


@FUZZ
@given(data=st.data())
def test_features_file(base, data):
    with scratch() as tmp:
        features = Path(shutil.copy(base["features"], tmp / "f.h5"))
        what = mutate_h5(features, data, ["features", "ids", "files", "labels", "label_names", "skipped", "row_crc"])
        assert_clean(faultkit.invoke("evaluate", base["run"], "--features", features, "-o", tmp / "e.json",
                                     "--device", "cpu", "--no-plots", "-q"), f"evaluate on features with {what}")


@FUZZ
@given(data=st.data())
def test_embeddings_file(base, data):
    with scratch() as tmp:
        embeddings = Path(shutil.copy(base["embeddings"], tmp / "e.h5"))
        what = mutate_h5(embeddings, data, ["embeddings", "labels"])
        assert_clean(faultkit.invoke("train", "--features", base["features"], "--embeddings", embeddings,
                                     "-o", tmp / "run", *faultkit.TRAIN, "--probe-epochs", "0", "-q"),
                     f"train on embeddings with {what}")


# ---------------------------------------------------------------------------------------------
# A run's config.json -> predict

@FUZZ
@given(data=st.data())
def test_run_config(base, data):
    doc = mutate_json(json.loads((base["run"] / "config.json").read_text()), data)
    image = min(base["images"].glob("*.png"))
    with scratch() as tmp:
        run = faultkit.copy_run(base["run"], tmp / "run")
        (run / "config.json").write_text(json.dumps(doc, indent=2))
        assert_clean(faultkit.invoke("predict", image, "--model", run, "--format", "jsonl", "--device", "cpu"),
                     f"predict with config {json.dumps(doc)[:300]}")


# ---------------------------------------------------------------------------------------------
# mlgraph.toml -> build-graph / embed in the project folder

TOML_KEYS = ["annotations", "format", "images", "vectors", "graph", "embeddings", "features", "runs",
             "allow_outside", "method", "adjacency", "tau", "self_weight", "seed", "lr", "oov", "unknown"]
TOML_VALUES = ['"x"', '""', '"images.json"', '"../../x"', '"/tmp"', '"a\\nb"', "1", "-1", "0", "nan", "inf", "-inf",
               "1e400", "true", "[1, 2]", "{ a = 1 }", "99999999999999999999", '"stats"', '"word"', '"binary"']
TOML_SECTIONS = ["[dataset]", "[artifacts]", "[embed]", "[build-graph]", "[train]", "[x]", "[dataset.sub]"]


def mutate_toml(text: str, data) -> bytes:
    raw = text.encode()
    family = data.draw(st.sampled_from(["byte", "line", "delete-line", "truncate", "section"]), label="family")
    if family == "byte":
        at = data.draw(st.integers(0, len(raw) - 1), label="at")
        return raw[:at] + bytes([data.draw(st.integers(0, 255), label="byte")]) + raw[at + 1:]
    if family == "truncate":
        return raw[:data.draw(st.integers(0, len(raw)), label="length")]
    lines = text.splitlines()
    at = data.draw(st.integers(0, len(lines)), label="line")
    if family == "delete-line":
        return "\n".join(lines[:at] + lines[at + 1:]).encode()
    if family == "section":
        new = [data.draw(st.sampled_from(TOML_SECTIONS), label="section")]
    else:
        new = []
    new.append(f"{data.draw(st.sampled_from(TOML_KEYS), label='key')} = {data.draw(st.sampled_from(TOML_VALUES), label='value')}")
    return "\n".join(lines[:at] + new + lines[at:]).encode()


@FUZZ
@given(data=st.data())
def test_project_file(base, data):
    with scratch() as tmp:
        shutil.copy(base["annotations"], tmp / "images.json")
        shutil.copytree(base["images"], tmp / "images")
        (tmp / "artifacts").mkdir()
        shutil.copy(base["graph"], tmp / "artifacts" / "graph.json")
        with inside(tmp):  # the project folder as the current folder, as `mlgraph demo` runs its steps
            faultkit.ok("init", ".", "--annotations", "images.json", "--images", "images")
            toml = mutate_toml((tmp / "mlgraph.toml").read_text(), data)
            (tmp / "mlgraph.toml").write_bytes(toml)
            command = data.draw(st.sampled_from([["build-graph", "-q"], ["embed", "--steps", "2", "--dim", "2", "-q"]]),
                                label="command")
            assert_clean(faultkit.invoke(*command), f"{command[0]} with mlgraph.toml {toml[-400:]!r}")


# ---------------------------------------------------------------------------------------------
# TFRecord bytes -> import-yt8m

def mutate_records(raw: bytes, data) -> bytes:
    family = data.draw(st.sampled_from(["flip", "truncate", "length", "payload", "payload-bits", "append"]),
                       label="family")
    if family == "flip":
        at = data.draw(st.integers(0, len(raw) - 1), label="at")
        return raw[:at] + bytes([raw[at] ^ data.draw(st.integers(1, 255), label="xor")]) + raw[at + 1:]
    if family == "truncate":
        return raw[:data.draw(st.integers(0, len(raw) - 1), label="length")]
    if family == "length":  # a header with a valid checksum claiming any length, then a little data
        claim = data.draw(st.sampled_from([0, 1, 7, 2**20, 2**31, 2**40, 2**60, 2**64 - 1]), label="claim")
        return raw + faultkit.header_claiming(claim) + bytes(data.draw(st.integers(0, 40), label="tail"))
    if family == "payload":  # framing and checksums valid; the protobuf inside is anything
        return raw + faultkit.frame(data.draw(st.binary(max_size=200), label="payload"))
    if family == "payload-bits":  # a real record damaged, then framed again with valid checksums
        record = bytearray(faultkit.video_example("z", [1, 2]))
        for _ in range(data.draw(st.integers(1, 4), label="flips")):
            at = data.draw(st.integers(0, len(record) - 1), label="at")
            record[at] ^= data.draw(st.integers(1, 255), label="xor")
        return raw + faultkit.frame(bytes(record))
    return raw + data.draw(st.binary(min_size=1, max_size=64), label="garbage")


@FUZZ
@given(data=st.data())
def test_tfrecord_bytes(base, data):
    raw = mutate_records(base["records"].read_bytes(), data)
    with scratch() as tmp:
        records = tmp / "r.tfrecord"
        records.write_bytes(raw)
        assert_clean(faultkit.invoke("import-yt8m", records, "-o", tmp / "f.h5", "-q"),
                     f"import-yt8m on {len(raw)} bytes ending {raw[-60:]!r}")
