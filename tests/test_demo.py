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
