"""PNG figures a run can show: training curves, per-label precision-recall curves, a per-label chart.

Three functions, each taking plain data (no files read) and writing one PNG atomically (temporary
name, then rename), returning the path written:

- :func:`training_curves` ``(rows, path)``: the rows of a run's ``metrics.jsonl`` (dicts with
  ``epoch``, ``train_loss``, ``val_loss``, ``val_mAP`` (0-100), ``lr``; None where unknown).
- :func:`precision_recall_curves` ``(scores, targets, labels, path)``: scores (N, C) and targets
  (N, C) in {1, 0, -1 = ignore}, one curve per label (the best and worst labels by AP when C is
  large) plus the micro-averaged curve of all labels.
- :func:`per_label_chart` ``(rows, path)``: one dict per label with ``label``, ``ap``,
  ``precision``, ``recall``, ``f1`` (0-100 or None), ``positives`` (count) and ``threshold``
  (what precision, recall and F1 are measured at, said in the title);
  :func:`per_label_rows` computes them from scores and targets.

Labels without positives are accepted everywhere: their AP, recall and F1 are None ("n/a").
matplotlib is used on the Agg canvas without pyplot (no global figure state, no display needed).
It and scikit-learn (whose ``precision_recall_curve`` gives the curves' points) are imported
inside the functions that draw: the stages import this module on every run, plots or not, and
the two cost about a second of start-up together.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from mlgraph_cli.core.evaluation.metrics import average_precision
from mlgraph_cli.core.io.outputs import check_output_not_input, write_output

CURVE_KEYS = ("train_loss", "val_loss", "val_mAP", "lr")
DPI = 100


def _figure(width_in: float, height_in: float):
    # lazy: start-up — matplotlib (about 0.6 s) only where a figure is drawn (tests/test_plots.py)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: str | os.PathLike) -> Path:
    dest = Path(path)
    with write_output(dest) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    return dest


def _number(value: Any) -> float:
    """A float, or NaN for None / missing / non-numeric (matplotlib leaves NaN points out)."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        return math.nan
    return out if math.isfinite(out) else math.nan


# ---------------------------------------------------------------------------------------------
# Training curves

def training_curves(rows: Iterable[Mapping[str, Any]], path: str | os.PathLike) -> Path:
    """Losses, validation mAP and learning rate against the epoch, as three panels in one PNG.

    ``rows``: one mapping per epoch as ``metrics.jsonl`` holds them; missing or None values are
    left out (a run without a validation split has no val curves). Rows without an ``epoch``
    are numbered in order. Returns ``path``."""
    rows = list(rows)
    epochs = np.array([_number(r.get("epoch", i + 1)) for i, r in enumerate(rows)])
    series = {k: np.array([_number(r.get(k)) for r in rows]) for k in CURVE_KEYS}
    fig = _figure(12, 3.8)
    ax_loss, ax_map, ax_lr = fig.subplots(1, 3)
    for key, style in (("train_loss", "-o"), ("val_loss", "-s")):
        if np.isfinite(series[key]).any():
            ax_loss.plot(epochs, series[key], style, markersize=3, label=key.replace("_", " "))
    ax_loss.set(title="BCE loss", xlabel="epoch")
    if ax_loss.lines:
        ax_loss.legend()
    vm = series["val_mAP"]
    if np.isfinite(vm).any():
        ax_map.plot(epochs, vm, "-o", markersize=3, color="tab:green")
        best = int(np.nanargmax(vm))
        ax_map.plot([epochs[best]], [vm[best]], "*", markersize=12, color="tab:red",
                    label=f"best {vm[best]:.2f} (epoch {epochs[best]:g})")
        ax_map.legend(loc="lower right")
    else:
        ax_map.text(0.5, 0.5, "no validation mAP\n(no validation split)", ha="center", va="center",
                    transform=ax_map.transAxes)
    ax_map.set(title="validation mAP (%)", xlabel="epoch")
    lr = series["lr"]
    if np.isfinite(lr).any():
        ax_lr.plot(epochs, lr, "-", color="tab:purple")
        positive = lr[np.isfinite(lr)]
        if positive.min() > 0 and positive.max() / positive.min() > 20:
            ax_lr.set_yscale("log")
    ax_lr.set(title="learning rate", xlabel="epoch")
    for ax in (ax_loss, ax_map, ax_lr):
        ax.grid(alpha=0.3)
    return _save(fig, path)


# ---------------------------------------------------------------------------------------------
# Precision-recall curves

