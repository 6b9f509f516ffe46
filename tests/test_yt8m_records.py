"""YouTube-8M reading: TFRecord framing and checksums, the Example wire format, vocabulary files, labels."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from mlgraph_cli.core.media.yt8m.protowire import ProtoError, decode_example, encode_example
from mlgraph_cli.core.media.yt8m.tfrecord import (
    BadRecord, crc32c, frame_record, masked_crc32c, read_records, write_records,
)
from mlgraph_cli.core.media.yt8m.records import (
    dequantize, encode_frame_record, encode_video_record, iter_videos, quantize,
)
from mlgraph_cli.core.media.yt8m.labels import (
    label_space, load_yt8m_annotations, read_segment_classes, read_vocabulary,
)
from mlgraph_cli.errors import InputError


def _frames(rng, t):
    return rng.integers(0, 256, (t, 1024), dtype=np.uint8), rng.integers(0, 256, (t, 128), dtype=np.uint8)


def test_crc32c_check_value_and_mask():
    # CRC-32C check value (RFC 3720 appendix B.4): "123456789" -> 0xE3069283
    assert crc32c(b"123456789") == 0xE3069283
    crc = 0xE3069283
    expected = ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) % 2**32
    assert masked_crc32c(b"123456789") == expected


def test_frame_record_round_trip_and_dequantisation(tmp_path):
    rng = np.random.default_rng(0)
    rgb, audio = _frames(rng, 4)
    rgb[0, :3] = [0, 128, 255]
    path = write_records(tmp_path / "a.tfrecord", [
        encode_frame_record("v0", [3, 7], rgb, audio, segments=[(0, 7, 1.0), (5, 3, 0.0)]),
        encode_frame_record("v1", [], rgb[:2], audio[:2], id_key="video_id"),
    ])
    got = list(iter_videos([path]))
    assert [g[1] for g in got] == [0, 1]
    r0, r1 = got[0][2], got[1][2]
    assert r0.id == "v0" and r0.kind == "frame" and r0.labels.tolist() == [3, 7]
    assert r0.segments == [(0, 7, 1.0), (5, 3, 0.0)]
    assert r0.frames.shape == (4, 1152)
    # q * 4/255 + 4/512 - 2 (youtube-8m utils.Dequantize defaults)
    np.testing.assert_allclose(r0.frames[0, :3], [4 / 512 - 2, 128 * 4 / 255 + 4 / 512 - 2, 2 + 4 / 512], atol=1e-6)
    np.testing.assert_allclose(r0.frames[:, 1024:], audio.astype(np.float64) * 4 / 255 + 4 / 512 - 2, atol=1e-6)
    assert r1.id == "v1" and r1.labels.tolist() == [] and r1.frames.shape == (2, 1152)
    assert np.array_equal(quantize(dequantize(rgb)), rgb)


def test_video_level_record(tmp_path):
    rng = np.random.default_rng(1)
    mean_rgb, mean_audio = rng.normal(size=1024), rng.normal(size=128)
    path = write_records(tmp_path / "v.tfrecord", [encode_video_record("abc", [1], mean_rgb, mean_audio)])
    (_, _, rec), = iter_videos([path])
    assert rec.kind == "video" and rec.frames.shape == (1, 1152)
    np.testing.assert_allclose(rec.frames[0], np.concatenate([mean_rgb, mean_audio]).astype(np.float32))


def test_flipped_data_byte_is_reported_and_skipped(tmp_path):
    rng = np.random.default_rng(2)
    records = [encode_frame_record(f"v{i}", [i], *_frames(rng, 3)) for i in range(3)]
    raw = bytearray(b"".join(frame_record(r) for r in records))
    second = len(frame_record(records[0]))
    raw[second + 12 + 40] ^= 0x01  # a byte inside record 1's data
    (tmp_path / "c.tfrecord").write_bytes(bytes(raw))
    got = list(iter_videos([tmp_path / "c.tfrecord"]))
    assert [type(g[2]).__name__ for g in got] == ["VideoRecord", "BadRecord", "VideoRecord"]
    bad = got[1][2]
    assert bad.index == 1 and "data checksum mismatch" in bad.reason
    assert got[2][2].id == "v2"


def test_flipped_length_byte_ends_the_file(tmp_path):
    records = [encode_video_record(f"v{i}", [0], np.zeros(1024), np.zeros(128)) for i in range(3)]
    raw = bytearray(b"".join(frame_record(r) for r in records))
    raw[len(frame_record(records[0])) + 2] ^= 0x10  # record 1's length field
    (tmp_path / "l.tfrecord").write_bytes(bytes(raw))
    got = list(read_records(tmp_path / "l.tfrecord"))
    assert len(got) == 2 and isinstance(got[0][1], bytes)
    assert isinstance(got[1][1], BadRecord) and "length checksum mismatch" in got[1][1].reason


def test_truncated_file_and_not_a_tfrecord(tmp_path):
    data = frame_record(encode_video_record("v", [0], np.zeros(1024), np.zeros(128)))
    (tmp_path / "t.tfrecord").write_bytes(data + data[:-10])
    got = list(read_records(tmp_path / "t.tfrecord"))
    assert isinstance(got[0][1], bytes) and "truncated" in got[1][1].reason
    (tmp_path / "x.tfrecord").write_text("id,labels\nabc,1 2 3\n")
    (_, bad), = read_records(tmp_path / "x.tfrecord")
    assert isinstance(bad, BadRecord) and bad.index == 0


def test_gzip_compressed_records(tmp_path):
    rng = np.random.default_rng(3)
    path = write_records(tmp_path / "g.tfrecord.gz", [encode_frame_record("z", [2], *_frames(rng, 2))], compress=True)
    assert path.read_bytes()[:2] == b"\x1f\x8b"
    (_, _, rec), = iter_videos([path])
    assert rec.id == "z" and rec.frames.shape == (2, 1152)


def test_wire_format_accepts_unpacked_scalars_and_negative_ints():
    def field(number, wire, payload):
        return bytes([number << 3 | wire]) + payload

    def ld(number, payload):
        return field(number, 2, bytes([len(payload)]) + payload)

    # Int64List with unpacked varints 5 and -1 (10-byte two's complement), FloatList with fixed32 values
    ints = ld(3, field(1, 0, b"\x05") + field(1, 0, b"\xff" * 9 + b"\x01"))
    floats = ld(2, field(1, 5, struct.pack("<f", 1.5)) + field(1, 5, struct.pack("<f", -2.0)))
    entry = lambda key, feat: ld(1, ld(1, key) + ld(2, feat))  # noqa: E731 - map entry {key, value}
    data = ld(1, entry(b"labels", ints) + entry(b"mean_rgb", floats))
    ex = decode_example(data)
    assert ex.features["labels"].tolist() == [5, -1]
    assert ex.features["mean_rgb"].tolist() == [1.5, -2.0]
    assert not ex.is_sequence
    assert decode_example(encode_example({"labels": [-3, 2**40]})).features["labels"].tolist() == [-3, 2**40]
    with pytest.raises(ProtoError):
        decode_example(b"\x0a\x05abc")  # a length that runs past the end


def test_malformed_messages_become_bad_records(tmp_path):
    path = write_records(tmp_path / "m.tfrecord", [
        encode_example({"labels": [1]}),  # no id
        encode_example({"id": b"x", "labels": [1], "mean_rgb": np.zeros(10, np.float32),
                        "mean_audio": np.zeros(128, np.float32)}),  # wrong width
        b"\xff\xff\xff",
    ])
    reasons = [item.reason for _, _, item in iter_videos([path])]
    assert "no 'id'" in reasons[0]
    assert "'mean_rgb' has 10 floats, expected 1024" in reasons[1]
    assert reasons[2].startswith("not a YouTube-8M record")


def test_vocabulary_and_segment_classes(tmp_path):
    vocab = tmp_path / "vocabulary.csv"
    vocab.write_text('Index,TrainVideoCount,KnowledgeGraphId,Name,WikiUrl\n'
                     '0,100,/m/1,Game,x\n2,50,/m/2,"Car, racing",y\n1,10,/m/3,,z\n')
    v = read_vocabulary(vocab)
    assert v.names == {0: "Game", 2: "Car, racing", 1: "1"}
    seg = tmp_path / "segment_label_ids.csv"
    seg.write_text("Index\n2\n0\n")
    assert read_segment_classes(seg) == [0, 2]
    space = label_space(v, [2, 0])
    assert space.class_ids == [0, 2] and space.names == ["Game", "Car, racing"]
    assert label_space(None, None, seen=[5, 3, 5]).names == ["3", "5"]


@pytest.mark.parametrize("text, message", [
    ("Index,Count\n0,1\n", "vocabulary.csv:1: the header has no Name column"),
    ("Index,Name\n0,a\n0,b\n", "vocabulary.csv:3: class index 0 appears twice"),
    ("Index,Name\nx,a\n", "vocabulary.csv:2: class index 'x' is not an integer"),
    ("", "vocabulary.csv: the file is empty"),
])
def test_vocabulary_errors(tmp_path, text, message):
    path = tmp_path / "vocabulary.csv"
    path.write_text(text)
    with pytest.raises(InputError) as err:
        read_vocabulary(path)
    assert str(err.value).startswith(str(tmp_path / message.split(":")[0]) + message[len(message.split(":")[0]):])
    assert "vocabulary.csv (header Index" in str(err.value)


def test_load_yt8m_annotations_for_build_graph(tmp_path):
    from mlgraph_cli.core.graph.counts import build_label_graph

    rng = np.random.default_rng(4)
    path = write_records(tmp_path / "a.tfrecord", [
        encode_frame_record("a", [0, 2], *_frames(rng, 2)),
        encode_frame_record("b", [2, 9], *_frames(rng, 2)),
        encode_frame_record("c", [0, 1, 2], *_frames(rng, 2)),
    ])
    vocab = tmp_path / "vocabulary.csv"
    vocab.write_text("Index,Name\n0,Game\n1,Car\n2,Music\n")
    ann = load_yt8m_annotations([path], vocab)
    assert ann.labels == ["Game", "Car", "Music"] and ann.image_ids == ["a", "b", "c"]
    assert ann.dense().tolist() == [[1, 0, 1], [0, 0, 1], [1, 1, 1]]
    assert ann.format == "yt8m" and any("1 label(s) outside" in n for n in ann.notes)
    g = build_label_graph(ann.positives, ann.labels)
    assert g.image_counts.tolist() == [2, 1, 3]
    assert g.dense_cooccurrence()[0, 2] == 2
    plain = load_yt8m_annotations([path])
    assert plain.labels == ["0", "1", "2", "9"]
