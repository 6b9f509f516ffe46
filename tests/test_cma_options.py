"""CMA's probe start (image and multi-scale), and the options the benchmarks did not keep."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import trainkit
from mlgraph_cli.core.models import build_head
from mlgraph_cli.errors import InputError

B, D, H, W, C, E = 3, 8, 4, 4, 5, 6


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _cma(**options):
    return build_head("cma", in_channels=D, num_labels=C, embeddings=torch.randn(C, E), **options)


@pytest.mark.parametrize("name", ["cma", "video-cma"])
def test_a_saved_config_with_a_retired_option_at_its_no_op_value_still_loads(name):
    """Runs saved before the options the benchmarks rejected were removed (sharpen, tune_embeddings,
    anchor; video: norm, delta) carry them in config.json at the value that did nothing."""
    old = {"sharpen": False, "tune_embeddings": False, "anchor": 1.0} if name == "cma" else \
        {"sharpen": False, "norm": False, "delta": 0.0}
    head = build_head(name, in_channels=D, num_labels=C, embeddings=torch.randn(C, E), **old)
    assert not set(old) & set(head.config)  # gone from what the run saves from now on


@pytest.mark.parametrize("option, value", [("sharpen", True), ("tune_embeddings", True), ("delta", 0.2),
                                           ("norm", True)])
def test_a_retired_option_that_did_something_is_one_line(option, value):
    with pytest.raises(InputError, match=f"option {option} = {value!r} was removed"):
        build_head("cma", in_channels=D, num_labels=C, embeddings=torch.randn(C, E), **{option: value})


def test_init_from_probe_makes_each_locations_cosine_read_the_probe():
    head = _cma(gap_branch=True)
    v, b = torch.randn(C, D), torch.randn(C)
    head.init_from_probe(v, b)
    x = torch.randn(B, D, H, W)
    dots = torch.einsum("cd,bdhw->bchw", F.normalize(head.embeddings, dim=1), head.cmt(x))
    torch.testing.assert_close(dots, torch.einsum("cd,bdhw->bchw", v, x), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(head.weight, v)
    assert float(head.gap.weight.detach().abs().sum()) == 0  # the first logits are the probe's, pooled by attention
    with pytest.raises(ValueError, match="cmt_layers = 1"):
        _cma(cmt_layers=2).init_from_probe(v, b)


@pytest.mark.parametrize("head,probed", [("cma", True), ("gap", False)])
def test_image_runs_start_from_a_probe_when_asked(tmp_path, head, probed):
    import json

    from mlgraph_cli.core.training.trainer import TrainConfig
    from mlgraph_cli.stages.train import train
    from mlgraph_cli.stages.train.inputs import TrainInputs

    data = trainkit.toy_dataset(tmp_path / "data", n_train=64, n_val=32)
    inputs = TrainInputs(features=data["features"], val_features=data["val"], embeddings=data["embeddings"])
    config = TrainConfig(head=head, epochs=2, probe_epochs=3, batch_size=16, lr=0.05, device="cpu")
    result = train(inputs, config, run_dir=tmp_path / "run")
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert ("probe" in saved) == probed  # only a head with init_from_probe starts from one
    if probed:
        assert saved["probe"] == {"epochs": 3, "loss": pytest.approx(saved["probe"]["loss"]), "images": 64,
                                  "embedding_rank": 4, "residual": pytest.approx(0.0, abs=1e-5)}
        assert 0 < saved["probe"]["loss"] < 0.7
    assert result.best_map > 50


@pytest.mark.parametrize("options,probe_epochs", [({}, 20), ({"cmt_layers": 2}, None)])
def test_image_cma_starts_from_a_probe_by_default_when_its_transform_is_linear(tmp_path, options, probe_epochs):
    import json

    from mlgraph_cli.core.training.trainer import TrainConfig
    from mlgraph_cli.stages.train import train
    from mlgraph_cli.stages.train.inputs import TrainInputs

    data = trainkit.toy_dataset(tmp_path / "data", n_train=48, n_val=16)
    inputs = TrainInputs(features=data["features"], val_features=data["val"], embeddings=data["embeddings"])
    train(inputs, TrainConfig(head="cma", epochs=1, batch_size=16, device="cpu", head_options=options),
          run_dir=tmp_path / "run")
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved.get("probe", {}).get("epochs") == probe_epochs


def test_ms_cma_starts_each_stage_from_its_block_of_one_probe():
    head = build_head("ms-cma", in_channels=[D, D // 2], num_labels=C, embeddings=torch.randn(C, E))
    v, b = torch.randn(C, D + D // 2), torch.randn(C)
    head.init_from_probe(v, b)
    torch.testing.assert_close(head.branches[0].weight, 2 * v[:, :D])  # two stages, logits averaged
    torch.testing.assert_close(head.branches[1].weight, 2 * v[:, D:])
    torch.testing.assert_close(head.branches[1].bias, b)
    with pytest.raises(ValueError, match="stages"):
        head.init_from_probe(torch.randn(C, D), b)


def test_ms_cma_run_records_its_probe(tmp_path):
    import json

    from mlgraph_cli.core.training.trainer import TrainConfig
    from mlgraph_cli.stages.train import train
    from mlgraph_cli.stages.train.inputs import TrainInputs

    d = tmp_path / "d"
    d.mkdir()
    feats = trainkit.write_features(d / "f.h5", trainkit.planted(48, aux=True))
    val = trainkit.write_features(d / "v.h5", trainkit.planted(24, aux=True, seed=1))
    inputs = TrainInputs(features=feats, val_features=val, embeddings=trainkit.write_embeddings(d / "e.h5"))
    train(inputs, TrainConfig(head="ms-cma", epochs=1, probe_epochs=2, batch_size=16, device="cpu"),
          run_dir=tmp_path / "run")
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["probe"]["epochs"] == 2 and saved["probe"]["images"] == 48
