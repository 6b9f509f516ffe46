"""core/models: every head forward and backward at tiny sizes (B=2, D=8, 4x4, C=5, d=6)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mlgraph_cli.core.graph.adjacency import adjacency as graph_adjacency
from mlgraph_cli.core.graph.counts import build_label_graph
from mlgraph_cli.core.models import HEADS, build_head, head_modality, heads_for, normalize_adjacency, resolve_head
from mlgraph_cli.errors import InputError, MismatchError

B, D, H, W, C, E = 2, 8, 4, 4, 5, 6

# (name, options): the heads and the CMA variants the benchmark chooses between
CASES = [
    ("cma", {}),
    ("cma", {"cmt_layers": 2, "hidden": 7, "gap_branch": False, "dropout": 0.1}),
    ("cma", {"collapse": "zero"}),
    ("ms-cma", {}),
    ("gap", {}),
    ("gmp", {"dropout": 0.2}),
    ("mlgcn", {"hidden": 9}),
    ("query", {"init": "embeddings", "width": 16, "heads": 4, "ffn": 32}),
    ("query", {"init": "random", "groups": 2, "layers": 2, "width": 16, "heads": 4, "ffn": 32, "dropout": 0.0}),
    ("probe", {}),
    ("probe", {"pool": "gmp"}),
]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def embeddings() -> torch.Tensor:
    return torch.randn(C, E)


def mlgcn_adjacency() -> torch.Tensor:
    """ML-GCN's re-weighted adjacency of a tiny label graph (core/graph/adjacency.py, kind "mlgcn")."""
    y = np.array([[1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [0, 1, 1, 0, 1], [0, 0, 0, 1, 1], [1, 0, 0, 1, 0]])
    g = build_label_graph(y, ["a", "b", "c", "d", "e"])
    return torch.from_numpy(graph_adjacency(g, "mlgcn", tau=0.4, p=0.2)).float()


def make(name: str, **options):
    in_channels = [D, D // 2] if name == "ms-cma" else D
    return build_head(name, in_channels=in_channels, num_labels=C, embeddings=embeddings(),
                      adjacency=mlgcn_adjacency(), **options)


def inputs(name: str):
    if name == "ms-cma":
        return [torch.randn(B, D, H, W), torch.randn(B, D // 2, H // 2, W // 2)]  # two stages, two sizes
    return torch.randn(B, D, H, W)


IMAGE_HEADS = sorted(n for n in HEADS if head_modality(n) == "image")


def test_registry_names():
    """One registry: image heads and temporal heads side by side, each knowing its modality."""
    assert set(IMAGE_HEADS) == {"cma", "ms-cma", "gap", "gmp", "mlgcn", "query", "probe"}
    assert {n for n in HEADS if head_modality(n) == "video"} == {"video-cma", "video-gap", "video-gmp",
                                                                "video-frame-max", "video-query", "video-probe"}
    assert heads_for("video") == ["cma", "gap", "gmp", "frame-max", "query", "probe"]


def test_resolve_head_by_modality():
    assert resolve_head("cma", "image") == "cma" and resolve_head("cma", "video") == "video-cma"
    assert resolve_head("video-gap", "video") == "video-gap"
    with pytest.raises(InputError, match=r"^--head mlgcn: not a head for video; f.h5 holds video features"):
        resolve_head("mlgcn", "video", "f.h5")
    with pytest.raises(InputError, match=r"^--head frame-max: a head for video features .*not for images"):
        resolve_head("frame-max", "image")
    with pytest.raises(InputError, match=r"^--head gcn: unknown head \(choose one of: cma, ms-cma, gap, gmp, "
                                         r"mlgcn, query, probe\)"):
        resolve_head("gcn", "image")


@pytest.mark.parametrize("name,options", CASES)
def test_forward_backward(name, options):
    head = make(name, **options)
    logits = head(inputs(name))
    assert logits.shape == (B, C)
    F.binary_cross_entropy_with_logits(logits, torch.randint(0, 2, (B, C)).float()).backward()
    for pname, p in head.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, pname
    buffers = dict(head.named_buffers())
    for bname, buf in buffers.items():
        if bname.endswith("embeddings"):
            assert not buf.requires_grad and buf.grad is None  # frozen
    assert not any(n.endswith("embeddings") for n, _ in head.named_parameters())
    if head.needs_embeddings:
        assert any(k.endswith("embeddings") for k in head.state_dict())  # a checkpoint carries them


@pytest.mark.parametrize("name", IMAGE_HEADS)
def test_flags(name):
    head = make(name)
    assert head.multi_scale == (name == "ms-cma")
    assert head.needs_embeddings == (name in ("cma", "ms-cma", "mlgcn"))  # query: random queries by default
    assert head.needs_adjacency == (name == "mlgcn")
    assert hasattr(head, "attention") == (name in ("cma", "ms-cma", "query"))
    assert head.fitted == (name == "probe")


@pytest.mark.parametrize("name,options", CASES)
def test_config_round_trip(name, options):
    head = make(name, **options).eval()
    config = json.loads(json.dumps(head.config))  # plain JSON
    assert config["name"] == name and config["num_labels"] == C
    x = inputs(name)
    # rebuilt with the inputs again, or from the config alone (buffers come from the state dict)
    for again in (build_head(**config, embeddings=embeddings(), adjacency=mlgcn_adjacency()), build_head(**config)):
        missing = again.load_state_dict(head.state_dict())
        assert not missing.missing_keys and not missing.unexpected_keys
        assert torch.allclose(again.eval()(x), head(x), atol=1e-6)
        assert again.config == head.config


def test_cma_attention_sums_to_one_and_matches_the_formula():
    head = make("cma").eval()
    x = torch.randn(B, D, H, W)
    a = head.attention(x)
    assert a.shape == (B, C, H, W)
    assert (a >= 0).all()
    torch.testing.assert_close(a.sum(dim=(2, 3)), torch.ones(B, C))
    # s_k = ReLU(cos(Z, e_k)), a_k = s_k / sum s_k, written out by hand
    z = head.cmt(x)  # (B, d, H, W)
    cos = F.cosine_similarity(z.unsqueeze(1), head.embeddings[None, :, :, None, None], dim=2)  # (B, C, H, W)
    s = cos.clamp_min(0)
    torch.testing.assert_close(a, s / s.sum(dim=(2, 3), keepdim=True), atol=1e-5, rtol=1e-4)


def test_cma_logits_are_per_label_classifiers_on_category_features():
    head = make("cma", gap_branch=True).eval()
    x = torch.randn(B, D, H, W)
    f = head.category_features(x)  # (B, C, D)
    expected = (f * head.weight).sum(-1) + head.bias + head.gap(x.mean(dim=(2, 3)))
    torch.testing.assert_close(head(x), expected, atol=1e-5, rtol=1e-5)
    no_gap = make("cma", gap_branch=False).eval()  # the paper's head
    f = no_gap.category_features(x)
    torch.testing.assert_close(no_gap(x), (f * no_gap.weight).sum(-1) + no_gap.bias, atol=1e-5, rtol=1e-5)


def collapsed(collapse: str):
    """A CMA head whose transform maps every location to -e: all cosines -1, every s_k = 0."""
    e = torch.ones(C, E)
    head = build_head("cma", in_channels=D, num_labels=C, embeddings=e, collapse=collapse, gap_branch=False)
    conv = head.cmt.net[0]
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.fill_(-1.0)
    return head.eval()


def test_attention_collapse_uniform_falls_back_to_average_pooling():
    head = collapsed("uniform")
    x = torch.randn(B, D, H, W)
    torch.testing.assert_close(head.attention(x), torch.full((B, C, H, W), 1.0 / (H * W)))
    f = head.category_features(x)
    torch.testing.assert_close(f, x.mean(dim=(2, 3))[:, None, :].expand(B, C, D), atol=1e-6, rtol=1e-5)


def test_attention_collapse_zero_leaves_only_the_bias():
    head = collapsed("zero")
    x = torch.randn(B, D, H, W)
    assert head.attention(x).abs().max() == 0
    torch.testing.assert_close(head(x), head.bias.expand(B, C))


def test_ms_cma_two_sizes():
    head = make("ms-cma").eval()
    xs = inputs("ms-cma")
    per_stage = [branch(x) for branch, x in zip(head.branches, xs)]
    torch.testing.assert_close(head(xs), (per_stage[0] + per_stage[1]) / 2)
    maps = head.attention_maps(xs)
    assert [m.shape for m in maps] == [(B, C, H, W), (B, C, H // 2, W // 2)]
    a = head.attention(xs)
    assert a.shape == (B, C, H, W)  # the finer grid
    torch.testing.assert_close(a.sum(dim=(2, 3)), torch.ones(B, C))
    with pytest.raises(ValueError, match="list of 2 feature maps"):
        head(xs[0])


def test_video_clips_attend_over_frames():
    head = make("cma").eval()
    clip = torch.randn(B, D, 7)  # (B, D, T)
    assert head(clip).shape == (B, C)
    assert head.attention(clip).shape == (B, C, 7, 1)


def test_embeddings_stay_frozen_through_an_optimiser_step():
    head = make("cma")
    before = head.embeddings.clone()
    opt = torch.optim.SGD(head.parameters(), lr=1.0)
    head(inputs("cma")).sum().backward()
    opt.step()
    assert torch.equal(head.embeddings, before)


def test_mlgcn_normalised_adjacency_and_classifiers():
    a = mlgcn_adjacency()
    head = make("mlgcn").eval()
    d = a.sum(dim=1)  # row sums
    expected = torch.diag(d.rsqrt()) @ a.T @ torch.diag(d.rsqrt())  # D^-1/2 A^T D^-1/2
    torch.testing.assert_close(head.adjacency, expected)
    # an asymmetric matrix with unequal row sums: the transpose matters
    m = torch.tensor([[1.0, 2.0], [0.0, 4.0]])  # row sums 3 and 4
    # (i, j) = A_ji / sqrt(d_i d_j): (0, 0) 1/3, (0, 1) A_10 / sqrt(12) = 0, (1, 0) 2 / sqrt(12), (1, 1) 4/4
    torch.testing.assert_close(normalize_adjacency(m), torch.tensor([[1 / 3, 0.0], [2 / 12 ** 0.5, 1.0]]))
    assert normalize_adjacency(torch.zeros(2, 2)).abs().sum() == 0  # no inf for isolated labels
    x = torch.randn(B, D, H, W)
    w = head.classifiers()
    assert w.shape == (C, D)
    torch.testing.assert_close(head(x), x.amax(dim=(2, 3)) @ w.T)


def test_mlgcn_uses_the_graph():
    x = torch.randn(B, D, H, W)
    head = make("mlgcn").eval()
    other = build_head("mlgcn", in_channels=D, num_labels=C, embeddings=head.embeddings, adjacency=torch.eye(C))
    other.load_state_dict({k: v for k, v in head.state_dict().items() if k != "adjacency"}, strict=False)
    assert not torch.allclose(head(x), other.eval()(x))


def test_unknown_head_and_option():
    with pytest.raises(InputError, match=r"unknown head 'gcn' \(choose one of: cma, ms-cma, gap, gmp, mlgcn, query, probe, video-cma"):
        build_head("gcn", in_channels=D, num_labels=C)
    with pytest.raises(InputError, match=r"head 'gap' has no option cmt_layers \(its options: dropout\)"):
        build_head("gap", in_channels=D, num_labels=C, cmt_layers=2)
    with pytest.raises(InputError, match=r"option cmt_layers = 0 is not valid"):
        build_head("cma", in_channels=D, num_labels=C, embeddings=embeddings(), cmt_layers=0)
    with pytest.raises(InputError, match=r"option collapse = 'softmax' is not valid \(uniform or zero\)"):
        build_head("cma", in_channels=D, num_labels=C, embeddings=embeddings(), collapse="softmax")


def test_missing_or_mismatched_inputs():
    with pytest.raises(InputError, match=r"head 'cma' needs label embeddings .*`mlgraph embed`"):
        build_head("cma", in_channels=D, num_labels=C)
    with pytest.raises(InputError, match=r"head 'mlgcn' needs the label graph .*`mlgraph build-graph`"):
        build_head("mlgcn", in_channels=D, num_labels=C, embeddings=embeddings())
    with pytest.raises(MismatchError, match=r"the label embeddings have 4 rows for 5 labels"):
        build_head("cma", in_channels=D, num_labels=C, embeddings=torch.randn(4, E))
    with pytest.raises(MismatchError, match=r"the adjacency is \(4, 4\) for 5 labels"):
        build_head("mlgcn", in_channels=D, num_labels=C, embeddings=embeddings(), adjacency=torch.eye(4))
    with pytest.raises(MismatchError, match=r"built for 6-d label embeddings but got 3-d"):
        build_head("cma", in_channels=D, num_labels=C, embeddings=torch.randn(C, 3), embedding_dim=6)
    head = make("gap")
    with pytest.raises(MismatchError, match=r"built for 8-channel features but got 3 channels"):
        head(torch.randn(B, 3, H, W))


def test_attention_stays_float32_under_mixed_precision():
    head = collapsed("uniform")
    x = torch.randn(B, D, H, W)
    with torch.autocast("cpu", dtype=torch.float16):
        a = head.attention(x)
        logits = head(x)
    assert a.dtype == torch.float32  # eps / N = 6e-8 would round to 0 in float16
    torch.testing.assert_close(a, torch.full((B, C, H, W), 1.0 / (H * W)))
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", IMAGE_HEADS)
def test_float16_cached_features(name):
    head = make(name).eval()
    x = inputs(name)
    half = [m.half() for m in x] if isinstance(x, list) else x.half()  # as `mlgraph extract` stores them
    out = head(half)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, head([m.half().float() for m in x] if isinstance(x, list) else x.half().float()))


@pytest.mark.parametrize("name", ["cma", "ms-cma"])
def test_cma_dropout_regularises_training_only(name):
    """dropout (0.3 by default; docs/method.md) changes training logits, never
    evaluation ones, and the attention always sees the features without dropout."""
    config = make(name).config  # the set the rule keeps (docs/benchmarks.md): GAP branch, dropout 0.3, uniform
    assert (config["gap_branch"], config["dropout"], config["collapse"]) == (True, 0.3, "uniform")
    head = make(name, dropout=0.3)
    xs = inputs(name)
    head.train()
    assert not torch.allclose(head(xs), head(xs))
    torch.testing.assert_close(head.attention(xs), head.attention(xs))
    head.eval()
    torch.testing.assert_close(head(xs), head(xs))
    assert build_head(**{**head.config, "dropout": 0.0}, embeddings=embeddings()).config["dropout"] == 0.0
