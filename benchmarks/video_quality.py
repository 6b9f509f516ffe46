"""Does temporal CMA find the frames where a label is visible? Temporal CMA vs mean and max pooling.

Generated clips (mlgraph_cli/core/video/synthetic.py, seeded numpy): 600 train / 200 test clips of
30 to 60 frames, 128-d frame features, 16 labels in 4 co-occurring groups; a label carried by a
clip is visible in one run of 3 to 6 frames only, on top of a clip-wide scene vector and per-frame
noise. Label embeddings: the label graph of the generated training labels (core/graph.py,
``cond-mean`` adjacency) embedded by ASGE (core/embeddings.py ``asge_embeddings``, the
``mlgraph embed`` method; 300-d). Every head trains the same 60 epochs (AdamW, lr 1e-2, batch 32);
for temporal CMA with a probe start, a third of them (20) train the mean-pool probe, the rest the head.

Rows: mean pooling + linear (``video-gap``), max pooling + linear (``video-gmp``), temporal CMA as
the paper writes it (plus a mean-pool branch, random start), with each of our two changes
(``center``, probe start), the final head with one-hot and random embeddings in place of ASGE (the
paper's ablation), and a reference that is not CMA: a per-frame linear score max-pooled over time.
Columns: test mAP and GAP@20 (mean and std over the seeds) and, for CMA, the share of a label's
attention that falls on the frames where it is visible (positive clip-label pairs; uniform
attention gives about 0.1).

    .venv/bin/python benchmarks/video_quality.py                   # 3 seeds, two signal levels (docs/video.md)
    .venv/bin/python benchmarks/video_quality.py --seeds 0 --signal 1 --rows video-gap cma   # a quick look

Prints a table and writes benchmarks/results/video_quality.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mlgraph_cli.core.embeddings import asge_embeddings  # noqa: E402
from mlgraph_cli.core.graph import adjacency, build_label_graph  # noqa: E402
from mlgraph_cli.core.video.heads import as_frames, build_video_head, masked_max  # noqa: E402
from mlgraph_cli.core.video.metrics import video_metrics  # noqa: E402
from mlgraph_cli.core.video.synthetic import Clips, make_world, sample_clips  # noqa: E402
from mlgraph_cli.core.video.training import VideoTrainConfig, fit_video_head, predict_videos  # noqa: E402

WORLD = dict(num_labels=16, groups=4, dim=128, context=1.0)
CLIPS = dict(frames=(30, 60), visible=(3, 6), signal=1.0, noise=1.0, scene=1.0, p_label=0.5, p_two_groups=0.3)
PAPER = dict(center=False, mean_branch=True)  # image CMA's defaults: no centering, GAP branch
OURS = dict(center=True, mean_branch=False)

# name -> (description, head, head options, embeddings, starts from a probe)
ROWS: dict[str, tuple[str, str, dict, str | None, bool]] = {
    "video-gap": ("mean pooling + linear", "video-gap", {}, None, False),
    "video-gmp": ("max pooling + linear", "video-gmp", {}, None, False),
    "cma-paper": ("temporal CMA as published (+ mean branch), random start", "video-cma", PAPER, "asge", False),
    "cma-center": ("  + centred frames into phi, no mean branch", "video-cma", OURS, "asge", False),
    "cma-probe": ("  + probe start, frames not centred", "video-cma", dict(center=False, mean_branch=False), "asge",
                  True),
    "cma": ("temporal CMA, ours (centred + probe start)", "video-cma", OURS, "asge", True),
    "cma-onehot": ("  ours with one-hot embeddings", "video-cma", OURS, "onehot", True),
    "cma-random": ("  ours with random embeddings", "video-cma", OURS, "random", True),
    "frame-max": ("reference: per-frame linear, max over time", "frame-max", {}, None, False),
}


class FrameMax(nn.Module):
    """Reference model (not CMA): logit_k = max_t <v_k, x_t> + b_k over real frames."""

    def __init__(self, in_channels: int, num_labels: int) -> None:
        super().__init__()
        self.fc = nn.Conv1d(in_channels, num_labels, 1)
        self.in_channels, self.num_labels = in_channels, num_labels

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x, mask = as_frames(x, mask)
        return masked_max(self.fc(x.float()), mask)  # (B, C, T) -> (B, C)


def label_embeddings(kind: str, labels: np.ndarray, seed: int, dim: int) -> np.ndarray:
    c = labels.shape[1]
    if kind == "onehot":
        return np.eye(c, dtype=np.float32)
    if kind == "random":
        return np.random.default_rng(seed).normal(size=(c, dim)).astype(np.float32)
    graph = build_label_graph(labels, [f"label{i}" for i in range(c)])
    vectors, _ = asge_embeddings(adjacency(graph, "cond-mean"), dim=dim, seed=seed)
    return vectors


def attention_on_visible(head: nn.Module, clips: Clips) -> float:
    """Mean share of a_k on the frames where label k is visible, over positive (clip, label) pairs."""
    with torch.no_grad():
        a = head.attention(torch.tensor(clips.features), torch.tensor(clips.mask)).numpy()  # (N, C, T)
    return float((a * clips.visible).sum(-1)[clips.labels.astype(bool)].mean())


def run(row: str, train: Clips, test: Clips, embeddings: dict[str, np.ndarray], seed: int, args) -> dict:
    _, head_name, options, emb_kind, probe = ROWS[row]
    d, c = train.features.shape[1], train.labels.shape[1]
    torch.manual_seed(seed)
    if head_name == "frame-max":
        head: nn.Module = FrameMax(d, c)
    else:
        emb = torch.tensor(embeddings[emb_kind]) if emb_kind else None
        head = build_video_head(head_name, in_channels=d, num_labels=c, embeddings=emb, **options)
    probe_epochs = args.epochs // 3 if probe else 0  # the probe's epochs come out of the same budget
    config = VideoTrainConfig(epochs=args.epochs - probe_epochs, probe_epochs=probe_epochs, batch_size=32, lr=args.lr,
                              weight_decay=1e-4, seed=seed)
    start = time.perf_counter()
    fit_video_head(head, train.features, train.mask, train.labels, config)
    seconds = time.perf_counter() - start
    report = video_metrics(predict_videos(head, test.features, test.mask), test.labels)
    out = {"row": row, "seed": seed, "mAP": report["mAP"], "GAP@20": report["GAP@20"], "seconds": seconds}
    if hasattr(head, "attention"):
        out["attention_on_visible"] = attention_on_visible(head, test)
    return out


def _stat(values: list[float]) -> tuple[float, float]:
    return float(np.mean(values)), float(np.std(values))


def run_setting(signal: float, args) -> dict:
    """All rows and seeds on clips whose label signal has norm ``signal``; prints the table."""
    clips = {**CLIPS, "signal": signal}
    world = make_world(**WORLD, seed=args.data_seed)
    train = sample_clips(world, 600, **clips, seed=args.data_seed + 1)
    test = sample_clips(world, 200, **clips, seed=args.data_seed + 2)
    kinds = {ROWS[r][3] for r in args.rows} - {None}
    embeddings = {k: label_embeddings(k, train.labels, args.data_seed, args.embedding_dim) for k in kinds}

    runs = []
    for row in args.rows:
        for seed in args.seeds:
            result = run(row, train, test, embeddings, seed, args)
            runs.append(result)
            extra = (f"  attention on visible {result['attention_on_visible']:.2f}"
                     if "attention_on_visible" in result else "")
            print(f"  signal {signal:g} {row:<11} seed {seed}: mAP {result['mAP']:5.1f}  GAP@20 {result['GAP@20']:5.1f}"
                  f"  {result['seconds']:5.1f} s{extra}", file=sys.stderr, flush=True)

    summary = {}
    header = f"{'row':<11} {'what':<58} {'mAP':>12} {'GAP@20':>12} {'attn@visible':>12}"
    print(f"\nlabel signal {signal:g} ({len(args.seeds)} seeds; mean ± std)")
    print(header)
    print("-" * len(header))
    for row in args.rows:
        mine = [r for r in runs if r["row"] == row]
        m, s = _stat([r["mAP"] for r in mine])
        g, gs = _stat([r["GAP@20"] for r in mine])
        att = [r["attention_on_visible"] for r in mine if "attention_on_visible" in r]
        summary[row] = {"description": ROWS[row][0].strip(), "mAP_mean": m, "mAP_std": s, "GAP@20_mean": g,
                        "GAP@20_std": gs, "attention_on_visible_mean": float(np.mean(att)) if att else None,
                        "seconds_mean": float(np.mean([r["seconds"] for r in mine]))}
        att_text = f"{np.mean(att):12.2f}" if att else f"{'-':>12}"
        print(f"{row:<11} {ROWS[row][0]:<58} {m:6.1f} ± {s:3.1f} {g:6.1f} ± {gs:3.1f} {att_text}")
    if "cma" in summary and "video-gap" in summary:
        gain = summary["cma"]["mAP_mean"] - summary["video-gap"]["mAP_mean"]
        print(f"temporal CMA (ours) - mean pooling: {gain:+.1f} mAP (target: at least +5)")
    return {"clips": clips, "summary": summary, "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds (init, batches)")
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--epochs", type=int, default=60, help="epochs per head, probe epochs included")
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--signal", type=float, nargs="+", default=[1.0, 0.5],
                        help="norm of a label's signal in a frame (noise and scene have norm 1); one table each")
    parser.add_argument("--embedding-dim", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: steadier on a shared machine)")
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "benchmarks" / "results" / "video_quality.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    settings = {f"signal={signal:g}": run_setting(signal, args) for signal in args.signal}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": "video_quality",
        "command": "python benchmarks/video_quality.py " + " ".join(sys.argv[1:]),
        "data": {"world": WORLD, "train": 600, "test": 200, "data_seed": args.data_seed},
        "embeddings": {"method": "asge", "adjacency": "cond-mean", "dim": args.embedding_dim},
        "training": {"epochs": args.epochs, "lr": args.lr, "batch_size": 32, "weight_decay": 1e-4,
                     "optimizer": "AdamW", "seeds": args.seeds},
        "machine": {"platform": platform.platform(), "torch": torch.__version__, "threads": args.threads},
        "settings": settings,
    }
    args.output.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
