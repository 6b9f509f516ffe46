"""YouTube-8M through the chain, in process: TFRecords -> import-yt8m -> build-graph --format yt8m ->
embeddings -> train --head cma -> evaluate (GAP@20, segment MAP@K) -> predict --segments; resume
of a video run; and every video / image mix-up as one line with exit code 1.

Tiny on purpose: 24 training and 12 rated validation clips of 6-10 frames written with G's
``encode_frame_record``; each carried label lights its own block of 64 rgb bytes in two frames,
so a head that learns anything separates the labels.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import trainkit
from conftest import one_line_error

# YouTube-8M class index -> name, as a vocabulary.csv gives them (index order != name order)
CLASSES = {0: "Game", 1: "Car", 2: "Music", 5: "Dance"}
RATED = (0, 1, 2)  # the classes with segment ratings (Segments rates a subset)


def _invoke(*args):
    from mlgraph_cli.cli.app import app

    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "100"})


def _ok(*args):
    result = _invoke(*args)
    assert result.exit_code == 0, (args, result.output)
    return result


def _said(result) -> str:
    """stderr with rich's line wrapping undone."""
    return " ".join(result.stderr.split())


def write_clips(path: Path, n: int, seed: int, *, rated: bool = False) -> Path:
    """``n`` frame-level records; with ``rated``, Segments ratings of RATED at frames 0 and 5."""
    from mlgraph_cli.core.media.yt8m.tfrecord import write_records
    from mlgraph_cli.core.media.yt8m.records import encode_frame_record

    rng = np.random.default_rng(seed)
    classes = list(CLASSES)
    records = []
    for i in range(n):
        t = int(rng.integers(6, 11))
        rgb = rng.integers(100, 156, (t, 1024)).astype(np.uint8)
        audio = rng.integers(100, 156, (t, 128)).astype(np.uint8)
        carried = [c for c in classes if rng.random() < 0.4] or [classes[int(rng.integers(len(classes)))]]
        first = {}
        for c in carried:
            s = int(rng.integers(0, t - 1))
            first[c] = s
            j = classes.index(c)
            rgb[s:s + 2, j * 64:(j + 1) * 64] = 250  # the label is visible in frames s, s + 1
        segments = None
        if rated:  # positive where the label is visible in the segment's frames
            segments = [(start, c, float(c in first and start <= first[c] < start + 5)) for c in RATED
                        for start in (0, 5) if start < t]
        records.append(encode_frame_record(f"v{seed}-{i:02d}", carried, rgb, audio, segments=segments))
    write_records(path, records)
    return path


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """TFRecords, their features, graph, embeddings and one cma run, shared by the module."""
    import torch

    from mlgraph_cli.cli.docs import command_names

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("video")
    (root / "shards").mkdir()
    write_clips(root / "shards" / "train0000.tfrecord", 12, seed=0)
    write_clips(root / "shards" / "train0001.tfrecord", 12, seed=1)
    val = write_clips(root / "val.tfrecord", 12, seed=2, rated=True)
    vocab = root / "vocabulary.csv"
    vocab.write_text("Index,TrainVideoCount,KnowledgeGraphId,Name\n"
                     + "".join(f"{i},9,/m/{i},{name}\n" for i, name in CLASSES.items()))
    train_glob = str(root / "shards" / "train*.tfrecord")
    _ok("import-yt8m", train_glob, "-o", root / "train.h5", "--vocabulary", vocab, "--max-frames", "10", "-q")
    _ok("import-yt8m", val, "-o", root / "val.h5", "--vocabulary", vocab, "--max-frames", "10", "-q")
    graph = _ok("build-graph", train_glob, "-o", root / "graph.json", "--vocabulary", vocab)
    emb = root / "emb.h5"
    if "embed" in command_names():
        _ok("embed", root / "graph.json", "-o", emb, "--method", "onehot")
    else:  # helper B's `mlgraph embed` is not registered yet
        trainkit.write_embeddings(emb, labels=sorted(CLASSES.values()), dim=8)
    run = root / "runs" / "cma"
    trained = _ok("train", "--features", root / "train.h5", "--val-features", root / "val.h5", "--embeddings", emb,
                  "--head", "cma", "--epochs", "3", "--probe-epochs", "2", "--batch-size", "8", "--lr", "0.01",
                  "-o", run, "--device", "cpu")
    yield {"root": root, "train_glob": train_glob, "val": val, "vocab": vocab, "train": root / "train.h5",
           "val_h5": root / "val.h5", "emb": emb, "run": run, "graph_result": graph, "train_result": trained}
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    """An image run (gap head on planted image features) and its features, for the mix-up errors."""
    root = tmp_path_factory.mktemp("image")
    data = trainkit.toy_dataset(root, n_train=16, n_val=8)
    _ok("train", "--features", data["features"], "--head", "gap", "--epochs", "1", "--val-fraction", "0",
        "-o", root / "run", "--device", "cpu")
    return {"run": root / "run", "features": data["features"]}


