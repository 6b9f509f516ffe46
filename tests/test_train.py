"""`mlgraph train`: learning, run folders, checkpoints, resume, project defaults and every user mistake."""

from __future__ import annotations

import json

import numpy as np
import pytest

import trainkit
from conftest import one_line_error


@pytest.fixture
def data(tmp_path):
    return trainkit.toy_dataset(tmp_path / "data", n_train=96, n_val=48)


def _train(cli, data, out, *extra):
    return cli("train", "--features", data["features"], "--val-features", data["val"], "--embeddings",
               data["embeddings"], "--batch-size", "16", "--lr", "0.1", "-o", out, *extra)


def _weights(path):
    from safetensors.torch import load_file

    return load_file(str(path))


def test_cma_learns_the_planted_signal_and_writes_a_run(cli, data, tmp_path):
    run = tmp_path / "run"
    result = _train(cli, data, run, "--epochs", "6")
    assert result.exit_code == 0, result.output
    assert "best val mAP" in result.stderr
    for name in ("config.json", "args.json", "best.safetensors", "last.safetensors", "metrics.jsonl", "resume.pt"):
        assert (run / name).is_file(), name
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(1, 7))
    assert set(rows[0]) >= {"epoch", "train_loss", "val_mAP", "val_CF1", "val_OF1", "lr", "seconds"}
    # chance mAP is the positive rate (~40); the planted prototypes make the task easy
    assert max(r["val_mAP"] for r in rows) > 85
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    config = json.loads((run / "config.json").read_text())
    assert config["schema"] == "mlgraph/run@1"
    assert config["labels"] == trainkit.LABELS
    assert config["head"]["name"] == "cma" and config["head"]["in_channels"] == 8
    assert config["embeddings"]["path"] == str(data["embeddings"].resolve())
    assert config["provenance"]["command"] == "mlgraph train"
    assert config["backbone"]["name"] == "toy"
    # the embeddings travel inside the weights as the head's frozen buffer
    w = _weights(run / "best.safetensors")
    from mlgraph_cli.core.embeddings.files import read_embeddings

    assert np.allclose(w["head.embeddings"].numpy(), read_embeddings(data["embeddings"]).vectors)
    best = max(rows, key=lambda r: r["val_mAP"])
    from safetensors import safe_open

    with safe_open(str(run / "best.safetensors"), "pt") as f:
        assert f.metadata()["epoch"] == str(best["epoch"])


@pytest.mark.parametrize("head", ["gap", "gmp", "mlgcn", "ms-cma"])
def test_every_head_trains(cli, tmp_path, head):
    d = tmp_path / "d"
    d.mkdir()
    aux = head == "ms-cma"
    feats = trainkit.write_features(d / "f.h5", trainkit.planted(48, aux=aux))
    extra = []
    if head in ("mlgcn", "ms-cma"):
        extra += ["--embeddings", trainkit.write_embeddings(d / "e.h5")]
    if head == "mlgcn":
        extra += ["--graph", trainkit.write_graph(d / "g.json")]
    result = cli("train", "--features", feats, "--head", head, "--epochs", "2", "--batch-size", "16",
                 "--val-fraction", "0.25", "-o", tmp_path / "run", *extra)
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["head"]["name"] == head
    if head == "ms-cma":
        assert config["head"]["in_channels"] == [10, 8]  # earlier stage first
    if head == "mlgcn":
        assert config["graph"]["adjacency"] == "mlgcn"
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 2


