"""The label-query head (Query2Label / ML-Decoder): queries, groups, attention maps, video masking, options."""

from __future__ import annotations

import pytest
import torch

import trainkit
from mlgraph_cli.core.models import build_head
from mlgraph_cli.errors import InputError

B, D, H, W, C, E, T = 2, 8, 3, 4, 5, 6, 7
SMALL = {"width": 16, "heads": 4, "ffn": 32, "dropout": 0.0}


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _query(name="query", **options):
    options = {"init": "embeddings", **SMALL, **options}
    return build_head(name, in_channels=D, num_labels=C, embeddings=torch.randn(C, E) if options["init"] == "embeddings"
                      else None, **options)


@pytest.mark.parametrize("groups, queries, per_query", [(0, 5, 1), (2, 2, 3), (4, 3, 2), (5, 5, 1)])
def test_group_decoding_shares_each_query_among_consecutive_labels(groups, queries, per_query):
    head = _query(groups=groups).eval()
    assert (head.num_queries, head.per_query) == (queries, per_query)  # 4 groups of 2 for 5 labels: 3 queries
    x = torch.randn(B, D, H, W)
    a = head.attention(x)  # (B, C, H, W)
    assert a.shape == (B, C, H, W) and (a >= 0).all()
    torch.testing.assert_close(a.sum(dim=(2, 3)), torch.ones(B, C))
    for k in range(C):  # a label's map is its query's
        torch.testing.assert_close(a[:, k], a[:, (k // per_query) * per_query])
    assert head(x).shape == (B, C)


def test_embedding_queries_follow_the_embeddings_and_random_ones_do_not_need_them():
    e = torch.randn(C, E)
    e[3] = 4.0 * e[1]  # the same direction: the same unit embedding, the same query
    head = build_head("query", in_channels=D, num_labels=C, embeddings=e, init="embeddings", **SMALL)
    q = head.queries()
    torch.testing.assert_close(q[3], q[1])
    assert not torch.allclose(q[0], q[1])
    free = build_head("query", in_channels=D, num_labels=C, **SMALL)  # random queries: the default
    assert free.queries().shape == (C, 16) and not free.needs_embeddings and "embedding_dim" not in free.config
    assert type(free).reads_embeddings({}) is False and type(free).reads_embeddings({"init": "embeddings"}) is True
    grouped = build_head("query", in_channels=D, num_labels=C, embeddings=e, init="embeddings", groups=2, **SMALL)
    unit = torch.nn.functional.normalize(e, dim=1)
    torch.testing.assert_close(grouped.queries(), grouped.query_proj(torch.stack([unit[:3].mean(0), unit[3:].mean(0)])))


def test_video_queries_never_see_padded_frames():
    head = _query("video-query").eval()
    x = torch.randn(3, D, T)
    mask = torch.arange(T)[None, :] < torch.tensor([7, 3, 1])[:, None]  # (3, T)
    y = head(x, mask)
    garbage = x.clone()
    garbage[~mask.unsqueeze(1).expand_as(x)] = 1e3
    torch.testing.assert_close(head(garbage, mask), y)
    a = head.attention(x, mask)  # (3, C, T)
    assert (a[~mask.unsqueeze(1).expand_as(a)] == 0).all()
    torch.testing.assert_close(a.sum(-1), torch.ones(3, C))
    torch.testing.assert_close(head(x[1:2, :, :3], mask[1:2, :3]), y[1:2])  # the padding's length does not matter
    empty = torch.zeros(1, T, dtype=torch.bool)
    assert torch.isfinite(head(x[:1], empty)).all()  # a clip with no real frame stays finite
    head.train()
    head(x, mask).sum().backward()
    assert all(p.grad is not None for p in head.parameters())


@pytest.mark.parametrize("options, message", [
    ({"init": "glove"}, "option init = 'glove' is not valid (embeddings or random)"),
    ({"width": 18}, "option width = 18 is not valid (a positive multiple of heads = 4)"),
    ({"groups": 6}, "option groups = 6 is not valid (0 for one query per label, or a number of query groups up to "
                    "the 5 labels)"),
    ({"layers": 0}, "option layers = 0 is not valid (a positive whole number)"),
])
def test_bad_options_are_one_line(options, message):
    with pytest.raises(InputError) as info:
        _query(**options)
    assert str(info.value) == f"head 'query': {message}"


def test_random_queries_train_without_an_embeddings_file(tmp_path):
    from mlgraph_cli.core.training.trainer import TrainConfig
    from mlgraph_cli.stages.train import train
    from mlgraph_cli.stages.train.inputs import TrainInputs

    data = trainkit.toy_dataset(tmp_path / "data", n_train=32, n_val=16)
    config = TrainConfig(head="query", epochs=2, batch_size=16, lr=3e-3, device="cpu",
                         head_options={"init": "random", **SMALL})
    result = train(TrainInputs(features=data["features"], val_features=data["val"]), config, run_dir=tmp_path / "run")
    assert result.epochs_done == 2 and result.best_map is not None
