"""A converged linear probe: pooled features -> one linear layer, fitted by logistic regression.

The reference a reviewer expects under any attention head (docs/benchmarks.md, issue 19): the
backbone map pooled by global average pooling, global max pooling, or both concatenated
(``pool`` = "gap", "gmp", "gapgmp"), then one L2-regularised logistic regression per label
(one-vs-rest), solved to convergence instead of trained for a few SGD epochs:

    minimise over w_k, b_k:  1/2 |w_k|^2 + C sum_i log(1 + exp(-s_ik (<w_k, z_i> + b_k)))

for every label k, with s_ik = +-1 the target of image i and z_i its pooled features standardised
over the training set (lbfgs converges reliably on standardised inputs). Images whose target for
k is -1 (unknown) are left out of label k's problem. The inverse regularisation C is one value
for all labels, chosen from ``c_grid`` by mAP on the validation split (C = 1, scikit-learn's
default, without one). The solution, standardisation folded in (w / sd, b - <w / sd, mean>), is
stored as the head's ``fc``, so evaluate, predict, ``--explain`` (a class activation map) and
export treat the head as any pooling + linear head.

The head is *fitted*, not trained (``fitted = True``): the Trainer pools every example once and
calls :meth:`LinearProbeHead.fit` in place of its epoch (core/training/fitting.py). A label that has only
positives or only negatives in the training set gets w = 0 and the bias of its (smoothed)
frequency. For video (``video-probe``) the pools are the masked mean / max over real frames.
"""

from __future__ import annotations

import warnings
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from mlgraph_cli.core.models.common import Head, as_feature_map, check_channels, check_option, makes
from mlgraph_cli.core.models.temporal import as_frames, masked_max, masked_mean

POOLS = ("gap", "gmp", "gapgmp")
C_GRID = (0.001, 0.01, 0.1, 1.0, 10.0)  # inverse L2 strength on standardised features, 4 decades
TOL = 1e-6  # lbfgs stopping tolerance (scikit-learn's default: 1e-4)