# ---------------------------------------------------------------------------------------------
# The chain

def test_build_graph_counts_the_video_labels(chain):
    from mlgraph_cli.core.graph.files import read_graph

    assert "Label graph (yt8m): 4 labels, 24 videos" in _said(chain["graph_result"])
    g = read_graph(chain["root"] / "graph.json")
    assert g.labels == sorted(CLASSES.values()) and g.num_images == 24
    assert g.meta["format"] == "yt8m" and g.meta["provenance"]["params"]["vocabulary"] == str(chain["vocab"])


def test_train_writes_a_video_run(chain):
    from mlgraph_cli.core.models import build_head

    run = chain["run"]
    config = json.loads((run / "config.json").read_text())
    assert config["modality"] == "video" and config["labels"] == list(CLASSES.values())
    head = config["head"]
    assert head["name"] == "video-cma" and head["in_channels"] == 1152 and head["mean_branch"] is True
    assert build_head(**head).num_labels == 4  # config.json alone rebuilds the head
    assert config["probe"]["epochs"] == 2 and config["probe"]["videos"] == 24
    assert config["data"]["frames"] == 10 and config["data"]["record_kind"] == "frame"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert max(r["val_mAP"] for r in rows) > 80  # the planted frames are easy; chance is about 40
    assert (run / "best.safetensors").is_file() and (run / "resume.pt").is_file()


def test_evaluate_reports_gap_and_segment_map(chain, tmp_path):
    out = tmp_path / "m.json"
    result = _ok("evaluate", chain["run"], "--features", chain["val_h5"], "-o", out, "--batch-size", "5")
    m = json.loads(out.read_text())
    assert m["modality"] == "video" and m["head"] == "video-cma" and m["num_images"] == 12
    for key in ("mAP", "GAP@20", "segment_MAP@100000", "CF1", "OF1"):
        assert 0 <= m[key] <= 100, key
    assert m["segment_top_k"] == 100000 and m["segments"]["classes"] == 3
    assert set(m["segments"]["per_label_ap"]) == {CLASSES[c] for c in RATED}
    assert "GAP@20" in result.stdout and "segment_MAP@100000" in result.stdout
    assert "on val.h5: 12 videos, 72 rated segments" in _said(result)
    # the report agrees with G's functions run on the whole file in memory
    import torch

    from mlgraph_cli.core.inference.run import load_run
    from mlgraph_cli.core.features.video_file import load_video_features
    from mlgraph_cli.core.evaluation.video_metrics import segment_map, video_metrics
    from mlgraph_cli.core.inference.frames import predict_videos, score_segments

    head = load_run(chain["run"]).model.head
    data = load_video_features(chain["val_h5"])
    with torch.no_grad():
        scores = predict_videos(head, data["features"], data["mask"], batch_size=5)  # the batches of evaluate
        seg = data["segments"]
        per_segment = score_segments(head, data["features"], data["mask"], seg.video, seg.start)
    reference = video_metrics(scores, data["labels"])
    assert m["GAP@20"] == pytest.approx(reference["GAP@20"]) and m["mAP"] == pytest.approx(reference["mAP"])
    rated = per_segment[np.arange(len(seg)), seg.label]
    expected = segment_map(rated, seg.label, seg.score > 0)["MAP@100000"]
    assert m["segment_MAP@100000"] == pytest.approx(expected)
    # a smaller K changes the key and can only lower the value
    _ok("evaluate", chain["run"], "--features", chain["val_h5"], "-o", out, "--top-k-segments", "1")
    small = json.loads(out.read_text())
    assert "segment_MAP@100000" not in small and small["segment_MAP@1"] <= 100


