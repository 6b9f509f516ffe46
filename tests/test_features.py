"""The features file: resumable appends, torn batches dropped, schema and completeness checks."""

from __future__ import annotations

import numpy as np
import pytest

from mlgraph_cli.core.features.file import FeatureWriter, open_features, partial_path
from mlgraph_cli.errors import InputError

SHAPES = {"features": (3, 2, 2)}


def _writer(dest, plan="p"):
    return FeatureWriter(dest, shapes=SHAPES, plan=plan, attrs={"backbone": "toy"}, label_names=["a", "b"])


def _batch(start, n):
    maps = np.arange(start, start + n, dtype=np.float32)[:, None, None, None] * np.ones((n, *SHAPES["features"]))
    ids = [f"img{i}" for i in range(start, start + n)]
    labels = np.array([[i % 2, 1 - i % 2] for i in range(start, start + n)], dtype=np.int8)
    return {"features": maps}, ids, [f"{i}.jpg" for i in ids], labels


def test_resume_continues_after_the_last_complete_batch(tmp_path):
    dest = tmp_path / "f.h5"
    w = _writer(dest)
    w.append(*_batch(0, 2), inputs_consumed=2)
    # A torn batch: rows written but the counters not advanced (the process died in between).
    ds = w.file["features"]
    ds.resize(3, axis=0)
    ds[2] = 99
    sk = w.file["skipped"]
    sk.resize(1, axis=0)
    sk[0] = "torn.jpg\tnot counted"
    w.close()
    assert not dest.exists() and partial_path(dest).exists()

    w = _writer(dest)
    assert w.resumed and w.rows_done == 2 and w.inputs_done == 2
    assert w.file["features"].shape[0] == 2  # the torn row is gone
    assert w.file["skipped"].shape[0] == 0  # and so is the torn skip entry
    w.append(*_batch(2, 2), inputs_consumed=3, skipped=["broken.jpg\tnot an image"])
    w.finish()
    ff = open_features(dest)
    assert ff.ids == ["img0", "img1", "img2", "img3"]
    assert ff.read([3, 1])[:, 0, 0, 0].tolist() == [3.0, 1.0]
    assert ff.labels.tolist() == [[0, 1], [1, 0], [0, 1], [1, 0]]
    assert ff.skipped == ["broken.jpg\tnot an image"]
    assert not partial_path(dest).exists()


def test_a_different_plan_starts_over(tmp_path):
    dest = tmp_path / "f.h5"
    w = _writer(dest, plan="one")
    w.append(*_batch(0, 2), inputs_consumed=2)
    w.close()
    w = _writer(dest, plan="two")
    assert not w.resumed and w.rows_done == 0
    w.close()


def test_an_incomplete_file_is_refused(tmp_path):
    dest = tmp_path / "f.h5"
    w = _writer(dest)
    w.append(*_batch(0, 1), inputs_consumed=1)
    w.close()
    partial_path(dest).rename(dest)  # as if someone renamed the partial file by hand
    with pytest.raises(InputError, match="incomplete .*`mlgraph extract`"):
        open_features(dest)


# ---------------------------------------------------------------------------------------------
# Checked on the way out: checksums, finite maps, labels in {-1, 0, 1}

def _toy(tmp_path, **changes):
    """A complete features file (64 x 4 x 4 maps: 2 KB a row), with ``changes`` applied to the data."""
    import trainkit

    data = trainkit.planted(16, channels=64, size=4)
    for key, value in changes.items():
        data[key] = value(data[key])
    return trainkit.write_features(tmp_path / "f.h5", data), trainkit.toy_dataset(tmp_path / "toy", n_train=8, n_val=8)


def _scramble(path, row, nbytes=2048):
    import h5py

    with h5py.File(path, "r") as h:
        info = h["features"].id.get_chunk_info_by_coord((row, 0, 0, 0))
    with open(path, "r+b") as fh:
        fh.seek(info.byte_offset + 100)
        fh.write(np.random.default_rng(0).integers(0, 256, nbytes, dtype=np.uint8).tobytes())


def test_scrambled_bytes_are_an_error_when_read(tmp_path, cli):
    path, toy = _toy(tmp_path)
    _scramble(path, 5)
    ff = open_features(path)
    assert ff.read(2).shape == (64, 4, 4)  # rows before the damage still read
    with pytest.raises(InputError) as caught:
        ff.read(slice(0, 16))
    message = str(caught.value)
    assert message.startswith(f"{path}: damaged: `features` near row 0 cannot be read back as written (")
    assert message.endswith("remake the file with `mlgraph extract`)")
    result = cli("train", "--features", path, "--embeddings", toy["embeddings"], "-o", tmp_path / "run",
                 "--epochs", "1", "--val-fraction", "0", "--device", "cpu")
    from conftest import one_line_error

    assert "damaged: `features`" in one_line_error(result)


def test_non_finite_maps_are_an_error_when_read(tmp_path):
    def poison(x):
        x[6, 3, 1, 2] = np.nan
        return x

    path, _ = _toy(tmp_path, x=poison)
    ff = open_features(path)
    ff.read([0, 1, 2])
    with pytest.raises(InputError, match=r"holds NaN or infinite values \(row 6; remake the file with `mlgraph extract`\)"):
        ff.read([4, 6, 7])


def test_labels_outside_minus_one_zero_one_are_refused(tmp_path):
    def bad(y):
        y[3, 1] = 7
        return y

    path, _ = _toy(tmp_path, y=bad)
    with pytest.raises(InputError) as caught:
        open_features(path)
    assert str(caught.value) == (f"{path}: labels must be -1, 0 or 1, but row 3 holds 7 (1 row(s) affected; "
                                 "remake the file with `mlgraph extract`)")


def test_video_files_name_their_own_maker(tmp_path):
    import h5py

    path, _ = _toy(tmp_path)
    with h5py.File(path, "a") as h:
        h.attrs["modality"] = "video"
        h["labels"][0, 0] = -2
    with pytest.raises(InputError, match="remake the file with `mlgraph import-yt8m`"):
        open_features(path)
