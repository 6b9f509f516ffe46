"""`mlgraph fit`: annotations to a trained, evaluated run in one command (issue 20, item 1).

Tiny settings throughout: 64 px shape scenes through a random-init resnet18, two epochs, and 50
embedding steps from the folder's mlgraph.toml (the stages' own table, as a user would set it).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import trainkit
from conftest import one_line_error

TINY = ["--backbone", "resnet18", "--weights", "none", "--image-size", "64", "--epochs", "2"]


def _csv(folder: Path, name: str, rows: list[tuple[str, list[str]]], extra: dict[str, str] | None = None) -> Path:
    head = "path,labels" + (",split" if extra else "")
    lines = [head] + [f"{p},{';'.join(labels)}" + (f",{extra[p]}" if extra else "") for p, labels in rows]
    path = folder / name
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def scenes(tmp_path, monkeypatch):
    """36 shape scenes in photos/ with their labels as rows (path, labels), in a folder whose
    mlgraph.toml only shortens the embedding fit."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mlgraph.toml").write_text("[embed]\nsteps = 50\n")
    coco = json.loads(trainkit.make_images(tmp_path / "photos", n=36, size=64).read_text())
    names = {c["id"]: c["name"] for c in coco["categories"]}
    labels: dict[int, set[str]] = {}
    for a in coco["annotations"]:
        labels.setdefault(a["image_id"], set()).add(names[a["category_id"]])
    return [(im["file_name"], sorted(labels[im["id"]])) for im in coco["images"]]


def _fit(cli, *args):
    result = cli("fit", *args)
    assert result.exit_code == 0, result.output
    return result


def _commands(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith(("$ mlgraph", "# "))]


def test_fit_gives_the_run_the_stages_give_by_hand(cli, scenes, tmp_path):
    photos = tmp_path / "photos"
    train = _csv(photos, "train.csv", scenes[:24])
    val = _csv(photos, "val.csv", scenes[24:30])
    test = _csv(photos, "test.csv", scenes[30:])
    result = _fit(cli, train, "--val-annotations", val, "--test-annotations", test, *TINY, "-o", "fit")
    commands = _commands(result)
    assert [c.split()[2] for c in commands] == ["build-graph", "embed", "extract", "extract", "extract", "train",
                                                "evaluate"]
    assert commands[2] == (f"$ mlgraph extract {photos} -a {train} -o fit/features.h5 --backbone resnet18 --weights "
                           "none --image-size 64")
    fit = Path("fit")
    for name in ("graph.json", "embeddings.h5", "features.h5", "val-features.h5", "test-features.h5", "fit.json",
                 "metrics.json", "run/best.safetensors", "run/config.json"):
        assert (fit / name).exists(), name
    assert "test mAP" in result.stderr and "every stage's file is in fit" in result.stderr
    # the same stages by hand, with the same settings
    hand = Path("hand")
    for args in (["build-graph", train, "-o", hand / "graph.json"],
                 ["embed", hand / "graph.json", "-o", hand / "embeddings.h5"],
                 ["extract", photos, "-a", train, "-o", hand / "features.h5", *TINY[:6]],
                 ["extract", photos, "-a", val, "-o", hand / "val-features.h5", *TINY[:6]],
                 ["extract", photos, "-a", test, "-o", hand / "test-features.h5", *TINY[:6]],
                 ["train", "--features", hand / "features.h5", "--val-features", hand / "val-features.h5",
                  "--embeddings", hand / "embeddings.h5", "--graph", hand / "graph.json", "-o", hand / "run",
                  "--epochs", "2"],
                 ["evaluate", hand / "run", "--features", hand / "test-features.h5", "-o", hand / "metrics.json"]):
        assert cli(*args).exit_code == 0, args
    by_fit, by_hand = (json.loads((f / "metrics.json").read_text()) for f in (fit, hand))
    for key in ("mAP", "CF1", "OF1", "CP", "CR"):
        assert by_fit[key] == pytest.approx(by_hand[key]), key
    rows = [(fit / "run/metrics.jsonl").read_text().splitlines(), (hand / "run/metrics.jsonl").read_text().splitlines()]
    assert [json.loads(r)["val_loss"] for r in rows[0]] == pytest.approx([json.loads(r)["val_loss"] for r in rows[1]])


