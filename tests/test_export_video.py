"""`mlgraph export` of video runs: a run trained on MP4 clips exports with its backbone (frames + mask
in), a YouTube-8M run exports its head alone (frame features + mask in); onnxruntime gives the scores
of `mlgraph predict` on real clips, the card says how to sample them, and mistakes are one line.

One clip run is shared by the module: 6 clips of 32 px frames at 4 fps (2 s and 1 s), features from a
randomly initialised resnet18, a temporal CMA head trained for two epochs, exported once.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import one_line_error
from typer.testing import CliRunner

pytest.importorskip("av")
pytest.importorskip("onnxruntime")

COLORS = {"red": (230, 30, 30), "blue": (30, 30, 230)}


def _ok(*args):
    from mlgraph_cli.cli.app import app

    result = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})
    assert result.exit_code == 0, (args, result.output)
    return result


def _session(path):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def clip_run(tmp_path_factory):
    from clipkit import write_clip

    root = tmp_path_factory.mktemp("clip-export")
    folder = root / "clips"
    folder.mkdir()
    rng = np.random.default_rng(0)
    rows = ["path,labels"]
    for i in range(6):
        labels = [["red"], ["blue"], ["red", "blue"]][i % 3]
        frames = np.full((8 if i % 2 == 0 else 4, 32, 32, 3), 90, np.uint8)
        for name in labels:
            start = int(rng.integers(0, len(frames) - 1))
            frames[start:start + 2] = COLORS[name]
        write_clip(folder / f"c{i}.mp4", frames, fps=4)
        rows.append(f"c{i}.mp4,{';'.join(labels)}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    _ok("extract", folder, "--annotations", folder / "labels.csv", "-o", root / "clips.h5", "--fps", "4",
        "--backbone", "resnet18", "--weights", "none", "--image-size", "32", "--workers", "0", "-q")
    _ok("build-graph", folder / "labels.csv", "-o", root / "graph.json")
    _ok("embed", root / "graph.json", "-o", root / "emb.h5", "--method", "onehot")
    _ok("train", "--features", root / "clips.h5", "--embeddings", root / "emb.h5", "--head", "cma", "--epochs", "2",
        "--probe-epochs", "1", "--batch-size", "4", "--val-fraction", "0", "-o", root / "run", "--device", "cpu")
    result = _ok("export", root / "run", "-o", root / "clip.onnx")
    return {"root": root, "clips": folder, "run": root / "run", "onnx": root / "clip.onnx", "output": result.output}


def test_onnxruntime_on_sampled_frames_gives_the_scores_of_mlgraph_predict(clip_run):
    from mlgraph_cli.core.inference.export import clip_input, padded_batch
    from mlgraph_cli.core.media.videos import Sampling

    clips = [clip_run["clips"] / "c0.mp4", clip_run["clips"] / "c1.mp4"]  # 8 and 4 frames
    out = clip_run["root"] / "p.jsonl"
    _ok("predict", *clips, "--model", clip_run["run"], "--threshold", "0", "--format", "jsonl", "-o", out)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    card = json.loads(clip_run["onnx"].with_suffix(".json").read_text())
    sampling = Sampling.from_dict(card["sampling"])
    frames = [clip_input(path, card["image_size"], sampling)[0] for path in clips]  # (T_i, 3, S, S) each
    assert [f.shape for f in frames] == [(8, 3, 32, 32), (4, 3, 32, 32)] and frames[0].max() > 1
    session = _session(clip_run["onnx"])
    batch = padded_batch(frames, "frames")  # the 1-second clip padded to 8 frames, masked
    together = session.run(["probabilities"], batch)[0]  # (2, C)
    alone = session.run(["probabilities"], padded_batch(frames[1:], "frames"))[0]  # (1, C), T = 4
    assert together.shape == (2, len(card["labels"])) and np.allclose(together[1], alone[0], atol=1e-5)
    for row, got in zip(rows, together):
        expected = {item["label"]: item["score"] for item in row["labels"]}
        assert np.abs(got - np.array([expected[name] for name in card["labels"]])).max() <= 1e-3, row["video"]


def test_the_clip_card_says_how_to_sample_and_what_the_check_ran_on(clip_run):
    from mlgraph_cli.core.features.video_file import load_video_features

    card = json.loads(clip_run["onnx"].with_suffix(".json").read_text())
    attrs = load_video_features(clip_run["root"] / "clips.h5")["attrs"]
    assert card["modality"] == "video" and card["image_size"] == 32 and card["labels"] == ["blue", "red"]
    assert {k: card["sampling"][k] for k in attrs["sampling"]} == attrs["sampling"]  # as extract sampled
    assert "min_frames" in card["sampling"]["times"]
    assert card["input"]["shape"] == ["batch", "frames", 3, 32, 32] and card["input"]["range"] == [0, 255]
    assert card["mask"] == {"name": "mask", "dtype": "bool", "shape": ["batch", "frames"],
                            "meaning": "True for a real frame; pad shorter clips of a batch with frames under False"}
    assert card["preprocessing"]["before_graph"]["resize"] == "stretch"
    assert card["preprocessing"]["in_graph"]["mean"] == [0.485, 0.456, 0.406]  # resnet18's ImageNet statistics
    assert card["check"]["onnxruntime_max_abs_diff"] < 1e-4
    assert card["check"]["input"] == f"{clip_run['clips'] / 'c0.mp4'} (8 frames)"  # a real training clip
    assert "clips of 32 px frames" in clip_run["output"] and "on " in clip_run["output"]


def test_a_clip_run_refuses_another_image_size(cli, clip_run, tmp_path):
    line = one_line_error(cli("export", clip_run["run"], "-o", tmp_path / "m.onnx", "--image-size", "64"))
    assert line == (f"Error: --image-size: for image runs only; {clip_run['run']} is a video run, whose frames keep "
                    "the size they were extracted at (drop --image-size)")
    assert list(tmp_path.iterdir()) == []


def test_a_moved_training_set_is_checked_on_random_frames(clip_run, tmp_path):
    """The check needs no clip: with the training file gone it runs on random frames, and says so."""
    import shutil

    from mlgraph_cli.core.features.config import ExtractConfig

    run = tmp_path / "run"
    shutil.copytree(clip_run["run"], run)
    config = json.loads((run / "config.json").read_text())
    config["data"]["features"] = str(tmp_path / "gone.h5")
    (run / "config.json").write_text(json.dumps(config))
    _ok("export", run, "-o", tmp_path / "m.onnx")
    card = json.loads((tmp_path / "m.json").read_text())
    assert card["check"]["input"].startswith("random frames") and card["check"]["onnxruntime_max_abs_diff"] < 1e-4
    assert card["sampling"]["min_frames"] == ExtractConfig().min_frames  # extract's default: the best guess left


def test_a_youtube8m_run_exports_its_head_on_frame_features(tmp_path):
    """No backbone: the graph takes (N, T, D) frame features and the mask, and gives the torch head's scores."""
    import torch
    from videokit import make_world, sample_clips, write_clips

    from mlgraph_cli.core.embeddings.files import LabelEmbeddings, write_embeddings
    from mlgraph_cli.core.inference.export import padded_batch
    from mlgraph_cli.core.inference.run import load_run

    names = [f"l{i}" for i in range(4)]
    world = make_world(num_labels=4, groups=2, dim=12, context=1.0, seed=0)
    clips = sample_clips(world, 24, frames=(3, 6), visible=(1, 2), signal=1.5, noise=1.0, scene=1.0, p_label=0.5,
                         p_two_groups=0.3, seed=1)
    feats = write_clips(tmp_path / "train.h5", clips, names)
    write_embeddings(tmp_path / "e.h5", LabelEmbeddings(labels=names, vectors=np.eye(4, dtype=np.float32)))
    _ok("train", "--features", feats, "--embeddings", tmp_path / "e.h5", "--head", "cma", "--epochs", "1",
        "--probe-epochs", "1", "--val-fraction", "0", "-o", tmp_path / "run", "--device", "cpu")
    result = _ok("export", tmp_path / "run", "-o", tmp_path / "yt.onnx")
    card = json.loads((tmp_path / "yt.json").read_text())
    assert card["input"]["name"] == "features" and card["input"]["shape"] == ["batch", "frames", 12]
    assert card["image_size"] is None and "dequantization" in card["preprocessing"]["before_graph"]
    assert card["check"]["input"] == f"{feats} (its first 3 clips)" and "frame features" in result.output
    rows = [clips.features[i][:, clips.mask[i]].T.astype(np.float16).astype(np.float32) for i in (0, 5)]  # (T_i, D)
    got = _session(tmp_path / "yt.onnx").run(["probabilities"], padded_batch(rows, "features"))[0]
    head = load_run(tmp_path / "run").model.head
    with torch.no_grad():
        for row, probs in zip(rows, got):
            expected = torch.sigmoid(head(torch.from_numpy(row.T.copy())[None], None))[0].numpy()
            assert np.abs(probs - expected).max() < 1e-4
