"""Temporal heads: masking (padded frames never matter), attention, config round trip, option errors."""

from __future__ import annotations

import pytest
import torch

from mlgraph_cli.core.models import HEADS as REGISTRY, build_head, head_modality, resolve_head
from mlgraph_cli.core.models.temporal import masked_max, masked_mean
from mlgraph_cli.errors import InputError

B, D, T, C, E = 3, 12, 9, 5, 6


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, D, T, generator=g)
    lengths = torch.tensor([9, 4, 1])
    mask = torch.arange(T)[None, :] < lengths[:, None]  # (B, T)
    return x, mask


def _head(name, **options):
    torch.manual_seed(0)
    emb = torch.randn(C, E) if name in ("video-cma", "video-query") else None
    return build_head(name, in_channels=D, num_labels=C, embeddings=emb, **options)


HEADS = [("video-cma", {}), ("video-cma", {"cmt_layers": 2, "hidden": 8, "center": False}),
         ("video-cma", {"mean_branch": False, "collapse": "zero"}),
         ("video-gap", {}), ("video-gmp", {}),
         ("video-query", {"width": 16, "heads": 4, "ffn": 32, "dropout": 0.0}), ("video-probe", {})]


@pytest.mark.parametrize("name, options", HEADS)
@pytest.mark.parametrize("train", [False, True])
def test_padded_frames_do_not_change_outputs(name, options, train):
    head = _head(name, **options).train(train)
    x, mask = _batch()
    y1 = head(x, mask)
    x2 = x.clone()
    x2[~mask.unsqueeze(1).expand_as(x)] = 1e3 * torch.randn(int((~mask).sum()) * D)  # garbage in the padding
    y2 = head(x2, mask)
    assert y1.shape == (B, C)
    torch.testing.assert_close(y1, y2)
    if not train:  # (in training, batch norm statistics depend on the batch, not on padding)
        # a clip's output does not depend on how much padding it was given
        torch.testing.assert_close(head(x[1:2, :, :4], mask[1:2, :4]), y1[1:2])


@pytest.mark.parametrize("options", [{}, {"collapse": "zero"}])
def test_attention_sums_to_one_over_real_frames_only(options):
    head = _head("video-cma", **options).eval()
    x, mask = _batch(1)
    a = head.attention(x, mask)  # (B, C, T)
    assert a.shape == (B, C, T)
    assert torch.all(a[~mask.unsqueeze(1).expand_as(a)] == 0)
    sums = a.sum(-1)
    if options.get("collapse") == "zero":  # the paper's formula: s / (sum s + eps), zero where all s are 0
        s = head.similarity(x, mask)
        torch.testing.assert_close(a, s / (s.sum(-1, keepdim=True) + head.eps))
        assert (s.sum(-1) == 0).any() and torch.all(sums[s.sum(-1) == 0] == 0)
    else:
        torch.testing.assert_close(sums, torch.ones(B, C))
        # the one-frame clip attends only to its frame
        torch.testing.assert_close(a[2, :, 0], torch.ones(C))


def test_attention_follows_the_label_embedding():
    """With phi the identity and one-hot embeddings, label k attends to the frames that point at e_k."""
    head = build_head("video-cma", in_channels=C, num_labels=C, embeddings=torch.eye(C), center=False)
    with torch.no_grad():
        head.cmt.linears[0].weight.copy_(torch.eye(C)[:, :, None])
        head.cmt.linears[0].bias.zero_()
    x = -torch.ones(1, C, 4)  # every frame points away from every label ...
    x[0, 2, 1] = 5.0  # ... except frame 1, which points at label 2
    a = head.eval().attention(x)
    assert a[0, 2].argmax() == 1 and a[0, 2, 1] > 0.99


def test_mask_defaults_to_all_frames_and_accepts_4d():
    head = _head("video-cma").eval()
    x, _ = _batch()
    torch.testing.assert_close(head(x), head(x.unsqueeze(-1), torch.ones(B, T, dtype=torch.bool)))


def test_masked_pools():
    x = torch.tensor([[[1.0, 3.0, 100.0]]])  # (1, 1, 3)
    mask = torch.tensor([[True, True, False]])
    assert masked_mean(x, mask).item() == 2.0
    assert masked_max(-x, mask).item() == -1.0


@pytest.mark.parametrize("name", [n for n in REGISTRY if head_modality(n) == "video"])
def test_forward_backward_and_rebuild_from_config(name):
    head = _head(name)
    x, mask = _batch(2)
    head(x, mask).sum().backward()
    assert all(p.grad is not None for p in head.parameters() if p.requires_grad)
    again = build_head(**head.config)
    again.load_state_dict(head.state_dict())
    torch.testing.assert_close(again.eval()(x, mask), head.eval()(x, mask))


def test_image_head_names_map_to_video_heads():
    assert resolve_head("cma", "video") == "video-cma" and resolve_head("gmp", "video") == "video-gmp"
    assert build_head(resolve_head("cma", "video"), in_channels=D, num_labels=C, embeddings=torch.randn(C, E)).name == "video-cma"


def test_head_errors():
    with pytest.raises(InputError, match="--head mlgcn: not a head for video"):
        resolve_head("mlgcn", "video")
    with pytest.raises(InputError, match="head 'video-cma' has no option heads"):
        build_head("video-cma", in_channels=D, num_labels=C, embeddings=torch.randn(C, E), heads=2)
    with pytest.raises(InputError, match="needs label embeddings"):
        build_head("video-cma", in_channels=D, num_labels=C)
    with pytest.raises(InputError, match="option collapse = 'none' is not valid"):
        build_head("video-cma", in_channels=D, num_labels=C, embeddings=torch.randn(C, E), collapse="none")
