"""`mlgraph demo`: the whole pipeline on generated scenes, at a tiny size."""

from __future__ import annotations

import json

from conftest import one_line_error


def test_demo_runs_every_stage_and_leaves_a_project(cli, tmp_path):
    folder = tmp_path / "demo"
    result = cli("demo", folder, "--train", 24, "--val", 12, "--test", 12, "--epochs", 1)
    assert result.exit_code == 0, result.output
    for command in ("make-dataset", "build-graph", "embed", "extract --split test", "train", "evaluate", "predict"):
        assert f"$ mlgraph {command}" in result.stderr
    assert (folder / "mlgraph.toml").is_file()
    for name in ("graph.json", "embeddings.h5", "features.h5", "val-features.h5", "test-features.h5"):
        assert (folder / "artifacts" / name).is_file(), name
    metrics = json.loads((folder / "artifacts" / "test-metrics.json").read_text(encoding="utf-8"))
    assert 0 <= metrics["mAP"] <= 100
    assert (folder / "runs" / "train" / "demo" / "config.json").is_file()
    assert len(list((folder / "explain").glob("*.png"))) == 4
    assert "Demo finished" in result.stderr

    again = cli("demo", folder, "--train", 24, "--val", 12, "--test", 12, "--epochs", 1)
    line = one_line_error(again)
    assert "exists and is not empty" in line and "--force" in line

    # `make demo` runs `mlgraph demo --force` over an earlier demo: that replaces it ...
    small = ("--train", 24, "--val", 12, "--test", 12, "--epochs", 1)
    (folder / "runs" / "train" / "mine").mkdir()
    (folder / "runs" / "train" / "mine" / "config.json").write_text("{}")
    (folder / "notes.md").write_text("mine")
    line = one_line_error(cli("demo", folder, *small, "--force"))
    assert line == (f"Error: {folder}: --force would also delete 2 file(s) that the demo did not make or that were "
                    "changed since: notes.md, runs/train/mine/ (1 file) (move them out of the folder, or name "
                    "another folder)")
    assert (folder / "notes.md").is_file() and (folder / "runs" / "train" / "mine" / "config.json").is_file()
    # ... and once only the demo's own files are there, --force replaces them all
    (folder / "notes.md").unlink()
    (folder / "runs" / "train" / "mine" / "config.json").unlink()
    result = cli("demo", folder, *small, "--force")
    assert result.exit_code == 0, result.output
    assert "Demo finished" in result.stderr and (folder / "runs" / "train" / "demo" / "config.json").is_file()
