"""The probe start checks rank(E): exact when rank(E) = C, the least-squares phi (and a log line
that says so) when labels outnumber the embedding width or the embeddings are linearly dependent."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

import trainkit
from mlgraph_cli.core.models import build_head
from mlgraph_cli.core.models.common import probe_transform
from mlgraph_cli.core.progress import ProgressHook

D = 8


class Lines(ProgressHook):
    def __init__(self) -> None:
        self.lines: list[str] = []

    def log(self, message: str) -> None:
        self.lines.append(message)


def _case(c: int, d: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(c, d, generator=g), torch.randn(c, D, generator=g)


def test_full_rank_embeddings_start_exactly():
    e, v = _case(5, 6)
    phi, fit = probe_transform(e, v)
    assert fit.exact and fit.rank == 5 and fit.residual < 1e-6
    torch.testing.assert_close(F.normalize(e, dim=1) @ phi, v, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("c, d", [(12, 4), (5, 6)])
def test_more_labels_than_width_or_dependent_rows_get_the_least_squares_phi(c, d):
    e, v = _case(c, d)
    if c <= d:
        e[4] = 2.0 * e[1]  # a label whose embedding repeats another's direction: rank C - 1
    phi, fit = probe_transform(e, v)
    assert not fit.exact and fit.rank == min(d, c - 1 if c <= d else d) and fit.dim == d
    unit = F.normalize(e, dim=1).double()
    best = torch.linalg.lstsq(unit, v.double(), driver="gelsd").solution  # (d, D)
    floor = float(torch.linalg.norm(unit @ best - v.double()) / torch.linalg.norm(v.double()))
    assert fit.residual == pytest.approx(floor, rel=1e-5) and fit.residual > 0.05
    nudged = phi.double() + 1e-2 * torch.randn(d, D, dtype=torch.float64)
    assert float(torch.linalg.norm(unit @ nudged - v.double()) / torch.linalg.norm(v.double())) > fit.residual
    assert "least-squares fit" in fit.note() and f"rank {fit.rank} for {c} labels" in fit.note()


def test_a_head_with_more_labels_than_embedding_width_starts_and_says_so(tmp_path):
    from mlgraph_cli.core.training.trainer import TrainConfig
    from mlgraph_cli.stages.train import train
    from mlgraph_cli.stages.train.inputs import TrainInputs

    data = trainkit.toy_dataset(tmp_path / "data", n_train=32, n_val=16)
    narrow = trainkit.write_embeddings(tmp_path / "narrow.h5", dim=2)  # 4 labels in 2 dimensions
    progress = Lines()
    train(TrainInputs(features=data["features"], val_features=data["val"], embeddings=narrow),
          TrainConfig(head="cma", epochs=1, probe_epochs=2, batch_size=16, device="cpu"),
          run_dir=tmp_path / "run", progress=progress)
    notes = [line for line in progress.lines if line.startswith("probe start:")]
    assert len(notes) == 1 and "rank 2 for 4 labels (more labels than its width 2)" in notes[0]
    assert "`mlgraph embed --dim 4` or wider" in notes[0]
    probe = json.loads((tmp_path / "run" / "config.json").read_text())["probe"]
    assert probe["embedding_rank"] == 2 and probe["residual"] > 0.05


def test_the_head_gets_the_fitted_phi():
    e, v = _case(12, 4)
    head = build_head("cma", in_channels=D, num_labels=12, embeddings=e)
    fit = head.init_from_probe(v, torch.zeros(12))
    phi, _ = probe_transform(e, v)
    torch.testing.assert_close(head.cmt.net[0].weight[:, :, 0, 0], phi)
    assert fit.rank == 4 and not fit.exact
    video = build_head("video-cma", in_channels=D, num_labels=12, embeddings=e)
    assert video.init_from_probe(v, torch.zeros(12)).rank == 4
