"""The features file: resumable appends, torn batches dropped, schema and completeness checks."""

from __future__ import annotations

import numpy as np
import pytest

from mlgraph_cli.core.features import FeatureWriter, open_features, partial_path
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
