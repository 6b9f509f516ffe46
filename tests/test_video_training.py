"""The video trainer, per-video prediction, per-segment scoring, and the generated clips."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mlgraph_cli.core.video.heads import build_video_head
from mlgraph_cli.core.video.metrics import video_metrics
from mlgraph_cli.core.video.synthetic import make_world, sample_clips
from mlgraph_cli.core.video.training import VideoTrainConfig, fit_video_head, predict_videos, score_segments

CLIPS = dict(frames=(10, 16), visible=(2, 3), signal=1.5, noise=1.0, scene=1.0, p_label=0.5, p_two_groups=0.3)


@pytest.fixture(scope="module")
def clips():
    world = make_world(num_labels=6, groups=2, dim=16, context=1.0, seed=0)
    return sample_clips(world, 120, **CLIPS, seed=1), sample_clips(world, 60, **CLIPS, seed=2)


def test_generated_clips_follow_their_recipe(clips):
    train, _ = clips
    n, d, t = train.features.shape
    assert (n, d, t) == (120, 16, 16)
    lengths = train.mask.sum(1)
    assert lengths.min() >= 10 and lengths.max() <= 16
    assert np.all(train.features[~np.broadcast_to(train.mask[:, None, :], train.features.shape)] == 0)
    assert np.array_equal(train.visible.any(-1), train.labels.astype(bool))
    runs = train.visible.sum(-1)[train.labels.astype(bool)]
    assert runs.min() >= 2 and runs.max() <= 3
    # labels of one group co-occur, labels of different groups only when a clip picks both
    y = train.labels.astype(int)
    same, other = (y[:, 0] & y[:, 2]).sum(), (y[:, 0] & y[:, 1]).sum()
    assert same > other


@pytest.mark.parametrize("name", ["video-cma", "video-gap"])
def test_fit_lowers_the_loss_and_beats_chance(clips, name):
    train, test = clips
    torch.manual_seed(0)
    emb = torch.randn(6, 8) if name == "video-cma" else None
    head = build_video_head(name, in_channels=16, num_labels=6, embeddings=emb)
    config = VideoTrainConfig(epochs=8, batch_size=16, lr=1e-2, seed=0, probe_epochs=3)
    result = fit_video_head(head, train.features, train.mask, train.labels, config,
                            evaluate=lambda h: {"n": 1.0})
    probe = 3 if name == "video-cma" else 0  # only CMA starts from a mean-pool probe
    assert [e["phase"] for e in result.history] == ["probe"] * probe + ["train"] * 8
    losses = [e["loss"] for e in result.history]
    assert losses[-1] < 0.8 * losses[0]
    assert result.history[-1]["n"] == 1.0
    scores = predict_videos(head, test.features, test.mask)
    assert scores.shape == (60, 6) and scores.min() >= 0 and scores.max() <= 1
    chance = 100 * test.labels.mean()
    assert video_metrics(scores, test.labels)["mAP"] > chance + 15


def test_init_from_probe_makes_cosines_read_the_probe():
    torch.manual_seed(0)
    emb = torch.randn(6, 8)
    head = build_video_head("video-cma", in_channels=16, num_labels=6, embeddings=emb, center=False)
    v, b = torch.randn(6, 16), torch.randn(6)
    head.init_from_probe(v, b)
    x = torch.randn(2, 16, 5)
    z = head.cmt(x, torch.ones(2, 5, dtype=torch.bool))  # (B, d, T)
    dots = torch.einsum("cd,bdt->bct", torch.nn.functional.normalize(emb, dim=1), z)
    torch.testing.assert_close(dots, torch.einsum("cd,bdt->bct", v, x), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(head.weight, v)
    deep = build_video_head("video-cma", in_channels=16, num_labels=6, embeddings=emb, cmt_layers=2)
    with pytest.raises(ValueError, match="cmt_layers = 1"):
        deep.init_from_probe(v, b)


def test_ignored_targets_do_not_train(clips):
    train, _ = clips
    head = build_video_head("video-gap", in_channels=16, num_labels=6)
    before = head.fc.weight.detach().clone()
    fit_video_head(head, train.features, train.mask, np.full_like(train.labels, -1),
                   VideoTrainConfig(epochs=1, batch_size=64, weight_decay=0.0))
    torch.testing.assert_close(head.fc.weight, before)


def test_attention_lr_gets_its_own_group(clips):
    train, _ = clips
    head = build_video_head("video-cma", in_channels=16, num_labels=6, embeddings=torch.randn(6, 8))
    before = {k: v.clone() for k, v in head.cmt.state_dict().items()}
    fit_video_head(head, train.features[:16], train.mask[:16], train.labels[:16],
                   VideoTrainConfig(epochs=1, batch_size=16, lr=1e-2, attention_lr=1e-12, weight_decay=0.0,
                                    probe_epochs=0))
    for k, v in head.cmt.state_dict().items():
        torch.testing.assert_close(v, before[k], atol=1e-9, rtol=0)


def test_score_segments_sees_only_the_segment_frames(clips):
    _, test = clips
    torch.manual_seed(0)
    head = build_video_head("video-cma", in_channels=16, num_labels=6, embeddings=torch.randn(6, 8)).eval()
    video = np.array([0, 0, 1, 0])
    start = np.array([0, 5, 2, 0])  # the last row repeats the first segment
    s1 = score_segments(head, test.features, test.mask, video, start)
    assert s1.shape == (4, 6)
    np.testing.assert_array_equal(s1[0], s1[3])
    x = test.features.copy()
    x[0, :, 10:] = 50.0  # frames outside both segments of video 0
    s2 = score_segments(head, x, test.mask, video, start)
    np.testing.assert_allclose(s2, s1, rtol=1e-5, atol=1e-6)
    x[0, :, 6] = 50.0  # inside the second segment [5, 10)
    s3 = score_segments(head, x, test.mask, video, start)
    np.testing.assert_allclose(s3[0], s1[0], rtol=1e-5, atol=1e-6)
    assert not np.allclose(s3[1], s1[1])
    # the same as running the head on the segment's five frames cut out
    alone = predict_videos(head, test.features[1:2, :, 2:7], np.ones((1, 5), bool))
    np.testing.assert_allclose(s1[2], alone[0], rtol=1e-5, atol=1e-6)


def test_train_on_an_imported_file(tmp_path):
    """import-yt8m output -> load_video_features -> fit -> segment scores: the pieces fit together."""
    from mlgraph_cli.core.video.features import load_video_features
    from mlgraph_cli.core.video.metrics import segment_map
    from mlgraph_cli.core.video.tfrecord import write_records
    from mlgraph_cli.core.video.yt8m import encode_frame_record
    from mlgraph_cli.stages.import_yt8m import ImportYt8mConfig, import_yt8m

    rng = np.random.default_rng(0)
    records = [encode_frame_record(f"v{i}", [i % 3], rng.integers(0, 256, (8, 1024)), rng.integers(0, 256, (8, 128)),
                                   segments=[(0, i % 3, 1.0), (3, (i + 1) % 3, 0.0)]) for i in range(6)]
    write_records(tmp_path / "val.tfrecord", records)
    import_yt8m([tmp_path / "val.tfrecord"], tmp_path / "val.h5", ImportYt8mConfig(max_frames=10))
    data = load_video_features(tmp_path / "val.h5")
    head = build_video_head("video-cma", in_channels=1152, num_labels=3, embeddings=torch.eye(3))
    fit_video_head(head, data["features"], data["mask"], data["labels"],
                   VideoTrainConfig(epochs=2, batch_size=4, probe_epochs=1))
    seg = data["segments"]
    scores = score_segments(head, data["features"], data["mask"], seg.video, seg.start)  # (S, C)
    report = segment_map(scores[np.arange(len(seg)), seg.label], seg.label, seg.score > 0)
    assert report["classes"] == 3 and 0 <= report["MAP@100000"] <= 100
