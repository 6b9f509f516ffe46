"""Helpers for the sharded-extraction tests: compare two features files dataset by dataset."""

from __future__ import annotations

import json

import numpy as np


def datasets_and_attrs(path, ignore=("provenance",)):
    """({name: array}, {attr: value}) of a features file, provenance left out (it names the command)."""
    import h5py

    with h5py.File(path, "r") as f:
        data = {name: f[name][()] for name in f}
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items() if k not in ignore}
    return data, attrs


def assert_same_file(a, b, ignore=("provenance",)) -> None:
    """Same datasets (names, dtypes, shapes, bytes) and the same attributes but ``ignore``."""
    da, aa = datasets_and_attrs(a, ignore)
    db, ab = datasets_and_attrs(b, ignore)
    assert sorted(da) == sorted(db)
    for name in da:
        assert da[name].dtype == db[name].dtype, name
        assert da[name].shape == db[name].shape, name
        if da[name].dtype == object:
            assert list(da[name].ravel()) == list(db[name].ravel()), name
        else:
            assert da[name].tobytes() == db[name].tobytes(), name
    assert json.dumps(aa, sort_keys=True, default=str) == json.dumps(ab, sort_keys=True, default=str)
    assert len(da["ids"]) > 0 and np.isfinite(da["features"].astype(np.float32)).all()
