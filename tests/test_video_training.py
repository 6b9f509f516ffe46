"""Video on the one trainer, per-video prediction, per-segment scoring, and the generated clips."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mlgraph_cli.core.models import build_head
from mlgraph_cli.core.evaluation.video_metrics import video_metrics
from videokit import make_world, sample_clips
from mlgraph_cli.core.inference.frames import predict_videos, score_segments

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


@pytest.fixture(scope="module")
def clip_files(clips, tmp_path_factory):
    """The clips as video features files (the layout of `mlgraph import-yt8m`) and embeddings."""
    from mlgraph_cli.core.embeddings.files import LabelEmbeddings, write_embeddings
    from videokit import write_clips

    root = tmp_path_factory.mktemp("clips")
    names = [f"l{i}" for i in range(6)]
    train, test = clips
    emb = root / "e.h5"
    write_embeddings(emb, LabelEmbeddings(labels=names, vectors=np.random.default_rng(0).normal(size=(6, 8))
                                          .astype(np.float32)))
    return {"train": write_clips(root / "train.h5", train, names), "test": write_clips(root / "test.h5", test, names),
            "embeddings": emb}


@pytest.mark.parametrize("name", ["cma", "gap"])
def test_the_one_trainer_fits_temporal_heads(clip_files, clips, name, tmp_path):
    """Temporal heads train through the stage behind `mlgraph train` (no second loop): the loss
    falls, validation picks the best epoch, and the test clips score far above chance."""
    from mlgraph_cli.core.training.trainer import TrainConfig
    from mlgraph_cli.stages.evaluate import evaluate
    from mlgraph_cli.stages.train import train
    from mlgraph_cli.stages.train.inputs import TrainInputs

    inputs = TrainInputs(features=clip_files["train"], val_features=clip_files["test"],
                         embeddings=clip_files["embeddings"])
    config = TrainConfig(head=name, epochs=8, probe_epochs=3, batch_size=16, lr=1e-2, device="cpu")
    result = train(inputs, config, run_dir=tmp_path / "run")
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and rows[-1]["train_loss"] < 0.9 * rows[0]["train_loss"]
    run_config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert run_config["modality"] == "video" and run_config["head"]["name"] == f"video-{name}"
    assert ("probe" in run_config) == (name == "cma")  # only CMA starts from a mean-pool probe
    if name == "cma":
        assert run_config["probe"]["epochs"] == 3 and run_config["probe"]["videos"] == 120
    m = evaluate(tmp_path / "run", features=clip_files["test"], device="cpu", output=tmp_path / "m.json").metrics
    assert m["mAP"] == pytest.approx(result.best_map)  # the best epoch, scored again from its weights
    assert m["mAP"] > 100 * clips[1].labels.mean() + 15


def test_probe_start_trains_a_mean_pool_probe_with_the_trainer(clips):
    from mlgraph_cli.core.models.classifier import Classifier
    from mlgraph_cli.core.training.trainer import TrainConfig
    from mlgraph_cli.core.training.probe import probe_start

    train, _ = clips
    torch.manual_seed(0)
    head = build_head("video-cma", in_channels=16, num_labels=6, embeddings=torch.randn(6, 8))
    start = head.weight.detach().clone()
    config = TrainConfig(head="cma", epochs=4, lr=1e-2, probe_epochs=2, batch_size=32).for_modality("video")
    info = probe_start(Classifier(head), _Masked(train), config, torch.device("cpu"))
    assert info["epochs"] == 2 and info["videos"] == 120 and np.isfinite(info["loss"])
    assert not torch.allclose(head.weight, start)  # the classifiers are now the trained probe's
    assert probe_start(Classifier(head), _Masked(train), TrainConfig(probe_epochs=0).for_modality("video"),
                       torch.device("cpu")) is None
    deep = build_head("video-cma", in_channels=16, num_labels=6, embeddings=torch.randn(6, 8), cmt_layers=2)
    assert probe_start(Classifier(deep), _Masked(train), config, torch.device("cpu")) is None  # no linear phi


class _Masked(torch.utils.data.Dataset):
    """Generated clips batched as FeatureSet batches them (x, y, and the mask of real frames)."""

    def __init__(self, clips) -> None:
        self.clips = clips

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, positions):
        pos = np.asarray(positions)
        return {"x": torch.as_tensor(self.clips.features[pos]), "aux": None,
                "y": torch.as_tensor(self.clips.labels[pos]), "index": torch.as_tensor(pos),
                "mask": torch.as_tensor(self.clips.mask[pos])}


def test_init_from_probe_makes_cosines_read_the_probe():
    torch.manual_seed(0)
    emb = torch.randn(6, 8)
    head = build_head("video-cma", in_channels=16, num_labels=6, embeddings=emb, center=False)
    v, b = torch.randn(6, 16), torch.randn(6)
    head.init_from_probe(v, b)
    x = torch.randn(2, 16, 5)
    z = head.cmt(x, torch.ones(2, 5, dtype=torch.bool))  # (B, d, T)
    dots = torch.einsum("cd,bdt->bct", torch.nn.functional.normalize(emb, dim=1), z)
    torch.testing.assert_close(dots, torch.einsum("cd,bdt->bct", v, x), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(head.weight, v)
    deep = build_head("video-cma", in_channels=16, num_labels=6, embeddings=emb, cmt_layers=2)
    with pytest.raises(ValueError, match="cmt_layers = 1"):
        deep.init_from_probe(v, b)


def test_ignored_targets_do_not_train(clips):
    """-1 targets leave the loss: a head trained on nothing but -1 keeps its weights."""
    from mlgraph_cli.core.training.batches import TensorSet
    from mlgraph_cli.core.models.classifier import Classifier
    from mlgraph_cli.core.training.trainer import TrainConfig, Trainer

    train, _ = clips
    head = build_head("video-gap", in_channels=16, num_labels=6)
    before = head.fc.weight.detach().clone()
    data = TensorSet(torch.as_tensor(train.features), torch.full(train.labels.shape, -1, dtype=torch.int8))
    config = TrainConfig(epochs=1, batch_size=64, weight_decay=0.0).for_modality("video")
    Trainer(Classifier(head), data, None, config=config, label_names=[], run_dir=None,
            device=torch.device("cpu")).fit()
    torch.testing.assert_close(head.fc.weight, before)


def test_score_segments_sees_only_the_segment_frames(clips):
    _, test = clips
    torch.manual_seed(0)
    head = build_head("video-cma", in_channels=16, num_labels=6, embeddings=torch.randn(6, 8)).eval()
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


def test_defaults_come_from_the_schema_and_the_head(clip_files, tmp_path):
    """Unset epochs / lr / weight decay / probe / patience: the video defaults, the head's own first;
    image features keep the image defaults; a value given always wins."""
    import trainkit
    from mlgraph_cli.core.training.trainer import TrainConfig
    from mlgraph_cli.stages.train.inputs import TrainInputs, resolved_config

    video = TrainInputs(features=clip_files["train"])
    cma = resolved_config(video, TrainConfig(head="cma"))
    assert (cma.epochs, cma.lr, cma.weight_decay, cma.probe_epochs, cma.patience) == (40, 1e-2, 1e-4, 10, 10)
    gap = resolved_config(video, TrainConfig(head="gap", lr=3e-3))
    assert (gap.epochs, gap.lr, gap.weight_decay) == (40, 3e-3, 1.0)
    images = TrainInputs(features=trainkit.toy_dataset(tmp_path, n_train=8, n_val=4)["features"])
    image = resolved_config(images, TrainConfig(head="gap"))
    assert (image.epochs, image.lr, image.weight_decay, image.patience) == (20, 1e-3, 1e-4, 0)


def test_patience_stops_when_validation_stops_improving(clips):
    from mlgraph_cli.core.training.batches import TensorSet
    from mlgraph_cli.core.models.classifier import Classifier
    from mlgraph_cli.core.training.trainer import TrainConfig, Trainer

    train, test = clips
    head = build_head("video-gap", in_channels=16, num_labels=6)
    data = TensorSet(torch.as_tensor(train.features), torch.as_tensor(train.labels))
    val = TensorSet(torch.as_tensor(test.features), torch.as_tensor(test.labels))
    rows = []
    config = TrainConfig(epochs=10, lr=1e-12, patience=2, weight_decay=0.0).for_modality("video")  # nothing improves
    result = Trainer(Classifier(head), data, val, config=config, label_names=[f"l{i}" for i in range(6)],
                     run_dir=None, device=torch.device("cpu"), on_epoch_end=rows.append).fit()
    assert result.stopped_early and result.best_epoch == 1 and result.epochs_done == 3 and len(rows) == 3
