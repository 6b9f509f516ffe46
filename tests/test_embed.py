"""`mlgraph embed` and `mlgraph inspect` in process: success paths, the project folder, every user mistake."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import one_line_error
from mlgraph_cli.core.embeddings.files import read_embeddings
from mlgraph_cli.core.graph.counts import build_label_graph
from mlgraph_cli.core.graph.files import write_graph
from test_embeddings import planted_graph
from test_wordvectors import write_vectors

FAST = ("--steps", "60")  # ASGE converges on the 12-label planted graph well before 500 steps


def flat(text: str) -> str:
    """Output with rich's line wrapping undone."""
    return " ".join(text.split())


@pytest.fixture
def graph_file(tmp_path) -> Path:
    path = tmp_path / "graph.json"
    write_graph(planted_graph(), path)
    return path


def vectors_for(tmp_path: Path, labels: list[str], kind: str = "glove-text", skip: tuple[str, ...] = ()) -> Path:
    rng = np.random.default_rng(0)
    words = {name: rng.normal(size=6).round(4).tolist() for name in labels if name not in skip}
    return write_vectors(tmp_path, kind, words)


LABELS = [f"label{k}" for k in range(12)]


# ---------------------------------------------------------------------------------------------
# Success paths

def test_default_asge_with_one_hot_inputs(cli, tmp_path, graph_file):
    out = tmp_path / "emb.h5"
    result = cli("embed", graph_file, "-o", out, "--dim", "16", *FAST)
    assert result.exit_code == 0, result.output
    assert f"12 labels x 16 in" in flat(result.stderr) and f"-> {out}" in flat(result.stderr)
    assert "Embeddings (asge; init onehot; cond-mean adjacency; 60 steps, loss" in flat(result.stderr)
    emb = read_embeddings(out)
    assert emb.labels == LABELS and emb.vectors.shape == (12, 16)
    a = emb.attrs
    assert a["schema"] == "mlgraph/embeddings@1" and a["method"] == "asge" and a["init"] == "onehot"
    assert a["adjacency"] == {"kind": "cond-mean", "params": {}, "self_weight": 3.0} and a["seed"] == 0
    assert a["graph"]["path"] == str(graph_file.resolve()) and len(a["graph"]["file_digest"]) == 64
    assert a["fit"]["steps"] == 60 and a["fit"]["weighting"] == "uniform"
    assert a["provenance"]["command"] == "mlgraph embed" and a["provenance"]["params"]["dim"] == 16


def test_same_seed_same_bytes(cli, tmp_path, graph_file):
    paths = [tmp_path / f"{name}.h5" for name in ("a", "b", "c")]
    for path, seed in zip(paths, ("1", "1", "2")):
        assert cli("embed", graph_file, "-o", path, "--dim", "8", "--seed", seed, *FAST).exit_code == 0
    a, b, c = (read_embeddings(p).vectors for p in paths)
    assert a.tobytes() == b.tobytes() and a.tobytes() != c.tobytes()


@pytest.mark.parametrize("method", ["asge", "spectral"])
def test_same_command_twice_writes_the_same_file_bytes(cli, tmp_path, graph_file, method):
    """No timestamp in the data or the attributes: the whole file is byte-identical."""
    import time

    out = tmp_path / "emb.h5"
    runs = []
    for _ in range(2):
        assert cli("embed", graph_file, "-o", out, "--dim", "8", "--method", method, *FAST).exit_code == 0
        runs.append((out.read_bytes(), read_embeddings(out).attrs))
        time.sleep(1.1)  # a timestamp with one-second resolution would now differ
    assert runs[0][1] == runs[1][1] and "created" not in runs[0][1]["provenance"]
    assert runs[0][0] == runs[1][0]


