"""Video files (issue 12): sampling, decoding and bad files (core/media/videos.py), extraction into the
video features format (`mlgraph extract CLIPS/`), resume, and `mlgraph predict CLIP.mp4` per clip,
per segment and with --explain strips. Clips are a few 32-48 px frames written with PyAV here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import one_line_error
from mlgraph_cli.errors import MlgraphError

pytest.importorskip("av")

COLORS = {"red": (230, 30, 30), "blue": (30, 30, 230)}
EXTRACT = ("--backbone", "resnet18", "--weights", "none", "--image-size", "32", "--workers", "0", "-q")


def _invoke(*args):
    from mlgraph_cli.cli.app import app

    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})


def _ok(*args):
    result = _invoke(*args)
    assert result.exit_code == 0, (args, result.output)
    return result


def plain(n: int, value: int = 90, h: int = 32, w: int = 32) -> np.ndarray:
    return np.full((n, h, w, 3), value, np.uint8)


def labelled_clip(path: Path, n: int, labels: list[str], rng) -> Path:
    """``n`` grey frames at 4 fps; each label's colour fills the frame for two frames."""
    from clipkit import write_clip

    frames = plain(n, 90)
    for name in labels:
        s = int(rng.integers(0, n - 1))
        frames[s:s + 2] = COLORS[name]
    return write_clip(path, frames, fps=4)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """A folder of 8 labelled clips (8 or 4 frames) and its labels.csv."""
    root = tmp_path_factory.mktemp("clips")
    folder = root / "clips"
    folder.mkdir()
    rng = np.random.default_rng(0)
    rows = ["path,labels"]
    for i in range(8):
        labels = [["red"], ["blue"], ["red", "blue"]][i % 3]
        labelled_clip(folder / f"c{i}.mp4", 8 if i % 2 == 0 else 4, labels, rng)
        rows.append(f"c{i}.mp4,{';'.join(labels)}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    return folder


@pytest.fixture(scope="module")
def features(clips, tmp_path_factory):
    out = tmp_path_factory.mktemp("feat") / "clips.h5"
    _ok("extract", clips, "--annotations", clips / "labels.csv", "-o", out, "--fps", "4", *EXTRACT)
    return out


# ---------------------------------------------------------------------------------------------
# Sampling and decoding

def test_sampling_times_fps_frames_and_cap():
    from mlgraph_cli.core.media.videos import Sampling

    assert np.allclose(Sampling(fps=2, min_frames=0).times(2.0), [0.25, 0.75, 1.25, 1.75])
    assert np.allclose(Sampling(frames=4).times(8.0), [1, 3, 5, 7])
    long = Sampling(fps=1, max_frames=5).times(3600.0)  # a one-hour clip: 5 frames over all of it
    assert len(long) == 5 and long[0] == 360 and long[-1] == 3240
    assert Sampling(frames=10, max_frames=3).capacity == 3


def test_the_floor_spreads_min_frames_over_a_short_clip_and_never_more_than_it_has():
    from mlgraph_cli.core.media.videos import Sampling

    floor = Sampling(fps=1, min_frames=16)
    assert np.allclose(floor.times(4.0, 8.0), (np.arange(16) + 0.5) * 0.25)  # 4 s: 16 frames, not 4
    assert np.allclose(floor.times(1.0, 8.0), (np.arange(8) + 0.5) / 8)  # 8 frames in all: each once
    assert np.allclose(floor.times(1.0), (np.arange(16) + 0.5) / 16)  # frame rate unknown: the floor as asked
    assert np.allclose(floor.times(30.0, 8.0), np.arange(30) + 0.5)  # longer than 16 s: 1 fps, as without it
    assert len(Sampling(fps=1, min_frames=16, max_frames=5).times(4.0, 8.0)) == 5  # the cap holds the floor too
    assert len(Sampling(frames=3, min_frames=16).times(4.0, 8.0)) == 3  # --frames has no floor
    assert np.allclose(Sampling(fps=1, min_frames=0).times(4.0, 8.0), [0.5, 1.5, 2.5, 3.5])  # 0: no floor


def test_sampling_defaults_are_extracts_and_old_files_read_without_a_floor():
    from mlgraph_cli.core.features.config import ExtractConfig
    from mlgraph_cli.core.media.videos import Sampling

    assert Sampling(**ExtractConfig().sampling_fields()) == Sampling()
    assert Sampling.from_dict({"fps": 1.0, "frames": None, "max_frames": 300}).min_frames == 0  # before the floor
    assert Sampling.from_dict(Sampling(fps=2, min_frames=8).to_dict()) == Sampling(fps=2, min_frames=8)
    with pytest.raises(MlgraphError, match="--min-frames -1: must be 0"):
        Sampling(min_frames=-1)


def test_variable_frame_rate_gives_the_frame_on_screen(tmp_path):
    from clipkit import write_clip
    from mlgraph_cli.core.media.videos import read_frames

    times = [0.0, 0.1, 0.2, 1.5, 1.6, 3.0]
    frames = np.stack([plain(1, 20 + 40 * i)[0] for i in range(len(times))])
    path = write_clip(tmp_path / "vfr.mp4", frames, fps=10, times=times)
    pictures, at = read_frames(path, np.array([0.15, 1.0, 1.55, 3.05]))
    got = [int(round(p[..., 0].mean())) for p in pictures]
    assert np.allclose(got, [60, 100, 140, 220], atol=8), got  # frames 1, 2, 3, 5
    assert np.allclose(at, [0.15, 1.0, 1.55, 3.05])


def test_rotated_phone_clip_is_turned_upright(tmp_path):
    from clipkit import write_clip
    from mlgraph_cli.core.media.videos import read_frames

    frames = plain(4, 40, h=32, w=48)
    frames[:, :, :16] = 240  # a bright left third
    path = write_clip(tmp_path / "phone.mp4", frames, rotation=90)
    pictures, _ = read_frames(path, np.array([0.1, 0.6]))
    assert pictures.shape == (2, 48, 32, 3)  # portrait
    # 90 degrees counter-clockwise: the left third of the stored picture is at the bottom
    assert pictures[0, -12:].mean() > 200 and pictures[0, :12].mean() < 80


def test_long_clip_seeks_to_the_sampled_frames(tmp_path):
    from clipkit import write_clip
    from mlgraph_cli.core.media.videos import read_frames

    frames = np.stack([plain(1, (i * 7) % 250)[0] for i in range(240)])  # 60 s at 4 fps
    path = write_clip(tmp_path / "long.mp4", frames, fps=4)
    pictures, _ = read_frames(path, np.array([5.0, 30.0, 59.0]))
    got = [int(round(p[..., 0].mean())) for p in pictures]
    assert np.allclose(got, [(20 * 7) % 250, (120 * 7) % 250, (236 * 7) % 250], atol=8), got


def _bad_files(folder: Path) -> dict[str, str]:
    """A corrupt file, a truncated one and an audio-only one; the phrase each is skipped with."""
    import av

    (folder / "corrupt.mp4").write_bytes(b"\x00\x01not a video" * 50)
    good = (folder / "c0.mp4").read_bytes()
    (folder / "truncated.mp4").write_bytes(good[: len(good) // 3])
    with av.open(str(folder / "sound.mkv"), "w") as c:
        s = c.add_stream("aac", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 8000
        for p in s.encode(frame):
            c.mux(p)
        for p in s.encode():
            c.mux(p)
    return {"corrupt.mp4": "corrupt or truncated", "truncated.mp4": "corrupt or truncated",
            "sound.mkv": "no video stream"}


def test_bad_files_are_skipped_with_reasons(clips, tmp_path):
    import shutil

    folder = tmp_path / "mixed"
    shutil.copytree(clips, folder)
    (folder / "labels.csv").unlink()
    expected = _bad_files(folder)
    out = tmp_path / "f.h5"
    result = _ok("extract", folder, "-o", out, "--fps", "4", *EXTRACT[:-1])
    assert "Skipped 3 unreadable clip(s)" in " ".join(result.output.split())
    report = dict(line.split("\t", 1) for line in (tmp_path / "f.h5.skipped.txt").read_text().splitlines())
    assert set(report) == set(expected)
    for name, phrase in expected.items():
        assert report[name].startswith(phrase), report[name]
    from mlgraph_cli.core.features.video_file import VideoFeatureFile

    vf = VideoFeatureFile(out)
    assert len(vf) == 8 and sorted(vf.ids) == sorted(f"c{i}.mp4" for i in range(8))
    vf.close()


# ---------------------------------------------------------------------------------------------
# Extraction

def test_extract_stores_frame_vectors_lengths_and_labels(features):
    from mlgraph_cli.core.features.video_file import load_video_features

    data = load_video_features(features)
    x, mask = data["features"], data["mask"]
    assert x.shape == (8, 512, 8)  # 8 clips, resnet18 512 channels, T = 8 frames (2 s at 4 fps)
    assert mask.sum(1).tolist() == [8, 4] * 4
    assert np.all(x[1, :, 4:] == 0) and np.abs(x[1, :, :4]).sum() > 0  # padding past the 4 real frames
    assert data["label_names"] == ["blue", "red"]
    assert data["labels"][2].tolist() == [1, 1] and data["labels"][0].tolist() == [0, 1]
    assert data["attrs"]["sampling"] == {"fps": 4.0, "frames": None, "max_frames": 300, "min_frames": 32}


@pytest.mark.parametrize("flags, frames, lengths", [
    (("--frames", "3"), 3, [3, 3]),
    (("--fps", "4", "--max-frames", "2"), 2, [2, 2]),
    (("--fps", "2", "--min-frames", "0"), 4, [4, 2]),
    (("--fps", "2", "--min-frames", "16"), 8, [8, 4]),  # a floor of 16: every frame of these 2 s and 1 s clips
    (("--min-frames", "6"), 6, [6, 4]),  # 6 spread over the 2 s clip; the 1 s clip has only 4
])
def test_frames_fps_and_max_frames_set_T(clips, tmp_path, flags, frames, lengths):
    from mlgraph_cli.core.features.video_file import VideoFeatureFile

    sub = tmp_path / "two.txt"
    sub.write_text(f"{clips / 'c0.mp4'}\n{clips / 'c1.mp4'}\n")
    _ok("extract", sub, "-o", tmp_path / "f.h5", *flags, *EXTRACT)
    vf = VideoFeatureFile(tmp_path / "f.h5")
    assert vf.frames == frames and vf.lengths.tolist() == lengths
    vf.close()


def test_extract_resumes_after_an_interruption(clips, tmp_path, monkeypatch):
    from mlgraph_cli.core.progress import NULL_PROGRESS
    from mlgraph_cli.core.features import sources
    from mlgraph_cli.core.features.video_file import load_video_features
    from mlgraph_cli.stages.extract import ExtractConfig, extract

    monkeypatch.setattr(sources, "CLIPS_PER_WRITE", 3)
    config = ExtractConfig(backbone="resnet18", weights="none", image_size=32, workers=0, fps=4)

    class Stop(type(NULL_PROGRESS)):
        """Ctrl-C after the second write (advance comes after each batch is on disk)."""

        writes = 0

        def advance(self, n=1):
            if n == 3:
                self.writes += 1
                if self.writes == 2:
                    raise KeyboardInterrupt

    out = tmp_path / "f.h5"
    with pytest.raises(KeyboardInterrupt):
        extract([clips], out, config, annotations=clips / "labels.csv", progress=Stop())
    assert not out.exists()
    resumed = extract([clips], out, config, annotations=clips / "labels.csv")
    assert resumed.resumed_from == 6 and resumed.rows == 8
    fresh = extract([clips], tmp_path / "g.h5", config, annotations=clips / "labels.csv")
    a, b = load_video_features(out), load_video_features(tmp_path / "g.h5")
    assert fresh.resumed_from == 0 and a["ids"] == b["ids"] and np.array_equal(a["features"], b["features"])


def test_extract_clips_on_default_options(clips, tmp_path):
    """No optional flag at all (workers, threads, backbone, sampling: every default), as docs/video.md
    shows it: a folder with its labels, and a single clip."""
    from mlgraph_cli.core.features.video_file import VideoFeatureFile

    _ok("extract", clips, "--annotations", clips / "labels.csv", "-o", tmp_path / "all.h5")
    _ok("extract", clips / "c0.mp4", "-o", tmp_path / "one.h5")
    every, one = VideoFeatureFile(tmp_path / "all.h5"), VideoFeatureFile(tmp_path / "one.h5")
    assert len(every) == 8 and every.label_names == ["blue", "red"] and every.feature_shape[0] == 1280
    # 2 s at 1 fps would be 2 frames; the default floor of 32 takes every one of the clip's 8
    assert len(one) == 1 and one.labels is None and one.lengths.tolist() == [8]
    every.close(), one.close()


def test_jsonl_annotations_label_the_clips(clips, tmp_path):
    from mlgraph_cli.core.features.video_file import load_video_features

    ann = tmp_path / "labels.jsonl"
    ann.write_text('{"image": "c0.mp4", "labels": ["red"]}\n{"image": "c3.mp4", "labels": ["blue", "red"]}\n')
    _ok("extract", clips, "--annotations", ann, "-o", tmp_path / "f.h5", "--frames", "2", *EXTRACT)
    data = load_video_features(tmp_path / "f.h5")
    assert data["ids"] == ["c0.mp4", "c3.mp4"] and data["labels"].tolist() == [[0, 1], [1, 1]]


def test_missing_pyav_is_one_line(clips, tmp_path, monkeypatch):
    import builtins

    real = builtins.__import__

    def no_av(name, *args, **kwargs):
        if name == "av":
            raise ImportError("no av")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_av)
    line = one_line_error(_invoke("extract", clips, "-o", tmp_path / "f.h5", *EXTRACT))
    assert 'install it with `pip install "mlgraph[video]"`' in line


# ---------------------------------------------------------------------------------------------
# Predict

@pytest.fixture(scope="module")
def run(features, clips, tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    _ok("build-graph", clips / "labels.csv", "-o", root / "graph.json")
    _ok("embed", root / "graph.json", "-o", root / "emb.h5", "--method", "onehot")
    _ok("train", "--features", features, "--embeddings", root / "emb.h5", "--head", "cma", "--epochs", "2",
        "--probe-epochs", "1", "--batch-size", "4", "--val-fraction", "0", "-o", root / "run", "--device", "cpu")
    return root / "run"


def test_predict_labels_each_clip_and_segment(run, clips, tmp_path):
    out = tmp_path / "p.jsonl"
    _ok("predict", clips / "c0.mp4", clips / "c1.mp4", "--model", run, "--threshold", "0", "--segments",
        "--segment-seconds", "1", "-o", out)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [Path(r["video"]).name for r in rows] == ["c0.mp4", "c1.mp4"]
    assert {x["label"] for x in rows[0]["labels"]} == {"blue", "red"}
    assert [(s["start"], s["end"]) for s in rows[0]["segments"]] == [(0.0, 1.0), (1.0, 2.0)]  # a 2 s clip
    assert [(s["start"], s["end"]) for s in rows[1]["segments"]] == [(0.0, 1.0)]
    scores = [[x["score"] for x in s["labels"]] for s in rows[0]["segments"]]
    assert all(0 <= v <= 1 for v in sum(scores, []))
    csv_text = _ok("predict", clips / "c0.mp4", "--model", run, "--segments", "--segment-seconds", "1",
                   "--threshold", "0", "--format", "csv", "-o", "-").stdout
    assert csv_text.splitlines()[0] == "video,start,end,rank,label,score" and ",1.0,2.0,1," in csv_text


def test_predict_explain_writes_png_strips(run, clips, tmp_path):
    from PIL import Image

    _ok("predict", clips, "--model", run, "--topk", "2", "--threshold", "0", "--explain", tmp_path / "why",
        "--format", "jsonl", "-o", tmp_path / "p.jsonl")
    pngs = sorted((tmp_path / "why").glob("*.png"))
    assert len(pngs) == 8
    with Image.open(pngs[0]) as im:
        im.verify()
    with Image.open(tmp_path / "why" / "c0.mp4.png") as im:  # 8 thumbnails in each of 2 label rows
        assert im.width > 8 * 32 and im.height > 2 * 64
    _ok("predict", clips, "--model", run, "--topk", "2", "--threshold", "0", "-o", tmp_path / "plain.jsonl")
    assert (tmp_path / "p.jsonl").read_text() == (tmp_path / "plain.jsonl").read_text()  # --explain changes no score


def test_predict_skips_an_unreadable_clip_and_refuses_an_image_run(run, clips, tmp_path):
    (tmp_path / "bad.mp4").write_bytes(b"junk" * 40)
    result = _ok("predict", clips / "c0.mp4", tmp_path / "bad.mp4", "--model", run)
    assert "bad.mp4: corrupt or truncated" in " ".join(result.stderr.split())
    import trainkit

    data = trainkit.toy_dataset(tmp_path / "img", n_train=8, n_val=4)
    _ok("train", "--features", data["features"], "--head", "gap", "--epochs", "1", "--val-fraction", "0",
        "-o", tmp_path / "imgrun", "--device", "cpu")
    line = one_line_error(_invoke("predict", clips / "c0.mp4", "--model", tmp_path / "imgrun"))
    assert "an image run, but the inputs are video files" in line


def test_a_clip_run_speaks_of_videos_and_video_files(run, clips, features, tmp_path):
    """A clip run's validation note counts videos and, with --val-features given, does not suggest
    it again; an image given to a clip run is answered with video files, not YouTube-8M records."""
    result = _ok("train", "--features", features, "--val-features", features, "--head", "gap", "--epochs", "1",
                 "--batch-size", "4", "-o", tmp_path / "r", "--device", "cpu")
    note = next(line for line in result.stderr.splitlines() if line.startswith("validation:"))
    assert note.startswith("validation: 8 video(s) from the validation file")
    assert note.endswith("too few videos for a reliable val mAP (put more into the --val-features file)")
    from PIL import Image

    Image.new("RGB", (32, 32)).save(tmp_path / "photo.png")
    line = one_line_error(_invoke("predict", tmp_path / "photo.png", "--model", run))
    assert line == (f"Error: {tmp_path / 'photo.png'}: images, but {run / 'config.json'} is a video run (pass video "
                    f"files (.mp4, .mkv, ...) or their folder: `mlgraph predict clips/ --model {run}`)")


def test_predict_samples_clips_as_the_training_file_was_sampled(run, tmp_path):
    """`predict` reuses the sampling stored with the training features (the floor included); a file
    from before the floor is read without one; with the file gone, extract's default at most T frames."""
    import shutil

    import h5py

    from mlgraph_cli.core.inference.clips import run_sampling
    from mlgraph_cli.core.media.videos import Sampling

    config = json.loads((run / "config.json").read_text())
    assert run_sampling(config) == Sampling(fps=4, min_frames=32)  # as `extract --fps 4` sampled (default floor)
    old = tmp_path / "old.h5"
    shutil.copy(config["data"]["features"], old)
    with h5py.File(old, "r+") as f:
        f.attrs["sampling"] = json.dumps({"fps": 4.0, "frames": None, "max_frames": 300})
    assert run_sampling(dict(config, data=dict(config["data"], features=str(old)))) == Sampling(fps=4, min_frames=0)
    gone = dict(config, data=dict(config["data"], features=str(tmp_path / "gone.h5")))
    assert run_sampling(gone) == Sampling(max_frames=8)  # the run's T
