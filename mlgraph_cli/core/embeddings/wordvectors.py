"""Word vectors for label names, read through gensim ``KeyedVectors``.

Four on-disk formats are accepted (docs/embed.md, "Initial vectors"):

- word2vec text: a first line ``<count> <dim>``, then ``word v1 ... vd`` per line;
- GloVe text: the same lines without the header (detected: the first line is not two integers);
- word2vec binary (``.bin``): the header line, then raw float32 rows;
- gensim's native format (``.kv``), saved by ``KeyedVectors.save``. gensim stores it with pickle,
  and unpickling a crafted file runs its code, so a pickle is refused unless the caller passes
  ``trust_pickle=True`` (``mlgraph embed --trust-pickle``). Any file that starts like a pickle is
  treated so, whatever its name. The other three formats are plain data.

Text files may be gzip-compressed (``.gz``); gensim opens them through smart_open.

A label is looked up as it is, then with ``_`` for spaces (phrase vectors such as
``traffic_light``), then lower-cased; failing that, its words are averaged (plain mean of the
vectors found, as stored). A label none of whose words is known is out of vocabulary (OOV): an
error listing every such label, or with ``oov="random"`` a seeded random vector drawn with the
per-dimension spread of the found vectors.
"""

from __future__ import annotations

import gzip
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mlgraph_cli.core.embeddings.config import OOV_POLICIES
from mlgraph_cli.core.io.inputs import check_input_file
from mlgraph_cli.errors import input_error

# Only the first few missing labels are named in the one-line error; the rest are counted.
_MAX_NAMED = 10
_HEADER = re.compile(r"^\s*\d+\s+\d+\s*$")
# Pickle protocols 2-5 open with PROTO (0x80) and the protocol number; gensim writes protocol 4+.
_PICKLE_MAGIC = tuple(bytes([0x80, n]) for n in range(2, 6))


@dataclass
class LabelVectors:
    """Initial vectors for a label list.

    vectors: (C, d) float32 in label order. how: label -> how it was found ("exact", "phrase",
    "lower", "words:k/n" for k of n words averaged, "random"). missing: labels that got a random
    vector (empty unless ``oov="random"``).
    """

    vectors: np.ndarray
    how: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)

    @property
    def dimension(self) -> int:
        return int(self.vectors.shape[1])


def vector_format(path: str | os.PathLike) -> str:
    """Which reader a vectors file needs: ``kv``, ``word2vec-binary``, ``word2vec-text`` or ``glove-text``."""
    p = Path(path)
    name = p.name.lower()
    opener = gzip.open if name.endswith(".gz") else open
    try:
        with opener(p, "rb") as fh:
            first = fh.readline(4096)
    except (OSError, EOFError) as exc:
        raise input_error(p, f"cannot read the word-vector file ({getattr(exc, 'strerror', None) or exc})") from None
    if name.endswith(".kv") or first.startswith(_PICKLE_MAGIC):
        return "kv"
    if name.endswith(".bin") or name.endswith(".bin.gz"):
        return "word2vec-binary"
    text = first.decode("utf-8", errors="replace")
    return "word2vec-text" if _HEADER.match(text) else "glove-text"


def load_word_vectors(path: str | os.PathLike, *, trust_pickle: bool = False):
    """Read a vectors file with gensim and return its ``KeyedVectors``.

    trust_pickle: allow gensim's pickle-based ``.kv`` format. Unpickling runs whatever code the
    file carries, so without it such a file is refused before a byte of it is unpickled.
    Errors (a missing, empty, unreadable or untrusted file) are one-line :class:`InputError`
    naming the file.
    """
    from gensim.models import KeyedVectors

    fix = "pass word2vec text/binary, GloVe text or a gensim .kv file to --init"
    if not os.path.exists(path):
        raise input_error(path, "no such word-vector file", fix)
    p = check_input_file(path, fix=fix)  # a FIFO would block the read
    if p.stat().st_size == 0:
        raise input_error(p, "the word-vector file is empty", fix)
    kind = vector_format(p)
    if kind == "kv" and not trust_pickle:
        raise input_error(p, "a gensim .kv file is a pickle, and loading it would run any code it holds",
                          "convert it to word2vec text where it came from (KeyedVectors.save_word2vec_format), "
                          "or pass it to --init with --trust-pickle if you made it yourself")
    try:
        if kind == "kv":
            kv = KeyedVectors.load(os.fspath(p))
        elif kind == "word2vec-binary":
            kv = KeyedVectors.load_word2vec_format(os.fspath(p), binary=True)
        else:
            kv = KeyedVectors.load_word2vec_format(os.fspath(p), binary=False, no_header=(kind == "glove-text"))
    except Exception as exc:  # gensim raises ValueError, EOFError, UnicodeDecodeError, pickle errors...
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise input_error(p, f"not a readable {kind} vectors file ({reason})", fix) from None
    if not isinstance(kv, KeyedVectors) or len(kv) == 0:
        raise input_error(p, "no vectors found in the file", fix)
    return kv