@pytest.mark.parametrize("kind", ["word2vec-text", "word2vec-binary", "glove-text", "kv"])
def test_init_from_each_vector_format(cli, tmp_path, graph_file, kind):
    vectors = vectors_for(tmp_path, LABELS, kind)
    trust = ("--trust-pickle",) if kind == "kv" else ()
    out = tmp_path / "emb.h5"
    result = cli("embed", graph_file, "-o", out, "--init", vectors, "--dim", "8", *trust, *FAST)
    assert result.exit_code == 0, result.output
    assert read_embeddings(out).attrs["init"] == str(vectors)
    word = tmp_path / "word.h5"
    assert cli("embed", graph_file, "-o", word, "--method", "word", "--init", vectors, *trust).exit_code == 0
    np.testing.assert_allclose(read_embeddings(word).vectors[3], np.random.default_rng(0).normal(size=(12, 6))
                               .round(4)[3], rtol=1e-5)


@pytest.mark.parametrize("method, width", [("onehot", 12), ("spectral", 12), ("deepwalk", 8)])
def test_baselines(cli, tmp_path, graph_file, method, width):
    out = tmp_path / f"{method}.h5"
    extra = ("--dim", "8") if method == "deepwalk" else ()
    result = cli("embed", graph_file, "-o", out, "--method", method, *extra)
    assert result.exit_code == 0, result.output
    emb = read_embeddings(out)
    assert emb.attrs["method"] == method and emb.vectors.shape == (12, width)
    if method == "spectral":
        assert "spectral embeddings have at most C = 12 dimensions; using 12, not 300" in flat(result.stderr)


def test_oov_random_warns_and_names_the_labels(cli, tmp_path, graph_file):
    vectors = vectors_for(tmp_path, LABELS, skip=("label3", "label7"))
    out = tmp_path / "emb.h5"
    result = cli("embed", graph_file, "-o", out, "--init", vectors, "--oov", "random", "--dim", "8", *FAST)
    assert result.exit_code == 0, result.output
    assert (f"Warning: {vectors}: no vector for 2 label(s), seeded random vectors used (--oov random): "
            "'label3', 'label7'") in flat(result.stderr)
    assert read_embeddings(out).attrs["oov_random"] == ["label3", "label7"]


def test_report_after_embedding(cli, tmp_path, graph_file):
    result = cli("embed", graph_file, "-o", tmp_path / "emb.h5", "--dim", "16", *FAST, "--report")
    assert result.exit_code == 0, result.output
    text = flat(result.stdout)
    assert "neighbour mAP 1.000 over 12 labels with a neighbour" in text
    assert "Nearest labels by cosine (* = graph neighbour)" in text and "*label1" in text


def test_inspect_json_and_table(cli, tmp_path, graph_file):
    emb = tmp_path / "emb.h5"
    assert cli("embed", graph_file, "-o", emb, "--method", "onehot").exit_code == 0
    result = cli("inspect", emb, "--json", "--topk", "2")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["graph"] == str(graph_file.resolve())  # the graph recorded in the file
    assert report["method"] == "onehot" and report["labels"] == 12 and report["dimension"] == 12
    assert report["neighbours"] == {"kind": "binary", "params": {"tau": 0.4}, "min_weight": 0.0}
    assert report["reference"]["kind"] == "cond-mean"
    assert report["spearman"] is None and 0 < report["map"] < 0.5  # one-hot: every pair ties at cosine 0
    assert len(report["nearest"]["label0"]) == 2
    table = cli("inspect", emb, "--graph", graph_file, "--limit", "3")
    assert table.exit_code == 0, table.output
    assert "... 9 more labels" in flat(table.stdout) and "label2" in table.stdout


def test_project_folder_no_arguments(cli, tmp_path, graph_file, monkeypatch):
    vectors = vectors_for(tmp_path, LABELS)
    assert cli("init", tmp_path, "--vectors", vectors.name).exit_code == 0
    (tmp_path / "artifacts").mkdir()
    graph_file.rename(tmp_path / "artifacts" / "graph.json")
    with open(tmp_path / "mlgraph.toml", "a") as fh:
        fh.write('\n[embed]\ndim = 8\nsteps = 40\nadjacency = "binary"\n')
    monkeypatch.chdir(tmp_path)
    result = cli("embed")
    assert result.exit_code == 0, result.output
    emb = read_embeddings(tmp_path / "artifacts" / "embeddings.h5")
    assert emb.dimension == 8 and emb.attrs["init"] == str(tmp_path / vectors.name)
    assert emb.attrs["adjacency"] == {"kind": "binary", "params": {"tau": 0.4}, "self_weight": 3.0} and emb.attrs["fit"]["steps"] == 40
    # a flag wins over the project; --init onehot overrides [dataset] vectors
    assert cli("embed", "--init", "onehot", "--dim", "4").exit_code == 0
    emb = read_embeddings(tmp_path / "artifacts" / "embeddings.h5")
    assert emb.dimension == 4 and emb.attrs["init"] == "onehot"
    inspected = cli("inspect", "--json")
    assert inspected.exit_code == 0, inspected.output
    assert json.loads(inspected.stdout)["reference"] == {"kind": "binary", "params": {"tau": 0.4}}


