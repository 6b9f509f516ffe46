"""Word vectors through gensim: the four file formats, multi-word labels, OOV handling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlgraph_cli.core.embeddings.wordvectors import label_vectors, load_word_vectors, lookup_label, vector_format
from mlgraph_cli.errors import InputError

DATA = Path(__file__).parent / "data"
COCO_GLOVE = DATA / "coco-glove-300d.txt"
COCO_STATS = DATA / "coco2014-cooccurrence.json"
if not COCO_STATS.is_file():  # helper A's copy; the shared original until it lands
    COCO_STATS = Path(__file__).resolve().parents[2] / "shared" / "data" / "coco2014-label-stats" / "cooccurrence.json"

WORDS = {
    "cat": [1.0, 0.0, 0.0, 0.0],
    "dog": [0.9, 0.1, 0.0, 0.0],
    "traffic": [0.0, 1.0, 0.0, 0.0],
    "light": [0.0, 0.0, 1.0, 0.0],
    "hair": [0.0, 0.0, 0.0, 2.0],
    "stop_sign": [0.5, 0.5, 0.5, 0.5],
}


def keyed_vectors(words: dict[str, list[float]] = WORDS):
    from gensim.models import KeyedVectors

    kv = KeyedVectors(vector_size=len(next(iter(words.values()))))
    kv.add_vectors(list(words), np.array(list(words.values()), dtype=np.float32))
    return kv


def write_vectors(folder: Path, kind: str, words: dict[str, list[float]] = WORDS) -> Path:
    """A tiny vectors file in one of the four formats."""
    kv = keyed_vectors(words)
    if kind == "word2vec-text":
        path = folder / "vectors.txt"
        kv.save_word2vec_format(str(path), binary=False)
    elif kind == "word2vec-binary":
        path = folder / "vectors.bin"
        kv.save_word2vec_format(str(path), binary=True)
    elif kind == "glove-text":
        path = folder / "glove.txt"
        path.write_text("".join(f"{w} {' '.join(str(x) for x in v)}\n" for w, v in words.items()))
    else:
        path = folder / "vectors.kv"
        kv.save(str(path))
    return path


@pytest.mark.parametrize("kind", ["word2vec-text", "word2vec-binary", "glove-text", "kv"])
def test_each_format_reads_the_same_vectors(tmp_path, kind):
    path = write_vectors(tmp_path, kind)
    assert vector_format(path) == kind
    kv = load_word_vectors(path, trust_pickle=(kind == "kv"))
    assert set(kv.index_to_key) == set(WORDS)
    for word, vec in WORDS.items():
        np.testing.assert_allclose(kv[word], vec, rtol=1e-6)


def test_glove_without_header_is_not_mistaken_for_word2vec(tmp_path):
    # A GloVe line whose first token is a number must not be read as a "<count> <dim>" header.
    path = tmp_path / "numbers.txt"
    path.write_text("2 0.5 0.25\nthree 1.0 2.0\n")
    assert vector_format(path) == "glove-text"
    assert load_word_vectors(path).vector_size == 2


def test_multi_word_labels_phrase_first_then_mean_of_words():
    kv = keyed_vectors()
    vec, how = lookup_label(kv, "stop sign")
    assert how == "phrase" and np.allclose(vec, WORDS["stop_sign"])
    vec, how = lookup_label(kv, "traffic light")
    assert how == "words:2/2" and np.allclose(vec, [0.0, 0.5, 0.5, 0.0])
    vec, how = lookup_label(kv, "hair drier")  # "drier" unknown: the words found are averaged
    assert how == "words:1/2" and np.allclose(vec, WORDS["hair"])
    vec, how = lookup_label(kv, "Cat")
    assert how == "lower" and np.allclose(vec, WORDS["cat"])
    assert lookup_label(kv, "zebra") == (None, "missing")


def test_label_vectors_in_label_order():
    lv = label_vectors(keyed_vectors(), ["dog", "traffic light", "cat"])
    assert lv.vectors.dtype == np.float32 and lv.vectors.shape == (3, 4)
    np.testing.assert_allclose(lv.vectors[0], WORDS["dog"])
    np.testing.assert_allclose(lv.vectors[2], WORDS["cat"])
    assert lv.how == {"dog": "exact", "traffic light": "words:2/2", "cat": "exact"} and lv.missing == []


def test_oov_error_lists_every_missing_label():
    with pytest.raises(InputError) as exc:
        label_vectors(keyed_vectors(), ["cat", "zebra", "hot pot", "dog"], source="vec.txt")
    assert str(exc.value) == ("vec.txt: no vector for 2 of 4 labels: 'zebra', 'hot pot' (add them to the vectors "
                              "file, or pass --oov random for seeded random vectors)")


def test_oov_random_is_seeded_and_keeps_the_others():
    labels = ["cat", "zebra", "dog", "okapi"]
    a = label_vectors(keyed_vectors(), labels, oov="random", seed=3)
    b = label_vectors(keyed_vectors(), labels, oov="random", seed=3)
    c = label_vectors(keyed_vectors(), labels, oov="random", seed=4)
    assert a.missing == ["zebra", "okapi"] and a.how["zebra"] == "random"
    np.testing.assert_array_equal(a.vectors, b.vectors)
    assert not np.allclose(a.vectors[1], c.vectors[1])
    np.testing.assert_allclose(a.vectors[0], WORDS["cat"])
    assert not np.allclose(a.vectors[1], a.vectors[3])


def test_no_label_found_at_all_is_an_error_even_with_oov_random():
    with pytest.raises(InputError, match="no vector for 2 of 2 labels: 'zebra', 'okapi' .*right vectors file"):
        label_vectors(keyed_vectors(), ["zebra", "okapi"], source="v.txt", oov="random")


@pytest.mark.parametrize("content, what", [
    (None, "no such word-vector file"),
    ("", "the word-vector file is empty"),
    ("3 4\ncat 1 2\n", "not a readable word2vec-text vectors file"),
])
def test_bad_vector_files_are_one_line_errors(tmp_path, content, what):
    path = tmp_path / "v.txt"
    if content is not None:
        path.write_text(content)
    with pytest.raises(InputError) as exc:
        load_word_vectors(path)
    message = str(exc.value)
    assert message.startswith(f"{path}: {what}") and "\n" not in message


def test_real_coco_glove_covers_all_80_labels():
    import json

    labels = json.loads(COCO_STATS.read_text())["labels"]
    lv = label_vectors(load_word_vectors(COCO_GLOVE), labels, source=COCO_GLOVE)
    assert lv.vectors.shape == (80, 300) and not lv.missing
    assert lv.how["traffic light"] == "phrase" and lv.how["cat"] == "exact"