def test_resume_continues_exactly(cli, data, tmp_path):
    """4 epochs straight == 2 epochs, interrupted, + `--resume` for the other 2."""
    from mlgraph_cli.core.training.trainer import TrainConfig
    from mlgraph_cli.stages.train import train
    from mlgraph_cli.stages.train.inputs import TrainInputs

    inputs = TrainInputs(features=data["features"], val_features=data["val"], embeddings=data["embeddings"])
    # dropout draws from the RNG, so the RNG state has to come back too
    config = TrainConfig(epochs=4, batch_size=16, lr=0.05, head_options={"dropout": 0.2})
    straight = train(inputs, config, run_dir=tmp_path / "straight")

    def stop_after_two(row):
        if row["epoch"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(inputs, config, run_dir=tmp_path / "resumed", on_epoch_end=stop_after_two)
    assert len((tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()) == 2
    result = cli("train", "--resume", tmp_path / "resumed")
    assert result.exit_code == 0, result.output
    assert "resumed after epoch 2" in result.stderr
    a, b = _weights(tmp_path / "straight" / "last.safetensors"), _weights(tmp_path / "resumed" / "last.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k].numpy(), b[k].numpy()), k
    drop = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    read = lambda p: [json.loads(x) for x in (p / "metrics.jsonl").read_text().splitlines()]  # noqa: E731
    assert drop(read(tmp_path / "straight")) == drop(read(tmp_path / "resumed"))
    assert straight.best_epoch is not None


def test_resume_state_loads_without_unpickling_code(cli, data, tmp_path):
    import torch

    run = tmp_path / "run"
    assert _train(cli, data, run, "--epochs", "1").exit_code == 0
    state = torch.load(run / "resume.pt", weights_only=True)
    assert state["epoch"] == 1
    assert isinstance(state["rng"][0]["torch"], torch.Tensor)


def test_ram_disk_and_worker_processes_give_the_same_model(cli, data, tmp_path):
    for name, extra in (("ram", ["--cache", "ram"]), ("disk", ["--cache", "disk"]),
                        ("workers", ["--cache", "disk", "--workers", "2"])):
        result = _train(cli, data, tmp_path / name, "--epochs", "2", *extra)
        assert result.exit_code == 0, result.output
    a = _weights(tmp_path / "ram" / "last.safetensors")
    for other in ("disk", "workers"):
        b = _weights(tmp_path / other / "last.safetensors")
        assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a), other


def test_val_fraction_split_is_reproducible_and_recorded(cli, data, tmp_path):
    ids = {}
    for name, seed in (("a", "0"), ("b", "0"), ("c", "1")):
        result = cli("train", "--features", data["features"], "--embeddings", data["embeddings"], "--epochs", "1",
                     "--val-fraction", "0.25", "--seed", seed, "-o", tmp_path / name)
        assert result.exit_code == 0, result.output
        split = json.loads((tmp_path / name / "split.json").read_text())
        ids[name] = split["val_ids"]
        assert len(split["val_ids"]) == 24 and split["seed"] == int(seed)
    assert ids["a"] == ids["b"] != ids["c"]
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert config["data"]["val"] == {"source": "split", "fraction": 0.25, "seed": 0, "num_images": 24}


def test_sgd_onecycle_and_no_validation(cli, data, tmp_path):
    run = tmp_path / "run"
    result = cli("train", "--features", data["features"], "--embeddings", data["embeddings"], "--epochs", "2",
                 "--optimizer", "sgd", "--schedule", "onecycle", "--val-fraction", "0", "-o", run)
    assert result.exit_code == 0, result.output
    assert "no validation set" in result.stderr
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["val_mAP"] is None
    assert rows[-1]["lr"] < rows[0]["lr"]  # one-cycle anneals to a tiny rate at the end
    assert (run / "best.safetensors").is_file()


def test_masked_bce_ignores_unknown_targets():
    import torch

    from mlgraph_cli.core.training.losses import masked_bce

    logits = torch.tensor([[2.0, -1.0, 5.0]])
    full = masked_bce(logits, torch.tensor([[1, 0, 1]], dtype=torch.int8))
    masked = masked_bce(logits, torch.tensor([[1, 0, -1]], dtype=torch.int8))
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits[:, :2], torch.tensor([[1.0, 0.0]]))
    assert torch.isclose(masked, expected)
    assert not torch.isclose(full, masked)


def test_project_folder_needs_no_paths_and_numbers_runs(cli, tmp_path, monkeypatch):
    (tmp_path / "artifacts").mkdir()
    trainkit.write_features(tmp_path / "artifacts" / "features.h5", trainkit.planted(40))
    trainkit.write_features(tmp_path / "artifacts" / "val-features.h5", trainkit.planted(16, seed=3))
    trainkit.write_embeddings(tmp_path / "artifacts" / "embeddings.h5")
    (tmp_path / "mlgraph.toml").write_text('[dataset]\n[train]\nepochs = 1\nbatch_size = 8\n')
    monkeypatch.chdir(tmp_path)
    for expected in ("exp", "exp2"):
        result = cli("train")
        assert result.exit_code == 0, result.output
        assert (tmp_path / "runs" / "train" / expected / "best.safetensors").is_file()
    args = json.loads((tmp_path / "runs" / "train" / "exp" / "args.json").read_text())
    assert args["config"]["epochs"] == 1 and args["config"]["batch_size"] == 8
    assert args["inputs"]["val_features"] == str((tmp_path / "artifacts" / "val-features.h5").resolve())


# ---------------------------------------------------------------------------------------------
# User mistakes: one line, exit 1, naming the files and the command that fixes them

def test_embeddings_with_another_label_set(cli, data, tmp_path):
    other = trainkit.write_embeddings(tmp_path / "other.h5", labels=["bird", "cat", "dog", "horse"])
    line = one_line_error(cli("train", "--features", data["features"], "--embeddings", other, "-o", tmp_path / "r"))
    assert str(other) in line and str(data["features"]) in line
    assert "different label sets" in line and "'horse'" in line and "mlgraph embed" in line


def test_graph_from_another_dataset(cli, data, tmp_path):
    graph = trainkit.write_graph(tmp_path / "g.json", labels=["car", "bus", "cat", "dog"])
    line = one_line_error(cli("train", "--features", data["features"], "--embeddings", data["embeddings"],
                              "--graph", graph, "--head", "mlgcn", "-o", tmp_path / "r"))
    assert str(graph) in line and str(data["features"]) in line and "mlgraph build-graph" in line


def test_resume_with_another_head(cli, data, tmp_path):
    run = tmp_path / "run"
    assert _train(cli, data, run, "--epochs", "2").exit_code == 0
    line = one_line_error(cli("train", "--resume", run, "--head", "gap"))
    assert f"{run / 'config.json'}: this checkpoint is from head 'cma', not 'gap'" in line
    assert "mlgraph train --head gap" in line


def test_resume_refuses_changed_settings_and_finished_runs(cli, data, tmp_path):
    run = tmp_path / "run"
    assert _train(cli, data, run, "--epochs", "1").exit_code == 0
    line = one_line_error(cli("train", "--resume", run, "--lr", "0.5"))
    assert "lr = 0.1, not 0.5" in line and "mlgraph train" in line
    line = one_line_error(cli("train", "--resume", run))
    assert "already finished its 1 epochs" in line and "mlgraph evaluate" in line


def test_features_without_labels(cli, data, tmp_path):
    bare = trainkit.write_features(tmp_path / "bare.h5", trainkit.planted(8), with_labels=False)
    line = one_line_error(cli("train", "--features", bare, "--embeddings", data["embeddings"], "-o", tmp_path / "r"))
    assert line == (f"Error: {bare}: the features file has no labels, so there is nothing to learn from "
                    "(extract it with `mlgraph extract IMAGES --annotations ANNOTATIONS`)")


def test_missing_embeddings_for_cma(cli, data, tmp_path):
    line = one_line_error(cli("train", "--features", data["features"], "-o", tmp_path / "r"))
    assert "head cma needs label embeddings" in line and "mlgraph embed" in line
    missing = tmp_path / "nope.h5"
    line = one_line_error(cli("train", "--features", data["features"], "--embeddings", missing, "-o", tmp_path / "r"))
    assert str(missing) in line and "mlgraph embed" in line


def test_empty_features_file(cli, data, tmp_path):
    empty = trainkit.write_features(tmp_path / "empty.h5", trainkit.planted(0))
    line = one_line_error(cli("train", "--features", empty, "--embeddings", data["embeddings"], "-o", tmp_path / "r"))
    assert f"{empty}: the features file holds no images" in line and "mlgraph extract" in line


def test_existing_run_folder_needs_force(cli, data, tmp_path):
    run = tmp_path / "run"
    assert _train(cli, data, run, "--epochs", "1").exit_code == 0
    line = one_line_error(_train(cli, data, run, "--epochs", "1"))
    assert "already holds a training run" in line and f"--resume {run}" in line and "--force" in line
    assert _train(cli, data, run, "--epochs", "1", "--force").exit_code == 0


def test_ms_cma_needs_two_stages(cli, data, tmp_path):
    line = one_line_error(cli("train", "--features", data["features"], "--embeddings", data["embeddings"],
                              "--head", "ms-cma", "-o", tmp_path / "r"))
    assert str(data["features"]) in line and "features_aux" in line and "--layer" in line


def test_validation_features_from_another_backbone(cli, data, tmp_path):
    other = trainkit.write_features(tmp_path / "v.h5", trainkit.planted(8),
                                    backbone_config={"name": "resnet50", "weights": "IMAGENET1K_V2",
                                                     "image_size": 448, "layers": ["layer4"]})
    line = one_line_error(cli("train", "--features", data["features"], "--val-features", other, "--embeddings",
                              data["embeddings"], "-o", tmp_path / "r"))
    assert str(data["features"]) in line and str(other) in line and "extracted differently" in line
    assert "mlgraph extract" in line


def test_no_features_outside_a_project(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = one_line_error(cli("train", "--head", "gap"))
    assert "no training data given" in line and "mlgraph extract" in line


def test_end_to_end_from_images_fine_tunes_the_backbone(cli, tmp_path):
    labels = sorted(trainkit.SHAPES)
    ann = trainkit.make_images(tmp_path / "images", 12)
    emb = trainkit.write_embeddings(tmp_path / "e.h5", labels=labels)
    run = tmp_path / "run"
    result = cli("train", "--images", tmp_path / "images", "--annotations", ann, "--embeddings", emb,
                 "--backbone", "resnet18", "--weights", "none", "--image-size", "64", "--epochs", "1",
                 "--batch-size", "6", "--val-fraction", "0.25", "--backbone-lr-scale", "0.5", "-o", run)
    assert result.exit_code == 0, result.output
    config = json.loads((run / "config.json").read_text())
    assert config["backbone_trained"] is True and config["backbone"]["name"] == "resnet18"
    assert config["head"]["in_channels"] == 512
    w = _weights(run / "last.safetensors")
    assert any(k.startswith("backbone.") for k in w) and any(k.startswith("head.") for k in w)
    # the backbone moved away from its seeded initialisation
    from mlgraph_cli.core.features.backbones.build import build_backbone

    init = build_backbone("resnet18", "none", None, 64, "cpu").state_dict()
    key = next(k for k in init if k.endswith("conv1.weight"))
    assert not np.allclose(init[key].numpy(), w["backbone." + key].numpy())
    # evaluate goes through the fine-tuned backbone on images; cached features would not match it
    result = cli("evaluate", run, "--images", tmp_path / "images", "--annotations", ann, "-o", "-")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["num_images"] == 12
    feats = trainkit.write_features(tmp_path / "f.h5", trainkit.planted(4, labels=labels, channels=512),
                                    labels=labels, backbone_config=config["backbone"])
    line = one_line_error(cli("evaluate", run, "--features", feats))
    assert "fine-tuned its backbone" in line and "--images DIR --annotations ANN" in line
    result = cli("predict", tmp_path / "images" / "scene000.png", "--model", run, "--format", "jsonl",
                 "--threshold", "0")
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["labels"]) == 3


def test_ctrl_c_keeps_the_last_epoch_and_says_how_to_resume(cli, data, tmp_path, monkeypatch):
    from mlgraph_cli.core.training import trainer as training

    real = training._epoch_line

    def interrupt_after_first(row, epochs, label="epoch"):
        if row["epoch"] == 1:
            raise KeyboardInterrupt  # as if Ctrl-C arrived just after epoch 1 was saved
        return real(row, epochs, label)

    monkeypatch.setattr(training, "_epoch_line", interrupt_after_first)
    run = tmp_path / "run"
    result = _train(cli, data, run, "--epochs", "2", "--probe-epochs", "0")  # the fault is timed by epoch 1
    assert result.exit_code == 130
    assert f"continue with `mlgraph train --resume {run}`" in result.stderr
    monkeypatch.setattr(training, "_epoch_line", real)
    result = cli("train", "--resume", run)
    assert result.exit_code == 0, result.output
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2


def test_cosine_schedule_warms_up_then_decays_to_the_floor():
    import torch

    from mlgraph_cli.core.training.trainer import TrainConfig, make_scheduler

    config = TrainConfig(epochs=4, lr=0.1, warmup_epochs=1, min_lr_ratio=0.01)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=config.lr)
    sched = make_scheduler(opt, config, steps_per_epoch=10)
    lrs = []
    for _ in range(40):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.01) and lrs[9] == pytest.approx(0.1)  # linear warm-up over 10 steps
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))  # then only down
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 * 0.01)  # the floor after the last step