def _words(label: str) -> list[str]:
    return [w for w in re.split(r"[\s_\-]+", label.strip()) if w]


def lookup_label(kv: Any, label: str) -> tuple[np.ndarray | None, str]:
    """The vector of one label and how it was found; ``(None, "missing")`` when no word is known."""
    phrase = "_".join(_words(label))
    for key, how in ((label, "exact"), (phrase, "phrase"), (phrase.lower(), "lower")):
        if key and key in kv:
            return np.asarray(kv.get_vector(key), dtype=np.float64), how
    words = _words(label)
    found = []
    for w in words:
        key = w if w in kv else (w.lower() if w.lower() in kv else None)
        if key is not None:
            found.append(np.asarray(kv.get_vector(key), dtype=np.float64))
    if not found:
        return None, "missing"
    # Plain mean of the stored vectors: each found word counts once (ML-GCN's label vectors are
    # averages of GloVe word vectors in the same way).
    return np.mean(found, axis=0), f"words:{len(found)}/{len(words)}"


def label_vectors(kv: Any, labels: Sequence[str], *, source: str | os.PathLike = "vectors",
                  oov: str = "error", seed: int = 0) -> LabelVectors:
    """Look up every label in ``kv``; (C, d) float32 in label order.

    oov: ``"error"`` raises one :class:`InputError` naming every missing label; ``"random"``
    gives each a vector from a seeded Gaussian with the per-dimension mean and standard
    deviation of the vectors that were found, and lists them in ``missing``.
    """
    if oov not in OOV_POLICIES:
        raise input_error(source, f"unknown OOV policy {oov!r}", f"use --oov {' or --oov '.join(OOV_POLICIES)}")
    dim = int(kv.vector_size)
    out = np.zeros((len(labels), dim), dtype=np.float64)
    how: dict[str, str] = {}
    missing: list[str] = []
    for i, label in enumerate(labels):
        vec, found = lookup_label(kv, label)
        how[label] = found
        if vec is None:
            missing.append(label)
        elif not np.isfinite(vec).all():  # NaN in, NaN embeddings out: refuse the file instead
            raise input_error(source, f"the vector of {label!r} holds NaN or infinite values",
                              "fix or remove that line of the vectors file")
        else:
            out[i] = vec
    if missing and (oov == "error" or len(missing) == len(labels)):
        named = ", ".join(repr(m) for m in missing[:_MAX_NAMED])
        more = f" and {len(missing) - _MAX_NAMED} more" if len(missing) > _MAX_NAMED else ""
        fix = ("none of the labels is in this file: is it the right vectors file?" if len(missing) == len(labels)
               else "add them to the vectors file, or pass --oov random for seeded random vectors")
        raise input_error(source, f"no vector for {len(missing)} of {len(labels)} labels: {named}{more}", fix)
    if missing:
        known = np.array([i for i, lab in enumerate(labels) if how[lab] != "missing"])
        mean = out[known].mean(axis=0)
        std = out[known].std(axis=0) if len(known) > 1 else np.full(dim, np.abs(out[known]).mean() + 1e-3)
        rng = np.random.default_rng(seed)
        for i, label in enumerate(labels):
            if how[label] == "missing":
                out[i] = mean + std * rng.standard_normal(dim)
                how[label] = "random"
    return LabelVectors(vectors=out.astype(np.float32), how=how, missing=missing)
