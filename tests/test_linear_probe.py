"""The converged linear probe: scikit-learn's logistic regression, C chosen on validation, stored as
the head's linear layer; fitted through the one Trainer as the run's single epoch."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import trainkit
from mlgraph_cli.core.models import build_head


def _pooled(head, maps):
    with torch.no_grad():
        return head.features(torch.from_numpy(maps)).numpy()


@pytest.mark.parametrize("pool", ["gap", "gmp", "gapgmp"])
def test_map_matches_sklearns_own_predict_proba(pool):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import average_precision_score

    train, val, test = (trainkit.planted(n, seed=s, strength=1.5) for n, s in ((96, 0), (48, 1), (64, 2)))
    head = build_head("probe", in_channels=8, num_labels=4, pool=pool)
    info = head.fit(_pooled(head, train["x"]), train["y"], _pooled(head, val["x"]), val["y"])
    assert set(info["val_mAP"]) == set(head.c_grid)
    assert info["C"] == max(info["val_mAP"], key=lambda c: (info["val_mAP"][c], -c))  # best, the smaller on ties
    assert float(head.c) == pytest.approx(info["C"])
    with torch.no_grad():
        ours = torch.sigmoid(head(torch.from_numpy(test["x"]))).numpy()  # (N, C), through the head's forward
    x, xt = _pooled(head, train["x"]).astype(np.float64), _pooled(head, test["x"]).astype(np.float64)
    mean, sd = x.mean(0), x.std(0)
    aps_ours, aps_sklearn = [], []
    for k in range(4):
        model = LogisticRegression(C=info["C"], tol=1e-6, max_iter=2000).fit((x - mean) / sd, train["y"][:, k])
        theirs = model.predict_proba((xt - mean) / sd)[:, 1]
        aps_sklearn.append(average_precision_score(test["y"][:, k], theirs))
        aps_ours.append(average_precision_score(test["y"][:, k], ours[:, k]))
        np.testing.assert_allclose(ours[:, k], theirs, atol=1e-4)
    assert np.mean(aps_ours) == pytest.approx(np.mean(aps_sklearn), abs=1e-4)
    assert np.mean(aps_ours) > 0.8  # the planted signal is found


def test_unknown_targets_are_dropped_per_label_and_one_class_labels_keep_their_frequency():
    from sklearn.linear_model import LogisticRegression

    data = trainkit.planted(80, seed=3)
    y = data["y"].copy()
    y[:10, 0] = -1  # label 0: 10 images of unknown status
    y[:, 3] = 0  # label 3: never present in training
    head = build_head("probe", in_channels=8, num_labels=4, pool="gap", c_grid=[0.5])
    x = _pooled(head, data["x"]).astype(np.float64)
    head.fit(x, y)  # no validation split: C = 1
    assert float(head.c) == 1.0
    z = (x - x.mean(0)) / x.std(0)
    model = LogisticRegression(C=1.0, tol=1e-6, max_iter=2000).fit(z[10:], y[10:, 0])  # the known rows only
    np.testing.assert_allclose(head.fc.weight[0].detach().numpy(), model.coef_[0] / x.std(0), rtol=1e-3, atol=1e-4)
    assert float(head.fc.weight.detach()[3].abs().sum()) == 0
    assert float(head.fc.bias.detach()[3]) == pytest.approx(np.log(0.5 / 80.5), rel=1e-5)


def test_the_video_probe_pools_real_frames_only():
    head = build_head("video-probe", in_channels=8, num_labels=4)
    x = torch.randn(2, 8, 6)
    mask = torch.tensor([[True] * 6, [True, True, False, False, False, False]])
    garbage = x.clone()
    garbage[1, :, 2:] = 1e3
    torch.testing.assert_close(head.features(garbage, mask), head.features(x, mask))
    torch.testing.assert_close(head.features(x, mask)[1], torch.cat([x[1, :, :2].mean(-1), x[1, :, :2].amax(-1)]))


def test_a_run_is_one_fit_whatever_the_epochs(tmp_path):
    from mlgraph_cli.core.training.trainer import TrainConfig
    from mlgraph_cli.stages.evaluate import evaluate
    from mlgraph_cli.stages.train import train
    from mlgraph_cli.stages.train.inputs import TrainInputs

    data = trainkit.toy_dataset(tmp_path / "data", n_train=48, n_val=24, ignore=True)
    result = train(TrainInputs(features=data["features"], val_features=data["val"]),
                   TrainConfig(head="probe", epochs=5, batch_size=16, device="cpu"), run_dir=tmp_path / "run")
    rows = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert result.epochs_done == 1 and len(rows) == 1 and json.loads(rows[0])["train_loss"] > 0
    args = json.loads((tmp_path / "run" / "args.json").read_text())
    assert args["config"]["epochs"] == 1 and args["config"]["probe_epochs"] == 0
    m = evaluate(tmp_path / "run", features=data["val"], device="cpu", output=tmp_path / "m.json").metrics
    assert m["mAP"] == pytest.approx(result.best_map) and m["mAP"] > 80