class LinearProbeHead(Head):
    """Pooling + linear, fitted by logistic regression. x (B, D, H, W) -> logits (B, C).

    pool: "gap", "gmp" or "gapgmp" (both, concatenated: 2D features). c_grid: the values of C
    tried on validation. max_iter: lbfgs iterations per label and C.
    """

    name = "probe"
    fitted = True

    def __init__(self, in_channels: int, num_labels: int, *, pool: str = "gapgmp", c_grid: Sequence[float] = C_GRID,
                 max_iter: int = 2000) -> None:
        super().__init__()
        check_option(pool in POOLS, self.name, "pool", pool, " or ".join(POOLS))
        grid = list(c_grid) if isinstance(c_grid, (list, tuple)) else []
        check_option(bool(grid) and all(isinstance(c, (int, float)) and not isinstance(c, bool) and c > 0
                                        for c in grid), self.name, "c_grid", c_grid, "a list of positive numbers")
        check_option(isinstance(max_iter, int) and max_iter >= 1, self.name, "max_iter", max_iter,
                     "a positive number of iterations")
        self.in_channels, self.num_labels, self.pool = int(in_channels), int(num_labels), pool
        self.c_grid, self.max_iter = sorted(float(c) for c in grid), int(max_iter)
        self.fc = nn.Linear(self.in_channels * (2 if pool == "gapgmp" else 1), self.num_labels)
        self.register_buffer("c", torch.tensor(float("nan")))  # the C chosen by the fit, saved with the weights
        self._remember(in_channels=self.in_channels, num_labels=self.num_labels, pool=pool, c_grid=self.c_grid,
                       max_iter=self.max_iter)

    def _means_and_maxima(self, x: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        x = as_feature_map(x)
        check_channels(x, self.in_channels, self.name)
        x = x.to(self.fc.weight.dtype)  # cached maps are float16: pool in the parameters' precision
        return x.mean(dim=(2, 3)), x.amax(dim=(2, 3))  # (B, D, H, W) -> (B, D), (B, D)

    def features(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The pooled features the linear layer reads, (B, F): F = D, or 2D for "gapgmp"."""
        mean, top = self._means_and_maxima(x, mask)  # (B, D), (B, D)
        if self.pool == "gapgmp":
            return torch.cat([mean, top], dim=1)  # (B, 2D)
        return mean if self.pool == "gap" else top

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """Logits (B, C) of pooled features (B, F)."""
        return self.fc(features.to(self.fc.weight.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(x))  # (B, F) -> (B, C)

    @torch.no_grad()
    def fit(self, x: np.ndarray, y: np.ndarray, x_val: np.ndarray | None = None,
            y_val: np.ndarray | None = None) -> dict[str, Any]:
        """Fit ``fc`` on pooled features x (N, F) and targets y (N, C) (1, 0, -1 = unknown); choose C
        on (x_val, y_val) when given. Returns {"C", "val_mAP" per C tried (0-100), "unconverged",
        "summary": one line for the user}."""
        w, b, info = fit_logistic(x, y, x_val, y_val, self.c_grid if x_val is not None else [1.0], self.max_iter)
        self.fc.weight.copy_(torch.from_numpy(w))
        self.fc.bias.copy_(torch.from_numpy(b))
        self.c.fill_(info["C"])
        tried = ", ".join(f"{m:.2f} at C {c:g}" for c, m in info["val_mAP"].items() if m is not None)
        chosen = f"C = {info['C']:g}" + (f" (val mAP {tried})" if tried else " (no validation split to choose on)")
        late = f"; {info['unconverged']} label(s) stopped at max_iter" if info["unconverged"] else ""
        info["summary"] = f"logistic regression per label on {len(x)} pooled examples, {chosen}{late}"
        return info


class TemporalLinearProbe(LinearProbeHead):
    """The converged probe over a clip's real frames: masked mean / max pools. x (B, D, T) + mask (B, T)."""

    name = "video-probe"
    modality = "video"

    def _means_and_maxima(self, x: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        x, mask = as_frames(x, mask)  # (B, D, T), (B, T)
        check_channels(x, self.in_channels, self.name)
        x = x.to(self.fc.weight.dtype)
        return masked_mean(x, mask), masked_max(x, mask)  # (B, D), (B, D)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.classify(self.features(x, mask))


def fit_logistic(x: np.ndarray, y: np.ndarray, x_val: np.ndarray | None, y_val: np.ndarray | None,
                 c_grid: Sequence[float], max_iter: int) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """One-vs-rest L2 logistic regression (module docstring): W (C, F) float32, b (C,) float32 on
    the raw features, and {"C", "val_mAP": {C: mAP}, "unconverged"}. The first C of the best
    validation mAP wins (the grid ascends, so ties go to the stronger regularisation); "unconverged"
    counts the labels whose lbfgs hit ``max_iter`` at that C."""
    # lazy: start-up — scikit-learn takes about 1 s; only the probe's fit needs it, and every run imports core.models
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    # lazy: start-up — metrics loads scipy; a predict on images must not (tests/test_predict.py)
    from mlgraph_cli.core.evaluation.metrics import average_precision

    x = np.asarray(x, np.float64)
    mean, sd = x.mean(axis=0), x.std(axis=0)
    sd = np.where(sd > 1e-8, sd, 1.0)  # a constant feature stays 0 after standardising
    z = (x - mean) / sd  # (N, F)
    # tol well under scikit-learn's 1e-4: the solution, not the path to it, should decide the result
    models = [LogisticRegression(C=1.0, tol=TOL, max_iter=max_iter, warm_start=True) for _ in range(y.shape[1])]
    best: tuple[float, float, np.ndarray, np.ndarray, int] | None = None
    scores: dict[float, float | None] = {}
    for c in c_grid:
        unconverged = 0
        w, b = np.zeros((y.shape[1], x.shape[1])), np.zeros(y.shape[1])
        for k, model in enumerate(models):
            known = y[:, k] >= 0
            t = y[known, k]
            if t.size == 0 or t.min() == t.max():  # one class only: its frequency, no direction
                p = (t.sum() + 0.5) / (t.size + 1.0)
                b[k] = np.log(p / (1 - p))
                continue
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ConvergenceWarning)
                model.set_params(C=float(c)).fit(z[known], t)
            unconverged += any(issubclass(item.category, ConvergenceWarning) for item in caught)
            w[k], b[k] = model.coef_[0], model.intercept_[0]
        val = None
        if x_val is not None:
            ap = average_precision(((np.asarray(x_val, np.float64) - mean) / sd) @ w.T + b, y_val)
            val = float(np.nanmean(ap) * 100) if np.isfinite(ap).any() else None
        scores[float(c)] = val
        if best is None or (val is not None and val > best[0]):
            best = (val if val is not None else -np.inf, float(c), w, b, unconverged)
    _, chosen, w, b, unconverged = best
    w_raw = w / sd  # fold the standardisation into the weights: <w, (x - mean) / sd> + b
    b_raw = b - w_raw @ mean
    info = {"C": chosen, "val_mAP": scores, "unconverged": int(unconverged)}
    return w_raw.astype(np.float32), b_raw.astype(np.float32), info


@makes(LinearProbeHead)
def probe(*, in_channels: int, num_labels: int, embeddings: torch.Tensor | None = None,
          adjacency: torch.Tensor | None = None, **options) -> LinearProbeHead:
    """The converged linear probe on pooled maps (logistic regression, C chosen on validation)."""
    check_option(isinstance(in_channels, int), "probe", "in_channels", in_channels, "one channel count")
    return LinearProbeHead(in_channels, num_labels, **options)


@makes(TemporalLinearProbe)
def video_probe(*, in_channels: int, num_labels: int, embeddings: torch.Tensor | None = None,
                **options) -> TemporalLinearProbe:
    """The converged linear probe on a clip's pooled real frames."""
    return TemporalLinearProbe(in_channels, num_labels, **options)
