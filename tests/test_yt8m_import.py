"""`mlgraph import-yt8m`: TFRecords of both kinds -> the video features file; user mistakes."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from conftest import one_line_error
from mlgraph_cli.core.progress import ProgressHook
from mlgraph_cli.core.features.video_file import VideoFeatureFile, is_video_features, load_video_features
from mlgraph_cli.core.media.yt8m.tfrecord import frame_record, write_records
from mlgraph_cli.core.media.yt8m.records import encode_frame_record, encode_video_record


def _said(result) -> str:
    """stderr with rich's line wrapping undone."""
    return " ".join(result.stderr.split())


def _frame_file(path, rng, videos, segments=None):
    """videos: list of (id, labels, T)."""
    records = []
    for vid, labels, t in videos:
        rgb = rng.integers(0, 256, (t, 1024), dtype=np.uint8)
        audio = rng.integers(0, 256, (t, 128), dtype=np.uint8)
        records.append(encode_frame_record(vid, labels, rgb, audio, segments=(segments or {}).get(vid)))
    return write_records(path, records)


@pytest.fixture
def shards(tmp_path):
    rng = np.random.default_rng(0)
    _frame_file(tmp_path / "train0000.tfrecord", rng, [("a", [0, 2], 4), ("b", [2], 7)],
                segments={"a": [(0, 2, 1.0), (5, 0, 0.0)]})
    _frame_file(tmp_path / "train0001.tfrecord", rng, [("c", [1, 5], 3)])
    (tmp_path / "vocabulary.csv").write_text(
        "Index,TrainVideoCount,KnowledgeGraphId,Name\n0,9,/m/a,Game\n1,9,/m/b,Car\n2,9,/m/c,Music\n5,9,/m/d,Dance\n")
    return tmp_path


def test_import_frame_level_with_vocabulary(cli, shards):
    out = shards / "features.h5"
    result = cli("import-yt8m", str(shards / "train*.tfrecord"), "-o", out, "--vocabulary",
                 shards / "vocabulary.csv", "--max-frames", "6")
    assert result.exit_code == 0, result.output
    assert "Imported 3 frame-level videos (6 frames max, 4 labels, 2 rated segments)" in _said(result)
    assert "1 video(s) cut to 6 frames" in _said(result)
    assert is_video_features(out)
    with h5py.File(out) as f:
        assert f.attrs["schema"] == "mlgraph/features@1" and f.attrs["modality"] == "video"
        assert f["features"].shape == (3, 1152, 6, 1) and f["features"].dtype == np.float16
        assert f["lengths"][:].tolist() == [4, 6, 3]
        assert f["features"][0, :, 4:, 0].max() == 0  # padding
    data = load_video_features(out)
    assert data["ids"] == ["a", "b", "c"]
    assert data["label_names"] == ["Game", "Car", "Music", "Dance"]
    assert data["labels"].tolist() == [[1, 0, 1, 0], [0, 0, 1, 0], [0, 1, 0, 1]]
    assert data["mask"].sum(axis=1).tolist() == [4, 6, 3]
    assert data["features"].shape == (3, 1152, 6)
    seg = data["segments"]
    assert seg.video.tolist() == [0, 0] and seg.start.tolist() == [0, 5]
    assert seg.label.tolist() == [2, 0] and seg.score.tolist() == [1.0, 0.0]
    vf = VideoFeatureFile(out)
    assert vf.attrs["label_class_ids"] == [0, 1, 2, 5] and vf.files[0].endswith("train0000.tfrecord#0")


def test_import_video_level_and_segment_classes(cli, tmp_path):
    rng = np.random.default_rng(1)
    write_records(tmp_path / "v.tfrecord", [
        encode_video_record(f"v{i}", [i % 3, 7], rng.normal(size=1024), rng.normal(size=128), id_key="video_id")
        for i in range(5)])
    (tmp_path / "segment_label_ids.csv").write_text("Index\n7\n1\n")
    out = tmp_path / "video.h5"
    result = cli("import-yt8m", tmp_path / "v.tfrecord", "-o", out, "--segment-classes",
                 tmp_path / "segment_label_ids.csv", "-q")
    assert result.exit_code == 0, result.output
    data = load_video_features(out)
    assert data["features"].shape == (5, 1152, 1) and data["mask"].all()
    assert data["label_names"] == ["1", "7"]
    assert data["labels"][:, 1].tolist() == [1] * 5 and data["labels"][:, 0].tolist() == [0, 1, 0, 0, 1]
    assert "3 label(s) and 0 segment rating(s) outside the label columns dropped" in _said(result)


def test_corrupt_record_is_reported_and_skipped(cli, tmp_path):
    rng = np.random.default_rng(2)
    recs = [encode_frame_record(f"v{i}", [0], rng.integers(0, 256, (3, 1024)), rng.integers(0, 256, (3, 128)))
            for i in range(3)]
    raw = bytearray(b"".join(frame_record(r) for r in recs))
    raw[len(frame_record(recs[0])) + 100] ^= 0xFF
    (tmp_path / "bad.tfrecord").write_bytes(bytes(raw))
    out = tmp_path / "f.h5"
    result = cli("import-yt8m", tmp_path / "bad.tfrecord", "-o", out)
    assert result.exit_code == 0, result.output
    assert f"1 corrupt record(s) skipped (first: {tmp_path / 'bad.tfrecord'}#1: data checksum mismatch" in _said(result)
    data = load_video_features(out)
    assert data["ids"] == ["v0", "v2"]
    with h5py.File(out) as f:
        skipped = f["skipped"].asstr()[:].tolist()
        assert skipped == [f"{tmp_path / 'bad.tfrecord'}#1\tdata checksum mismatch (corrupt record)"]
        assert f.attrs["bad_records"] == 1