def test_an_interrupted_fit_resumes_and_a_larger_epoch_count_extends_it(cli, scenes, tmp_path, monkeypatch):
    from mlgraph_cli.core.features import extraction
    from mlgraph_cli.core.training import trainer as training

    (tmp_path / "mlgraph.toml").write_text("[embed]\nsteps = 50\n\n[extract]\nbatch_size = 8\n")
    labels = _csv(tmp_path / "photos", "labels.csv", scenes)
    args = [labels, *TINY, "--val", "0.2", "--test", "0.2"]

    def ctrl_c():
        raise KeyboardInterrupt

    # Ctrl-C in the first extract, after its first batch was written
    monkeypatch.setenv(extraction.PAUSE_ROWS_ENV, "8")
    monkeypatch.setattr(extraction, "_pause_for_test", ctrl_c)
    result = cli("fit", *args)
    assert result.exit_code == 130 and "Traceback" not in result.output
    monkeypatch.delenv(extraction.PAUSE_ROWS_ENV)
    # then Ctrl-C right after the first epoch was saved
    real = training._epoch_line

    def stop_after_one(row, epochs, label="epoch"):
        if label == "epoch" and row["epoch"] == 1:
            raise KeyboardInterrupt
        return real(row, epochs, label)

    monkeypatch.setattr(training, "_epoch_line", stop_after_one)
    result = cli("fit", *args)
    assert result.exit_code == 130 and "Traceback" not in result.output
    commands = _commands(result)
    assert all(c.endswith("# up to date") for c in commands[:3]), commands  # split, graph, embed
    assert "Resuming runs/fit/exp/features.h5: 8 of 22 images were done by an interrupted run" in result.stderr
    monkeypatch.setattr(training, "_epoch_line", real)
    result = _fit(cli, *args)
    commands = _commands(result)
    assert all(c.endswith("# up to date") for c in commands[:6]), commands  # split, graph, embed, 3 x extract
    assert commands[6] == "$ mlgraph train --resume runs/fit/exp/run" and commands[7].startswith("$ mlgraph evaluate")
    run = Path("runs/fit/exp/run")
    assert [json.loads(r)["epoch"] for r in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    # the run and its metrics are those of a fit never interrupted
    _fit(cli, *args, "-o", "straight")
    assert json.loads(Path("straight/metrics.json").read_text())["mAP"] == pytest.approx(
        json.loads(Path("runs/fit/exp/metrics.json").read_text())["mAP"])
    # a rerun with nothing new runs nothing (evaluating the run by hand changes nothing fit made);
    # one with more epochs extends the run and evaluates again
    assert cli("evaluate", run, "--features", "runs/fit/exp/test-features.h5").exit_code == 0
    result = _fit(cli, *args, "-q")
    assert all(c.endswith("# up to date") for c in _commands(result)) and "everything was up to date" in result.stderr
    result = _fit(cli, labels, *TINY[:-1], "3", "--val", "0.2", "--test", "0.2")
    commands = _commands(result)
    assert commands[6] == "$ mlgraph train --resume runs/fit/exp/run --epochs 3", commands
    assert [json.loads(r)["epoch"] for r in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]
    assert not commands[7].endswith("# up to date")  # the run changed: evaluated again


def test_a_split_by_fractions_is_seeded_and_a_split_column_wins(scenes, tmp_path):
    from mlgraph_cli.stages.fit.splits import draw_splits

    labels = _csv(tmp_path / "photos", "labels.csv", scenes)
    shares = {"val": 0.2, "test": 0.1}
    a = draw_splits(labels, tmp_path / "a", shares=shares, seed=0, column="split")
    b = draw_splits(labels, tmp_path / "b", shares=shares, seed=0, column="split")
    c = draw_splits(labels, tmp_path / "c", shares=shares, seed=1, column="split")
    assert a.counts == {"train": 25, "val": 7, "test": 4} and a.how == "drawn with seed 0"
    for split in ("train", "val", "test"):
        assert a.files[split].read_text() == b.files[split].read_text()
    assert a.files["val"].read_text() != c.files["val"].read_text()
    # every split file lists every label, and together they hold each image once
    heads = {a.files[s].read_text().splitlines()[0] for s in a.files}
    assert heads == {"path,blue-triangle,green-circle,red-square"}
    paths = [line.split(",")[0] for s in a.files for line in a.files[s].read_text().splitlines()[1:]]
    assert sorted(paths) == sorted(p for p, _ in scenes)
    # a split column names the splits; the test set it lacks is drawn from its training rows
    marks = {p: ("val" if k % 6 == 0 else "train") for k, (p, _) in enumerate(scenes)}
    column = _csv(tmp_path / "photos", "column.csv", scenes, extra=marks)
    d = draw_splits(column, tmp_path / "d", shares=shares, seed=0, column="split")
    assert d.counts["val"] == 6 and d.counts["test"] == 4 and d.how == "column 'split', drawn with seed 0"


def test_the_stages_read_the_split_files_the_way_fit_wrote_them(scenes, tmp_path):
    from mlgraph_cli.core.annotations import load_annotations
    from mlgraph_cli.stages.fit.splits import draw_splits

    rows = [(p, labels) for p, labels in scenes]
    rows[0] = (rows[0][0], [])  # an image without labels stays, as an all-negative row
    labels = _csv(tmp_path / "photos", "labels.csv", rows)
    drawn = draw_splits(labels, tmp_path / "s", shares={"val": 0.25}, seed=0, column="split")
    source = load_annotations(labels)
    for split, path in drawn.files.items():
        ann = load_annotations(path)
        assert ann.labels == source.labels
        for file, y in zip(ann.files, ann.dense()):
            assert (y == source.dense()[source.files.index(file)]).all()


@pytest.mark.parametrize("case", ["no-data", "other-data", "not-a-fit-folder", "bad-split-value", "too-few"])
def test_user_mistakes_are_one_line(cli, scenes, tmp_path, case):
    labels = _csv(tmp_path / "photos", "labels.csv", scenes)
    if case == "no-data":
        (tmp_path / "mlgraph.toml").unlink()
        line = one_line_error(cli("fit"))
        assert line == ("Error: give the training annotations, e.g. `mlgraph fit train.csv` (or run `mlgraph fit` in "
                        "a project folder made by `mlgraph init`)")
    elif case == "other-data":
        other = _csv(tmp_path / "photos", "other.csv", scenes[:30])
        Path("f").mkdir()
        Path("f/fit.json").write_text(json.dumps({"schema": "mlgraph/fit@1", "data": {"annotations": str(other)},
                                                  "steps": {}}))
        line = one_line_error(cli("fit", labels, "-o", "f"))
        assert line == (f"Error: f: holds a fit of other data ({other}) (choose another -o, or pass --force to "
                        "replace it)")
    elif case == "not-a-fit-folder":
        line = one_line_error(cli("fit", labels, "-o", "photos"))
        assert line == ("Error: photos: the folder is not empty and holds no fit.json, so it is not a fit folder "
                        "(choose another -o, or pass --force to write into it)")
    elif case == "bad-split-value":
        bad = _csv(tmp_path / "photos", "bad.csv", scenes, extra={p: "holdout" for p, _ in scenes})
        result = cli("fit", bad, *TINY)  # found while splitting: after its line
        assert result.exit_code == 1 and "Traceback" not in result.output
        line = result.stderr.strip().splitlines()[-1]
        assert line == f"Error: {bad}:2: the 'split' column says 'holdout' (write train, val or test there)"
    else:
        few = _csv(tmp_path / "photos", "few.csv", scenes[:3])
        result = cli("fit", few, "--val", "0.5", "--test", "0.4", *TINY)  # found while splitting: after its line
        assert result.exit_code == 1 and "Traceback" not in result.output
        line = result.stderr.strip().splitlines()[-1]
        assert line == (f"Error: {few}: 3 image(s) are too few to hold out 0.5 for val (pass a smaller --val, or "
                        "give the split as a file)")


def test_fit_in_a_project_folder_uses_its_dataset_and_artifacts(cli, scenes, tmp_path):
    photos = tmp_path / "photos"
    _csv(photos, "train.csv", scenes[:24])
    _csv(photos, "val.csv", scenes[24:30])
    _csv(photos, "test.csv", scenes[30:])
    (tmp_path / "mlgraph.toml").write_text(
        '[dataset]\nannotations = "photos/train.csv"\nimages = "photos"\nval_annotations = "photos/val.csv"\n'
        'test_annotations = "photos/test.csv"\n\n[embed]\nsteps = 50\n\n[train]\nepochs = 2\n\n'
        '[extract]\nbackbone = "resnet18"\nweights = "none"\nimage_size = 64\n')
    result = _fit(cli)
    for name in ("artifacts/graph.json", "artifacts/embeddings.h5", "artifacts/features.h5",
                 "artifacts/val-features.h5", "artifacts/test-features.h5", "artifacts/test-metrics.json",
                 "artifacts/fit.json", "runs/train/fit/best.safetensors"):
        assert (tmp_path / name).exists(), name
    assert "no test split" not in result.stderr
    # the project's own commands find what fit made
    assert cli("evaluate", "runs/train/fit", "-o", "-").exit_code == 0


def test_fit_passes_head_options_on_to_train(cli, scenes, tmp_path):
    from mlgraph_cli.stages.fit.plan import FitInputs, StageOptions, run_plan

    photos = tmp_path / "photos"
    train, val = _csv(photos, "train.csv", scenes[:24]), _csv(photos, "val.csv", scenes[24:])
    plan = run_plan(FitInputs(annotations=train, val_annotations=val),
                    StageOptions(head="query", head_options=["init=random", "width=16"]), {"test": 0.0},
                    output=tmp_path / "fit")
    argv = next(step.argv for step in plan.steps() if step.name == "train")
    at = argv.index("--head")
    assert argv[at:at + 6] == ["--head", "query", "--head-option", "init=random", "--head-option", "width=16"]
    line = one_line_error(cli("fit", train, "--head-option", "width", "-o", tmp_path / "bad"))
    assert line == "Error: --head-option width: expected KEY=VALUE (e.g. --head-option hidden=512)"
    assert not (tmp_path / "bad").exists()  # refused before any step