def test_predict_videos_with_segments(chain, tmp_path):
    out = tmp_path / "p.jsonl"
    _ok("predict", chain["val"], "--model", chain["run"], "--segments", "--topk", "2", "--threshold", "0", "-o", out)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["video"] for r in rows] == [f"v2-{i:02d}" for i in range(12)]
    for row in rows:
        assert len(row["labels"]) == 2 and row["labels"][0]["score"] >= row["labels"][1]["score"]
        assert row["labels"][0]["label"] in CLASSES.values()
        assert [s["start"] for s in row["segments"]] == [0, 5]  # 6-10 frames: two windows
        assert all(len(s["labels"]) == 2 for s in row["segments"])
    # the same scores as evaluating the imported file (same frames, same float16 rounding)
    from mlgraph_cli.core.inference.run import load_run
    from mlgraph_cli.core.features.video_file import load_video_features
    from mlgraph_cli.core.inference.frames import predict_videos

    data = load_video_features(chain["val_h5"])
    run = load_run(chain["run"])
    scores = predict_videos(run.model.head, data["features"], data["mask"])
    best = [run.label_names[k] for k in scores.argmax(1)]
    assert [r["labels"][0]["label"] for r in rows] == best
    assert [r["labels"][0]["score"] for r in rows] == pytest.approx(scores.max(1).tolist(), abs=1e-5)
    csv_text = _ok("predict", chain["val"], "--model", chain["run"], "--segments", "--topk", "1", "--threshold", "0",
                   "--format", "csv").stdout
    lines = csv_text.splitlines()
    assert lines[0] == "video,start,rank,label,score" and lines[1].startswith("v2-00,,1,")
    assert lines[2].startswith("v2-00,0,1,")
    table = _ok("predict", chain["val"], "--model", chain["run"], "--topk", "1")
    assert "v2-11" in table.stdout and "Labelled 12 video(s)" in _said(table)


def test_predict_skips_a_corrupt_record(chain, tmp_path):
    from mlgraph_cli.core.media.yt8m.tfrecord import frame_record
    from mlgraph_cli.core.media.yt8m.records import encode_frame_record

    rng = np.random.default_rng(5)
    records = [encode_frame_record(f"c{i}", [0], rng.integers(0, 256, (6, 1024)), rng.integers(0, 256, (6, 128)))
               for i in range(2)]
    raw = bytearray(frame_record(records[0]) + frame_record(records[1]))
    raw[len(frame_record(records[0])) + 100] ^= 0xFF  # inside the second record's data
    shard = tmp_path / "c.tfrecord"
    shard.write_bytes(bytes(raw))
    result = _ok("predict", shard, "--model", chain["run"], "--format", "jsonl", "--threshold", "0", "--topk", "1")
    assert [json.loads(line)["video"] for line in result.stdout.splitlines()] == ["c0"]
    assert f"Skipped 1 corrupt record(s): {shard}#1: data checksum mismatch" in _said(result)
    assert "Labelled 1 video(s)" in _said(result)


def test_resumed_video_run_matches_a_straight_one(chain, tmp_path):
    from mlgraph_cli.core.training.checkpoint import load_weights
    from mlgraph_cli.core.training.trainer import TrainConfig
    from mlgraph_cli.stages.train import TrainingInterrupted, resume_training, train
    from mlgraph_cli.stages.train.inputs import TrainInputs

    inputs = TrainInputs(features=chain["train"], embeddings=chain["emb"])
    config = TrainConfig(head="cma", epochs=3, probe_epochs=1, batch_size=8, lr=0.01, val_fraction=0.25, device="cpu")
    train(inputs, config, run_dir=tmp_path / "straight")

    def stop_after_first(row):
        if row["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted):
        train(inputs, config, run_dir=tmp_path / "stopped", on_epoch_end=stop_after_first)
    result = resume_training(tmp_path / "stopped", {"head": "cma"})
    assert result.start_epoch == 1 and result.epochs_done == 3
    a, _ = load_weights(tmp_path / "straight" / "last.safetensors", fix="")
    b, _ = load_weights(tmp_path / "stopped" / "last.safetensors", fix="")
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key].numpy(), b[key].numpy(), err_msg=key)


@pytest.mark.slow  # about 10-15 s of torchrun start-up; tests/test_train_ddp.py covers DDP by default
def test_two_gloo_processes_train_the_same_video_run(chain, tmp_path):
    """torchrun: each rank runs the same probe start, then DDP; the result matches one process.
    24 clips = 3 whole global batches of 8 (4 per rank), so no rank pads with repeats."""
    import os
    import subprocess
    import sys

    from mlgraph_cli.core.training.checkpoint import load_weights

    args = ["train", "--features", str(chain["train"]), "--embeddings", str(chain["emb"]), "--head", "cma",
            "--epochs", "2", "--probe-epochs", "2", "--batch-size", "8", "--lr", "0.01", "--val-fraction", "0",
            "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MLGRAPH_PROGRESS": "0"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                           "-m", "mlgraph_cli", *args, "-o", str(tmp_path / "ddp")],
                          capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _ok(*args, "-o", tmp_path / "one")
    a, _ = load_weights(tmp_path / "ddp" / "last.safetensors", fix="")
    b, _ = load_weights(tmp_path / "one" / "last.safetensors", fix="")
    for key in b:
        np.testing.assert_allclose(a[key].numpy(), b[key].numpy(), rtol=1e-4, atol=1e-5, err_msg=key)
    assert json.loads((tmp_path / "ddp" / "config.json").read_text())["probe"]["videos"] == 24