def test_interrupted_import_resumes(tmp_path, shards):
    from mlgraph_cli.stages.import_yt8m import ImportYt8mConfig, import_yt8m

    class StopAfter(ProgressHook):
        def __init__(self, n):
            self.n = n

        def advance(self, n=1):
            self.n -= n
            if self.n < 0:
                raise KeyboardInterrupt

    out = tmp_path / "r.h5"
    config = ImportYt8mConfig(batch_size=1, max_frames=8)
    with pytest.raises(KeyboardInterrupt):
        import_yt8m([shards / "train*.tfrecord"], out, config, progress=StopAfter(2 + 2))  # 2 files scanned, 2 videos
    assert not out.exists() and (tmp_path / ".r.h5.partial").exists()
    result = import_yt8m([shards / "train*.tfrecord"], out, config)
    assert result.resumed and result.videos == 3
    again = load_video_features(out)
    fresh = import_yt8m([shards / "train*.tfrecord"], tmp_path / "fresh.h5", config)
    assert not fresh.resumed
    reference = load_video_features(tmp_path / "fresh.h5")
    assert again["ids"] == reference["ids"] == ["a", "b", "c"]
    np.testing.assert_array_equal(again["features"], reference["features"])
    np.testing.assert_array_equal(again["segments"].video, reference["segments"].video)


def test_project_folder_default_output(cli, shards, monkeypatch):
    (shards / "mlgraph.toml").write_text('[import-yt8m]\nmax_frames = 5\nvocabulary = "vocabulary.csv"\n')
    monkeypatch.chdir(shards)
    result = cli("import-yt8m", "train0000.tfrecord")
    assert result.exit_code == 0, result.output
    data = load_video_features(shards / "artifacts" / "features.h5")
    assert data["features"].shape == (2, 1152, 5) and data["label_names"][0] == "Game"


def test_error_pattern_matches_nothing(cli, tmp_path):
    line = one_line_error(cli("import-yt8m", str(tmp_path / "nothing*.tfrecord"), "-o", tmp_path / "f.h5"))
    pattern = tmp_path / "nothing*.tfrecord"
    assert line == f"Error: {pattern}: no file matches this pattern (check the pattern and quote it)"


def test_error_missing_file(cli, tmp_path):
    line = one_line_error(cli("import-yt8m", tmp_path / "gone.tfrecord", "-o", tmp_path / "f.h5"))
    assert line == (f"Error: {tmp_path / 'gone.tfrecord'}: no such file "
                    "(pass YouTube-8M frame- or video-level TFRecords)")


def test_error_not_a_tfrecord(cli, tmp_path):
    (tmp_path / "labels.tfrecord").write_text("video,labels\nabc,1\n")
    line = one_line_error(cli("import-yt8m", tmp_path / "labels.tfrecord", "-o", tmp_path / "f.h5"))
    assert line.startswith(f"Error: {tmp_path / 'labels.tfrecord'}: no readable YouTube-8M record "
                           "(length checksum mismatch (not a TFRecord file, or corrupt)")
    assert line.endswith("(pass YouTube-8M frame- or video-level TFRecords)")
    assert not (tmp_path / "f.h5").exists()


def test_error_mixed_record_kinds(cli, tmp_path):
    rng = np.random.default_rng(3)
    _frame_file(tmp_path / "a.tfrecord", rng, [("a", [0], 2)])
    write_records(tmp_path / "b.tfrecord", [encode_video_record("b", [0], np.zeros(1024), np.zeros(128))])
    line = one_line_error(cli("import-yt8m", tmp_path / "a.tfrecord", tmp_path / "b.tfrecord", "-o", tmp_path / "f.h5"))
    assert line == (f"Error: {tmp_path / 'b.tfrecord'}: video-level records, but {tmp_path / 'a.tfrecord'} holds "
                    "frame-level ones (import frame-level and video-level files separately)")


def test_error_bad_vocabulary(cli, shards):
    (shards / "vocab.csv").write_text("Index,Count\n0,5\n")
    line = one_line_error(cli("import-yt8m", shards / "train0000.tfrecord", "-o", shards / "f.h5",
                              "--vocabulary", shards / "vocab.csv"))
    assert line.startswith(f"Error: {shards / 'vocab.csv'}:1: the header has no Name column "
                           "(use YouTube-8M's vocabulary.csv")


def test_error_segment_class_not_in_vocabulary(cli, shards):
    (shards / "seg.csv").write_text("Index\n0\n44\n")
    line = one_line_error(cli("import-yt8m", shards / "train0000.tfrecord", "-o", shards / "f.h5",
                              "--vocabulary", shards / "vocabulary.csv", "--segment-classes", shards / "seg.csv"))
    assert line == (f"Error: {shards / 'vocabulary.csv'}: 1 segment class(es) are not in the vocabulary (first: 44) "
                    "(pass the vocabulary.csv that goes with segment_label_ids.csv)")


def test_error_output_is_a_folder(cli, shards):
    line = one_line_error(cli("import-yt8m", shards / "train0000.tfrecord", "-o", shards))
    assert line == f"Error: {shards}: is a folder (pass a file name, e.g. -o {shards / 'features.h5'})"


def test_error_bad_project_setting(cli, shards, monkeypatch):
    (shards / "mlgraph.toml").write_text("[import-yt8m]\nmax_frames = 0\n")
    monkeypatch.chdir(shards)
    line = one_line_error(cli("import-yt8m", "train0000.tfrecord"))
    assert "bad [import-yt8m] setting: max_frames must be a whole number >= 1, not 0" in line


def test_usage_error_max_frames(cli, shards):
    assert cli("import-yt8m", shards / "train0000.tfrecord", "--max-frames", "0").exit_code == 2
