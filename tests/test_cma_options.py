"""CMA's measured options: a learned per-label attention sharpness and embeddings tuned near the graph's."""

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


def test_sharpen_starts_as_the_papers_attention_and_concentrates_as_its_exponent_grows():
    plain, sharp = _cma(), _cma(sharpen=True)
    sharp.load_state_dict(plain.state_dict(), strict=False)  # same phi and embeddings
    x = torch.randn(B, D, H, W)
    a0 = plain.attention(x)
    assert torch.allclose(sharp.attention(x), a0, atol=1e-6)  # g_k = 1 at the start
    with torch.no_grad():
        sharp.sharpness.fill_(1.0)  # g_k = e
    a1 = sharp.attention(x)
    assert torch.allclose(a1.sum(dim=(-2, -1)), torch.ones(B, C), atol=1e-5)
    s = plain.similarity(x).reshape(B, C, H, W)
    expect = s ** torch.e / (s ** torch.e).sum(dim=(-2, -1), keepdim=True)
    live = (s ** torch.e).sum(dim=(-2, -1)) > 0.05  # where eps in a_k = s / (sum s + eps) is negligible
    assert torch.allclose(a1[live], expect[live], atol=1e-5)
    assert (a1.flatten(2).max(-1).values[live] >= a0.flatten(2).max(-1).values[live] - 1e-6).all()
    assert (a1[live][s[live] == 0] < 1e-5).all()  # a location the label ignores stays ignored


def test_sharpen_gradient_is_finite_where_scores_are_zero():
    head = _cma(sharpen=True, gap_branch=False)
    x = torch.randn(B, D, H, W)
    assert (head.similarity(x) == 0).any()
    head(x).sum().backward()
    for name, p in head.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert head.sharpness.grad.abs().sum() > 0


def test_tuned_embeddings_move_while_the_graphs_stay_and_the_penalty_measures_the_move():
    head = _cma(tune_embeddings=True, anchor=2.0)
    given = head.embeddings.clone()
    assert float(head.penalty().detach()) == 0.0
    opt = torch.optim.SGD(head.parameters(), lr=1.0)
    head(torch.randn(B, D, H, W)).sum().backward()
    opt.step()
    assert torch.equal(head.embeddings, given)  # the graph's embeddings, kept as the anchor
    assert head.embedding_offset.abs().sum() > 0
    moved = F.normalize(given + head.embedding_offset.detach(), dim=1) - F.normalize(given, dim=1)
    assert float(head.penalty().detach()) == pytest.approx(2.0 * float(moved.pow(2).sum(1).mean()), rel=1e-5)
    assert _cma(tune_embeddings=True, anchor=0.0).penalty() is None
    assert _cma().penalty() is None


def test_ms_cma_averages_its_branches_penalties():
    head = build_head("ms-cma", in_channels=[D, D // 2], num_labels=C, embeddings=torch.randn(C, E),
                      tune_embeddings=True, anchor=1.0)
    with torch.no_grad():
        head.branches[0].embedding_offset.add_(1.0)
    terms = [float(b.penalty().detach()) for b in head.branches]
    assert terms[0] > 0 and terms[1] == 0
    assert float(head.penalty().detach()) == pytest.approx(sum(terms) / 2)


@pytest.mark.parametrize("options", [{"sharpen": 1}, {"tune_embeddings": "yes"}, {"anchor": -1.0},
                                     {"anchor": True}])
def test_bad_options_are_one_line(options):
    with pytest.raises(InputError) as info:
        _cma(**options)
    assert "\n" not in str(info.value) and next(iter(options)) in str(info.value)


def _embedding_move(tmp_path, anchor: float) -> float:
    """Train cma with tuned embeddings through the train stage; how far the embeddings moved."""
    from safetensors.torch import load_file

    from mlgraph_cli.core.training.trainer import TrainConfig
    from mlgraph_cli.stages.train import train
    from mlgraph_cli.stages.train.inputs import TrainInputs

    data = trainkit.toy_dataset(tmp_path / "data", n_train=64, n_val=32)
    run = tmp_path / f"run-{anchor}"
    config = TrainConfig(head="cma", epochs=3, batch_size=16, lr=0.05, device="cpu", cache="ram",
                         head_options={"tune_embeddings": True, "anchor": anchor})
    train(TrainInputs(features=data["features"], val_features=data["val"], embeddings=data["embeddings"]),
          config, run_dir=run)
    state = load_file(str(run / "last.safetensors"))
    key = next(k for k in state if k.endswith("embedding_offset"))
    given = next(v for k, v in state.items() if k.endswith(".embeddings"))
    moved = F.normalize(given + state[key], dim=1) - F.normalize(given, dim=1)
    return float(moved.pow(2).sum(1).mean())


def test_the_trainer_adds_the_heads_penalty(tmp_path):
    free, held = _embedding_move(tmp_path, 0.0), _embedding_move(tmp_path, 100.0)
    assert free > 0
    assert held < free / 2  # a strong anchor keeps the graph's embeddings


def test_init_from_probe_makes_each_locations_cosine_read_the_probe():
    head = _cma()
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