# ---------------------------------------------------------------------------------------------
# User mistakes: one red line, exit code 1

def test_no_graph_outside_a_project(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = one_line_error(cli("embed"))
    assert line.startswith("Error: no label graph given and no mlgraph.toml here (pass the path, or run `mlgraph init`")
    assert "make one with `mlgraph build-graph`" in line


def test_missing_graph(cli, tmp_path):
    line = one_line_error(cli("embed", tmp_path / "nope.json", "-o", tmp_path / "e.h5"))
    assert line == f"Error: {tmp_path / 'nope.json'}: no such file (make one with `mlgraph build-graph`)"


def test_embeddings_given_as_the_graph(cli, tmp_path, graph_file):
    emb = tmp_path / "emb.h5"
    assert cli("embed", graph_file, "-o", emb, "--method", "onehot").exit_code == 0
    line = one_line_error(cli("embed", emb, "-o", tmp_path / "again.h5"))
    assert line == (f"Error: {emb}: expected a graph file (mlgraph/graph@1) but found an embeddings file "
                    "(mlgraph/embeddings@1) (make one with `mlgraph build-graph`)")
    assert not (tmp_path / "again.h5").exists()


def test_json_that_is_not_a_graph(cli, tmp_path):
    path = tmp_path / "other.json"
    path.write_text('{"labels": ["a", "b"]}')
    line = one_line_error(cli("embed", path, "-o", tmp_path / "e.h5"))
    assert line == (f"Error: {path}: expected a graph file (mlgraph/graph@1) but found a file without an mlgraph "
                    "schema tag (make one with `mlgraph build-graph`)")


def test_graph_given_as_embeddings_to_inspect(cli, tmp_path, graph_file):
    line = one_line_error(cli("inspect", graph_file, "--graph", graph_file))
    assert line == (f"Error: {graph_file}: not an HDF5 file (expected a embeddings file, mlgraph/embeddings@1; "
                    "make one with `mlgraph embed`)")


def test_features_given_as_embeddings_to_inspect(cli, tmp_path, graph_file):
    features = tmp_path / "features.h5"
    with h5py.File(features, "w") as f:
        f.attrs["schema"] = "mlgraph/features@1"
    line = one_line_error(cli("inspect", features, "--graph", graph_file))
    assert line == (f"Error: {features}: expected a embeddings file (mlgraph/embeddings@1) but found a features file "
                    "(mlgraph/features@1) (make one with `mlgraph embed`)")


def test_inspect_against_a_graph_with_other_labels(cli, tmp_path, graph_file):
    emb = tmp_path / "emb.h5"
    assert cli("embed", graph_file, "-o", emb, "--method", "onehot").exit_code == 0
    other = tmp_path / "other.json"
    write_graph(planted_graph(clusters=2), other)
    line = one_line_error(cli("inspect", emb, "--graph", other))
    assert line == (f"Error: {emb}: label set differs from the data's (4 label(s) not expected: 'label10', 'label11', "
                    "'label8', 'label9') (re-make it from the same graph with `mlgraph embed`)")


def test_inspect_when_the_recorded_graph_is_gone(cli, tmp_path, graph_file, monkeypatch):
    emb = tmp_path / "emb.h5"
    assert cli("embed", graph_file, "-o", emb, "--method", "onehot").exit_code == 0
    graph_file.unlink()
    monkeypatch.chdir(tmp_path)
    line = one_line_error(cli("inspect", emb))
    assert line == (f"Error: {emb}: the graph it was made from is not found ({graph_file.resolve()}) "
                    "(pass --graph GRAPH, made by `mlgraph build-graph`)")


def test_oov_error_lists_missing_labels(cli, tmp_path, graph_file):
    vectors = vectors_for(tmp_path, LABELS, skip=("label3", "label7"))
    line = one_line_error(cli("embed", graph_file, "-o", tmp_path / "e.h5", "--init", vectors))
    assert line == (f"Error: {vectors}: no vector for 2 of 12 labels: 'label3', 'label7' (add them to the vectors "
                    "file, or pass --oov random for seeded random vectors)")


def test_unreadable_vectors(cli, tmp_path, graph_file):
    bad = tmp_path / "vectors.txt"
    bad.write_text("5 3\nlabel0 1 2\n")
    line = one_line_error(cli("embed", graph_file, "-o", tmp_path / "e.h5", "--init", bad))
    assert line.startswith(f"Error: {bad}: not a readable word2vec-text vectors file (")
    assert line.endswith("(pass word2vec text/binary, GloVe text or a gensim .kv file to --init)")
    line = one_line_error(cli("embed", graph_file, "-o", tmp_path / "e.h5", "--init", tmp_path / "none.txt"))
    assert line == (f"Error: {tmp_path / 'none.txt'}: no such word-vector file (pass word2vec text/binary, GloVe "
                    "text or a gensim .kv file to --init)")


def test_word_method_needs_vectors(cli, tmp_path, graph_file):
    line = one_line_error(cli("embed", graph_file, "-o", tmp_path / "e.h5", "--method", "word"))
    assert line == ("Error: --method word needs word vectors (pass --init VECTORS, or set `vectors` in the project's "
                    "[dataset])")


def test_dim_for_a_method_with_its_own_width(cli, tmp_path, graph_file):
    vectors = vectors_for(tmp_path, LABELS)  # 6-d
    line = one_line_error(cli("embed", graph_file, "-o", tmp_path / "e.h5", "--method", "word", "--init", vectors,
                              "--dim", "5"))
    assert line == ("Error: --dim 5: --method word keeps its own width (6); leave out --dim (and [embed] dim), "
                    "or use --method asge to learn embeddings of any width")


def test_onehot_narrower_than_the_labels_is_refused(cli, tmp_path, graph_file):
    line = one_line_error(cli("embed", graph_file, "-o", tmp_path / "e.h5", "--method", "onehot", "--dim", "5"))
    assert line == ("Error: --dim 5: --method onehot gives 12 orthonormal rows, which need at least 12 dimensions; "
                    "leave out --dim (and [embed] dim) for the identity, or pass --dim 12 or more")


def test_onehot_as_wide_as_asge_has_orthonormal_seeded_rows(cli, tmp_path, graph_file):
    paths = {}
    for name, extra in (("eye", ()), ("same", ("--dim", "12")), ("a", ("--dim", "30")), ("b", ("--dim", "30")),
                        ("c", ("--dim", "30", "--seed", "1"))):
        paths[name] = tmp_path / f"{name}.h5"
        assert cli("embed", graph_file, "-o", paths[name], "--method", "onehot", *extra).exit_code == 0
    vectors = {name: read_embeddings(p).vectors for name, p in paths.items()}
    assert np.array_equal(vectors["eye"], np.eye(12)) and np.array_equal(vectors["same"], np.eye(12))
    wide = vectors["a"]
    assert wide.shape == (12, 30)
    np.testing.assert_allclose(wide @ wide.T, np.eye(12), atol=1e-6)  # every pair at cosine 0, unit rows
    assert np.array_equal(wide, vectors["b"]) and not np.allclose(wide, vectors["c"])


def test_stdout_output_is_refused(cli, tmp_path, graph_file):
    line = one_line_error(cli("embed", graph_file, "-o", "-"))
    assert line == "Error: -o -: embeddings are an HDF5 file and cannot go to stdout (give a file name)"


def test_graph_with_one_label(cli, tmp_path):
    path = tmp_path / "one.json"
    write_graph(build_label_graph(np.ones((3, 1)), ["cat"]), path)
    line = one_line_error(cli("embed", path, "-o", tmp_path / "e.h5"))
    assert line == (f"Error: {path}: the graph has 1 label(s); embeddings need at least 2 (rebuild it from "
                    "annotations with more labels with `mlgraph build-graph`)")


def test_bad_project_setting(cli, tmp_path, graph_file, monkeypatch):
    assert cli("init", tmp_path).exit_code == 0
    with open(tmp_path / "mlgraph.toml", "a") as fh:
        fh.write('\n[embed]\nmethod = "glove"\n')
    monkeypatch.chdir(tmp_path)
    line = one_line_error(cli("embed", graph_file))
    assert line == (f"Error: {tmp_path / 'mlgraph.toml'}: bad [embed] setting: unknown method 'glove' (choose one of: "
                    "asge, word, deepwalk, spectral, onehot)")


def test_usage_errors_exit_2(cli, graph_file):
    assert cli("embed", graph_file, "--method", "glove").exit_code == 2
    assert cli("embed", graph_file, "--steps", "0").exit_code == 2


def test_cli_choices_match_the_library(cli):
    from mlgraph_cli.core.graph.adjacency import ADJACENCIES
    from mlgraph_cli.core.graph.config import ADJACENCY_KINDS

    assert ADJACENCY_KINDS == tuple(ADJACENCIES)  # the light tuple the CLI lists, and the functions
    for command, flag in (("embed", "--adjacency"), ("inspect", "--neighbours"), ("inspect", "--reference"),
                          ("train", "--adjacency")):
        result = cli(command, flag, "cosine")
        assert result.exit_code == 2 and "'cosine' is not one of 'cond-mean', 'binary'" in result.output, command


# ---------------------------------------------------------------------------------------------
# No input runs code: gensim's .kv format is a pickle

class _Payload:
    """Unpickling this writes a marker file: the proof that a load ran the file's code."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "ran"))


def crafted_pickle(path: Path, marker: Path) -> Path:
    import pickle

    path.write_bytes(pickle.dumps(_Payload(marker), protocol=4))
    return path


@pytest.mark.parametrize("name", ["evil.kv", "evil.txt", "evil.vec"])
def test_a_pickle_given_to_init_is_refused_and_never_run(cli, tmp_path, graph_file, name):
    marker = tmp_path / "payload-ran"
    evil = crafted_pickle(tmp_path / name, marker)
    line = one_line_error(cli("embed", graph_file, "-o", tmp_path / "e.h5", "--init", evil))
    assert line == (f"Error: {evil}: a gensim .kv file is a pickle, and loading it would run any code it holds "
                    "(convert it to word2vec text where it came from (KeyedVectors.save_word2vec_format), or pass "
                    "it to --init with --trust-pickle if you made it yourself)")
    assert not marker.exists() and not (tmp_path / "e.h5").exists()


def test_a_pickle_named_by_the_project_file_is_refused_even_with_the_trust_flag(cli, tmp_path, graph_file,
                                                                              monkeypatch):
    marker = tmp_path / "payload-ran"
    crafted_pickle(tmp_path / "vectors.kv", marker)
    assert cli("init", tmp_path, "--vectors", "vectors.kv").exit_code == 0
    (tmp_path / "artifacts").mkdir()
    graph_file.rename(tmp_path / "artifacts" / "graph.json")
    monkeypatch.chdir(tmp_path)
    line = one_line_error(cli("embed", "--trust-pickle"))
    assert "a gensim .kv file is a pickle" in line and "--trust-pickle" in line
    assert not marker.exists()


def test_trust_pickle_loads_a_kv_file_given_on_the_command_line(cli, tmp_path, graph_file):
    vectors = vectors_for(tmp_path, LABELS, "kv")
    out = tmp_path / "e.h5"
    assert cli("embed", graph_file, "-o", out, "--init", vectors, "--method", "word").exit_code == 1
    assert cli("embed", graph_file, "-o", out, "--init", vectors, "--method", "word",
               "--trust-pickle").exit_code == 0
    assert read_embeddings(out).vectors.shape == (12, 6)
