"""The ``mlgraph/embeddings@1`` file: one vector per label, in the graph's label order.

Datasets ``labels`` (C, utf-8) and ``embeddings`` (C x d float32); attributes ``schema``,
``method``, ``dimension``, ``labels_digest``, ``adjacency`` ({kind, params}), ``graph`` ({path,
labels_digest, file_digest}), ``seed``, ``init``, ``fit``, ``provenance`` (docs/embed.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Sequence

import h5py
import numpy as np

from mlgraph_cli.core.io.outputs import write_output
from mlgraph_cli.core.io.hdf5 import FLOATS, check_finite, h5_dataset, h5_open, h5_read_attrs, h5_strings, \
    h5_write_attrs, h5_write_strings
from mlgraph_cli.core.io.artifacts import labels_digest, maker, schema_tag
from mlgraph_cli.errors import MismatchError, input_error


@dataclass
class LabelEmbeddings:
    """One vector per label. labels: C names (the label order). vectors: (C, d) float32."""

    labels: list[str]
    vectors: np.ndarray
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def dimension(self) -> int:
        return int(self.vectors.shape[1])

    def aligned_to(self, labels: Sequence[str], *, source: str | os.PathLike = "embeddings") -> "LabelEmbeddings":
        """The same embeddings in the order of ``labels``; a one-line error if the label sets differ."""
        labels = list(labels)
        if labels == self.labels:
            return self
        index = {name: i for i, name in enumerate(self.labels)}
        absent = [name for name in labels if name not in index]
        if absent or len(labels) != len(self.labels):
            extra = sorted(set(self.labels) - set(labels))
            parts = []
            if absent:
                parts.append(f"no vector for {len(absent)} label(s): {', '.join(map(repr, absent[:5]))}")
            if extra:
                parts.append(f"{len(extra)} label(s) not expected: {', '.join(map(repr, extra[:5]))}")
            raise MismatchError(f"{os.fspath(source)}: label set differs from the data's ({'; '.join(parts)}) "
                                f"(re-make it from the same graph with `{maker('embeddings')}`)")
        order = np.array([index[name] for name in labels])
        return LabelEmbeddings(labels=labels, vectors=self.vectors[order], attrs=dict(self.attrs))


def write_embeddings(path: str | os.PathLike, emb: LabelEmbeddings,
                     inputs: Sequence[str | os.PathLike | None] = ()) -> None:
    """Write ``emb`` as an ``mlgraph/embeddings@1`` HDF5 file through
    :func:`~mlgraph_cli.core.io.outputs.write_output` (never over one of ``inputs``)."""
    vectors = np.ascontiguousarray(emb.vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[0] != len(emb.labels):
        raise ValueError(f"embeddings of shape {vectors.shape} for {len(emb.labels)} labels")
    attrs = {**emb.attrs, "schema": schema_tag("embeddings"), "dimension": int(vectors.shape[1]),
             "labels_digest": labels_digest(emb.labels)}
    with write_output(path, inputs) as tmp:
        with h5py.File(tmp, "w") as f:
            h5_write_attrs(f, attrs)
            h5_write_strings(f, "labels", emb.labels)
            f.create_dataset("embeddings", data=vectors)


# Wider than any use (ASGE's default is 300) and small enough that C x d floats fit in memory.
MAX_DIMENSION = 65536


def read_embeddings(path: str | os.PathLike) -> LabelEmbeddings:
    """Read an embeddings file through one check of everything a consumer relies on: the schema
    tag; ``labels`` (C distinct strings); ``embeddings`` (C x d floating-point numbers, finite,
    d <= :data:`MAX_DIMENSION`); the ``method``, ``graph`` and ``adjacency`` attributes of the
    kinds written. Each failure is one line naming the file and the dataset or attribute."""
    fix = f"re-make it with `{maker('embeddings')}`"
    with h5_open(path, "embeddings") as f:
        labels = h5_strings(f, "labels", path, fix=fix)
        ds = h5_dataset(f, "embeddings", path, kinds=FLOATS, fix=fix)
        if ds.ndim != 2 or ds.shape[0] != len(labels):
            raise input_error(path, f"`embeddings` has shape {ds.shape} for {len(labels)} labels", fix)
        if not 1 <= ds.shape[1] <= MAX_DIMENSION:
            raise input_error(path, f"`embeddings` has {ds.shape[1]} dimensions (1 to {MAX_DIMENSION} expected)", fix)
        vectors = np.asarray(ds[...], dtype=np.float32)
        attrs = h5_read_attrs(f)
    if len(set(labels)) != len(labels):
        raise input_error(path, "duplicate label names in `labels`", fix)
    check_finite(vectors, "embeddings", path, fix)
    for key, kind in (("method", str), ("graph", dict), ("adjacency", dict), ("init", str)):
        if attrs.get(key) is not None and not isinstance(attrs[key], kind):
            raise input_error(path, f"attribute `{key}` is {type(attrs[key]).__name__}, not "
                                    f"{'text' if kind is str else 'JSON object text'}", fix)
    return LabelEmbeddings(labels=labels, vectors=vectors, attrs=attrs)