# ---------------------------------------------------------------------------------------------
# Mix-ups: one line naming both files, exit code 1

def test_evaluate_video_run_on_image_features(cli, chain, image_run):
    line = one_line_error(cli("evaluate", chain["run"], "--features", image_run["features"]))
    assert line == (f"Error: {image_run['features']} holds image features (from `mlgraph extract`), but "
                    f"{chain['run'] / 'config.json'} is a video run (evaluate it on video features from "
                    "`mlgraph import-yt8m`)")


def test_evaluate_image_run_on_video_features(cli, chain, image_run):
    line = one_line_error(cli("evaluate", image_run["run"], "--features", chain["val_h5"]))
    assert line == (f"Error: {chain['val_h5']} holds video features (from `mlgraph import-yt8m`), but "
                    f"{image_run['run'] / 'config.json'} is an image run (evaluate it on image features from "
                    "`mlgraph extract`)")


def test_evaluate_video_run_on_images(cli, chain, tmp_path):
    ann = trainkit.make_images(tmp_path / "images", 2)
    line = one_line_error(cli("evaluate", chain["run"], "--images", tmp_path / "images", "--annotations", ann))
    assert line == (f"Error: {chain['run'] / 'config.json'}: a video run, but --images/--annotations give images "
                    f"(evaluate it on video features from `mlgraph import-yt8m`: `mlgraph evaluate {chain['run']} "
                    "--features F.h5`)")


def test_predict_video_run_on_images(cli, chain, tmp_path):
    trainkit.make_images(tmp_path / "photos", 2)
    line = one_line_error(cli("predict", tmp_path / "photos", "--model", chain["run"]))
    assert line == (f"Error: {tmp_path / 'photos'}: images, but {chain['run'] / 'config.json'} is a video run (pass "
                    f"YouTube-8M TFRecords: `mlgraph predict videos.tfrecord --model {chain['run']}`)")


def test_predict_image_run_on_tfrecords(cli, chain, image_run):
    line = one_line_error(cli("predict", chain["val"], "--model", image_run["run"]))
    assert line == (f"Error: {chain['val']}: YouTube-8M TFRecords, but {image_run['run'] / 'config.json'} is an image "
                    "run (pass images, or a run trained on features from `mlgraph import-yt8m`)")


def test_predict_segments_need_videos(cli, image_run, tmp_path):
    trainkit.make_images(tmp_path / "photos", 1)
    line = one_line_error(cli("predict", tmp_path / "photos", "--model", image_run["run"], "--segments"))
    assert line == ("Error: --segments scores the segments of videos (pass video files or YouTube-8M TFRecords and "
                    "a video run, or drop --segments)")


def test_predict_video_run_refuses_explain(cli, chain, tmp_path):
    line = one_line_error(cli("predict", chain["val"], "--model", chain["run"], "--explain", tmp_path / "x"))
    assert line == f"Error: --explain: for image runs only; {chain['run']} is a video run (drop --explain)"


def test_predict_unreadable_records(cli, chain, tmp_path):
    bad = tmp_path / "bad.tfrecord"
    bad.write_text("video,labels\n")
    line = one_line_error(cli("predict", bad, "--model", chain["run"]))
    assert line.startswith(f"Error: {bad}#0: no readable YouTube-8M record among the inputs (")
    assert line.endswith("(pass YouTube-8M frame- or video-level TFRecords)")


def test_train_video_with_image_validation(cli, chain, image_run, tmp_path):
    line = one_line_error(cli("train", "--features", chain["train"], "--val-features", image_run["features"],
                              "--embeddings", chain["emb"], "-o", tmp_path / "r", "--device", "cpu"))
    assert line == (f"Error: {chain['train']} holds video features (from `mlgraph import-yt8m`) but "
                    f"{image_run['features']} holds image features (from `mlgraph extract`) (validate on data made "
                    "the same way as the training data)")
    assert not (tmp_path / "r" / "config.json").exists()


def test_train_image_head_on_video(cli, chain, tmp_path):
    line = one_line_error(cli("train", "--features", chain["train"], "--head", "mlgcn", "-o", tmp_path / "r",
                              "--device", "cpu"))
    assert line == (f"Error: --head mlgcn: not a head for video; {chain['train']} holds video features from "
                    "`mlgraph import-yt8m` (choose one of: cma, gap, gmp, frame-max, query, probe)")