def pr_curve(scores: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(recall, precision) of one label, one point per distinct score (highest first; scikit-learn's
    ``precision_recall_curve``), with ``targets`` in {1, 0, -1 = ignore}; empty arrays when the
    label has no positive."""
    keep = targets >= 0
    s, t = scores[keep], targets[keep] == 1
    if not t.any():
        return np.zeros(0), np.zeros(0)
    # lazy: start-up — scikit-learn takes about 1 s to import; only the PR curves need it
    from sklearn.metrics import precision_recall_curve

    precision, recall, _ = precision_recall_curve(t, s)  # recall falling, ending at the (0, 1) anchor
    return recall[-2::-1], precision[-2::-1]


def _label_ap(scores: np.ndarray, targets: np.ndarray) -> float:
    """AP of one label (metrics.average_precision: the one AP of the toolkit)."""
    return float(average_precision(scores[:, None], targets[:, None])[0])


def precision_recall_curves(scores: Any, targets: Any, labels: Sequence[str], path: str | os.PathLike, *,
                            max_labels: int = 24) -> Path:
    """Per-label precision-recall curves in a grid, titled with each label's AP and positives.

    ``scores`` (N, C) any monotone scores; ``targets`` (N, C) 1 / 0 / -1 (ignored); ``labels`` (C,).
    The first panel is the micro-averaged curve over all labels. With more than ``max_labels``
    labels, the ``max_labels // 2`` best and worst labels with positives (by AP) are drawn and
    the title says how many were left out; labels without positives are drawn as "no positives"
    panels when they fit, else named in the title. Returns ``path``."""
    s = np.asarray(scores, dtype=np.float64)
    t = np.asarray(targets).astype(np.int8)
    if s.ndim != 2 or s.shape != t.shape or s.shape[1] != len(labels):
        raise ValueError(f"scores {s.shape}, targets {t.shape} and {len(labels)} labels do not agree")
    curves = [pr_curve(s[:, k], t[:, k]) for k in range(len(labels))]
    aps = [_label_ap(s[:, k], t[:, k]) if len(curves[k][0]) else None for k in range(len(labels))]
    with_pos = sorted((k for k in range(len(labels)) if aps[k] is not None), key=lambda k: -aps[k])
    without = [k for k in range(len(labels)) if aps[k] is None]
    title = f"precision-recall, {len(labels)} labels"
    if len(labels) <= max_labels:
        shown = with_pos + without
    else:
        half = max(1, max_labels // 2)
        if len(with_pos) <= max_labels:
            shown = with_pos
            title += f": the {len(shown)} with positives shown, {len(without)} without positives left out"
        else:
            shown = with_pos[:half] + with_pos[-half:]
            title += f": the {half} best and {half} worst by AP shown, {len(labels) - len(shown)} left out"
            if without:
                title += f" ({len(without)} of them without positives)"
    cols = min(6, len(shown) + 1)
    nrows = math.ceil((len(shown) + 1) / cols)
    fig = _figure(2.6 * cols, 2.5 * nrows + 0.4)
    axes = np.atleast_1d(fig.subplots(nrows, cols, sharex=True, sharey=True)).ravel()
    micro = pr_curve(s.ravel(), t.ravel())
    micro_ap = _label_ap(s.ravel(), t.ravel()) if len(micro[0]) else None
    panels = [("all labels (micro)", micro, micro_ap, int((t == 1).sum()))]
    panels += [(labels[k], curves[k], aps[k], int((t[:, k] == 1).sum())) for k in shown]
    for ax, (name, (rec, prec), ap, npos) in zip(axes, panels):
        if len(rec):
            ax.step(np.r_[0.0, rec], np.r_[prec[0], prec], where="pre", color="tab:blue")
            ax.set_title(f"{_short(name)}\nAP {100 * ap:.1f}, {npos} pos.", fontsize=9)
        else:
            ax.text(0.5, 0.5, "no positives", ha="center", va="center", transform=ax.transAxes, color="grey")
            ax.set_title(_short(name), fontsize=9)
        ax.set(xlim=(0, 1), ylim=(0, 1.02))
        ax.grid(alpha=0.3)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    for ax in axes[::cols]:
        ax.set_ylabel("precision")
    for ax in axes[max(0, len(panels) - cols):len(panels)]:  # the lowest panel of each column
        ax.xaxis.set_tick_params(labelbottom=True)
        ax.set_xlabel("recall")
    fig.suptitle(title)
    return _save(fig, path)


def _short(name: str, width: int = 28) -> str:
    return name if len(name) <= width else name[:width - 1] + "\u2026"


# ---------------------------------------------------------------------------------------------
# Per-label chart

def per_label_rows(scores: Any, targets: Any, labels: Sequence[str], threshold: float | Sequence[float] = 0.5
                   ) -> list[dict[str, Any]]:
    """The rows :func:`per_label_chart` draws: AP, precision, recall, F1 (percent, None when
    undefined) and positives of each label; a label is predicted where its probability reaches
    ``threshold`` (one value, or one per label). Entries with target -1 are left out."""
    s = np.asarray(scores, dtype=np.float64)
    t = np.asarray(targets).astype(np.int8)
    cut = np.broadcast_to(np.asarray(threshold, dtype=np.float64), (s.shape[1],))
    ap = average_precision(s, t)
    known, pos = t >= 0, t == 1
    predicted = (s >= cut) & known
    rows = []
    for k, name in enumerate(labels):
        tp, n_pred, n_pos = int((predicted[:, k] & pos[:, k]).sum()), int(predicted[:, k].sum()), int(pos[:, k].sum())
        p = 100 * tp / n_pred if n_pred else None
        r = 100 * tp / n_pos if n_pos else None
        f1 = None if r is None else (0.0 if p is None or p + r == 0 else 2 * p * r / (p + r))
        rows.append({"label": name, "ap": None if np.isnan(ap[k]) else 100 * float(ap[k]), "precision": p,
                     "recall": r, "f1": f1, "positives": n_pos})
    return rows


CHART_COLUMNS = (("ap", "AP"), ("precision", "precision"), ("recall", "recall"), ("f1", "F1"),
                 ("positives", "positives"))


def per_label_chart(rows: Iterable[Mapping[str, Any]], path: str | os.PathLike) -> Path:
    """Horizontal bars per label: AP, precision, recall, F1 (0-100) and positives side by side,
    labels sorted by AP (best on top; labels without AP last, marked n/a), titled with the
    threshold precision, recall and F1 are measured at (:func:`threshold_caption`). The figure grows with
    the number of labels so each keeps a readable row (about 100 labels fit a tall page).
    Returns ``path``."""
    rows = sorted(rows, key=lambda r: -_number(r.get("ap")) if not math.isnan(_number(r.get("ap"))) else math.inf)
    n = max(1, len(rows))
    fig = _figure(13, 1.2 + 0.24 * n)
    axes = fig.subplots(1, len(CHART_COLUMNS), sharey=True)
    y = np.arange(len(rows))
    names = [_short(str(r.get("label", "")), 32) for r in rows]
    font = 9 if n <= 40 else 7
    for ax, (key, title) in zip(axes, CHART_COLUMNS):
        values = np.array([_number(r.get(key)) for r in rows])
        ax.barh(y, np.nan_to_num(values), color="tab:grey" if key == "positives" else "tab:blue", height=0.7)
        for yi, v in zip(y, values):
            text = "n/a" if math.isnan(v) else (f"{v:.0f}" if key == "positives" else f"{v:.1f}")
            ax.text(0 if math.isnan(v) else v, yi, f" {text}", va="center", fontsize=font - 1,
                    color="grey" if math.isnan(v) else "black")
        top = np.nanmax(values) if np.isfinite(values).any() else 1.0
        ax.set_xlim(0, 100 * 1.18 if key != "positives" else max(1.0, top) * 1.25)
        ax.set_title(title)
        ax.grid(axis="x", alpha=0.3)
        ax.tick_params(axis="x", labeltop=n > 30)  # a tall chart gets its scale at the top too
    axes[0].set_yticks(y, names, fontsize=font)
    axes[0].set_ylim(len(rows) - 0.5, -0.5)  # best AP on top
    fig.suptitle(threshold_caption(rows), fontsize=10)
    return _save(fig, path)


def threshold_caption(rows: Sequence[Mapping[str, Any]]) -> str:
    """What the per-label chart's precision, recall and F1 are measured at: the one threshold of
    the rows (their ``threshold``), or the range of the labels' own ones."""
    cuts = sorted({float(r["threshold"]) for r in rows if r.get("threshold") is not None})
    if not cuts:
        return "AP over all thresholds; precision, recall and F1 at the run's threshold"
    at = f"threshold {cuts[0]:g}" if len(cuts) == 1 else f"each label's own threshold ({cuts[0]:.2f}-{cuts[-1]:.2f})"
    return f"AP over all thresholds; precision, recall and F1 at {at}"


def evaluation_plots(scores: Any, targets: Any, labels: Sequence[str], rows: Sequence[Mapping[str, Any]],
                     folder: str | os.PathLike, stem: str, inputs: Iterable[str | os.PathLike | None] = ()
                     ) -> tuple[dict[str, str], list[Path], list[str]]:
    """What ``mlgraph evaluate`` draws: ``folder/<stem>.pr.png`` (:func:`precision_recall_curves`)
    and ``folder/<stem>.labels.png`` (:func:`per_label_chart` of ``rows``). A figure that fails
    is a warning, not an error: the metrics are the result; so is a figure whose name is one of
    ``inputs`` (it is not written). Returns (kind -> absolute path, the
    paths written, the warnings)."""
    written: dict[str, str] = {}
    paths: list[Path] = []
    warnings: list[str] = []
    for key, draw in (("pr", lambda p: precision_recall_curves(scores, targets, labels, p)),
                      ("labels", lambda p: per_label_chart(rows, p))):
        path = Path(folder) / f"{stem}.{key}.png"
        try:
            check_output_not_input(path, inputs, flag="--plots")
            path.parent.mkdir(parents=True, exist_ok=True)
            paths.append(draw(path))
            written[key] = os.fspath(path.resolve())
        except Exception as exc:  # a figure is a view of the metrics, never a reason to lose them
            warnings.append(f"{path} not written ({type(exc).__name__}: {exc})")
    return written, paths, warnings
