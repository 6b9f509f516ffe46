"""Video files end to end: generated MP4 clips -> `mlgraph extract` -> `mlgraph train` -> test once.

Clips (tests/clipkit.py, written with PyAV): 96 px frames, 20 frames at 4 fps,
1-3 Fashion-MNIST items per clip (10 labels, half the clips drawn from 4 co-occurring groups),
each item on screen for only 3-5 consecutive frames, over a drifting texture with 3 moving
coloured squares on every frame. Train / validation / test clips take their items from disjoint
photographs of the packaged subset. Every split is extracted by `stages.extract.extract` (the
function behind `mlgraph extract`) with EfficientNet-Lite0 and its packaged ImageNet weights
(offline) at its default input size (224 px, as `mlgraph extract` runs it), one
global-average-pooled 1280-d vector per frame at --fps 4; label embeddings are what a
plain `mlgraph embed` writes for the training labels' graph (ASGE, its defaults); every head is trained
by `stages.train.train` (`mlgraph train`, its defaults) with the validation file choosing the
checkpoint, and the test file is scored once by `stages.evaluate.evaluate`. A second test set
(``test2``, another generator seed, items from the same t10k photographs as ``test``) is scored
once too, as a check on how much one test set of 300 clips moves the numbers. The temporal CMA
settings (the `cma-*` rows) are compared on the validation clips; the default is the best of them.

The same pipeline (``make_split``, ``make_embeddings``, ``train_row``) serves
benchmarks/video_sampling.py, which chooses `mlgraph extract`'s default sampling on clips of
several lengths.

    .venv/bin/python benchmarks/video_files_quality.py                 # 3 seeds, all rows
    .venv/bin/python benchmarks/video_files_quality.py --seeds 0 --heads cma gap --work /tmp/vf

Prints a table and writes benchmarks/results/video_files_quality.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # this checkout's mlgraph_cli; tests/ holds the clip generators

SIZES = {"train": 300, "val": 300, "test": 300, "test2": 300}
DATA_SEEDS = {"train": 11, "val": 12, "test": 13, "test2": 14}
POOLS = {"train": "train", "val": "val", "test": "test", "test2": "test"}  # test2: a second, independent test set
FRAME_PX = 96  # the clips' frame size; extraction resizes frames to the backbone's default input
EXTRACT_SIZE = None  # None: the backbone's default (224 px for Lite0), what `mlgraph extract` does
FPS = 4.0
HEADS = {
    "cma": "temporal CMA, defaults (mean-pool branch on)",
    "gap": "mean pooling + linear",
    "gmp": "max pooling + linear",
    "frame-max": "frame level: per-frame linear, max over time",
    "cma-no-mean-branch": "temporal CMA without its mean-pool branch (mean_branch = false)",
}
HEAD_OPTIONS = {"cma-no-mean-branch": ("cma", {"mean_branch": False}),
                "query-graph": ("query", {"init": "embeddings"})}


def make_split(folder: Path, out: Path, n: int, seed: int, world, pool: str, sampling: dict, progress,
               timing: dict, image_size: int | None = EXTRACT_SIZE) -> Path:
    """``n`` clips in ``folder`` (generated once) and their features file ``out`` (extracted once) with
    ``sampling`` (ExtractConfig's fps, min_frames, frames, max_frames) at ``image_size`` px."""
    from clipkit import fashion_clips
    from mlgraph_cli.stages.extract import ExtractConfig, extract

    if not (folder / "labels.csv").is_file():
        fashion_clips(folder, n, seed=seed, world=world, pool=pool)
    if not out.is_file():
        t0 = time.perf_counter()
        config = ExtractConfig(backbone="efficientnet-lite0", weights="DEFAULT", image_size=image_size, workers=0,
                               batch_size=32, device="cpu", offline=True, **sampling)
        r = extract([folder], out, config, annotations=folder / "labels.csv", progress=progress)
        timing[out.stem] = {"clips": r.rows, "frames": r.frames, "seconds": time.perf_counter() - t0}
        print(f"  extracted {out}: {r.rows} clips, {r.frames} frames, {r.frames_per_s:.1f} frames/s",
              file=sys.stderr, flush=True)
    return out


def make_embeddings(work: Path) -> Path:
    """The label graph and embeddings a plain `mlgraph build-graph` + `mlgraph embed` write for ``work/train``."""
    from mlgraph_cli.core.annotations import load_annotations
    from mlgraph_cli.core.graph.counts import build_label_graph
    from mlgraph_cli.core.graph.files import write_graph
    from mlgraph_cli.stages.embed import EmbedConfig, embed

    ann = load_annotations(work / "train" / "labels.csv")
    graph, out = work / "graph.json", work / "embeddings-default.h5"
    if not graph.is_file():
        write_graph(build_label_graph(ann.dense(), list(ann.labels)), graph)
    if not out.is_file():
        embed(graph, out, EmbedConfig(), command="benchmarks/video_files_quality.py")
    return out


def make_data(work: Path, progress) -> dict[str, Path]:
    """Clips, their features files and the embeddings; kept in ``work`` and reused when present."""
    from clipkit import ClipWorld

    world = ClipWorld(size=FRAME_PX, frames=20, fps=FPS)
    timing: dict = {}
    paths: dict = {split: make_split(work / split, work / f"{split}.h5", n, DATA_SEEDS[split], world, POOLS[split],
                                     {"fps": FPS}, progress, timing) for split, n in SIZES.items()}
    paths["embeddings"] = make_embeddings(work)
    paths["timing"] = timing
    return paths


def train_row(head: str, paths: dict, run: Path, seed: int, tests: tuple[str, ...] = ("test", "test2"),
              loss: str = "bce") -> dict:
    """Train ``head`` with ``loss`` (validation file choosing the checkpoint), then score each of ``tests`` once."""
    from mlgraph_cli.core.training.trainer import TrainConfig
    from mlgraph_cli.stages.evaluate import evaluate
    from mlgraph_cli.stages.train import train
    from mlgraph_cli.stages.train.inputs import TrainInputs

    inputs = TrainInputs(features=paths["train"], val_features=paths["val"], embeddings=paths["embeddings"])
    start = time.perf_counter()
    name, options = HEAD_OPTIONS.get(head, (head, {}))
    result = train(inputs, TrainConfig(head=name, seed=seed, device="cpu", head_options=options, loss=loss),
                   run_dir=run, force=True)
    row = {"head": head, "seed": seed, "val_mAP": result.best_map, "best_epoch": result.best_epoch,
           "seconds": time.perf_counter() - start}
    for key in tests:
        metrics = evaluate(run, features=paths[key], device="cpu", output=run / f"{key}.json").metrics
        row.update({"mAP": metrics["mAP"], "GAP@20": metrics["GAP@20"]} if key == "test"
                   else {f"{key}_mAP": metrics["mAP"]})
    return row


def summarise(runs: list[dict]) -> dict:
    print("\nVideo files (generated MP4 clips; test mAP / GAP@20, mean ± sample std over seeds)")
    summary = {}
    for head, text in HEADS.items():
        mine = [r for r in runs if r["head"] == head]
        if not mine:
            continue
        stats = {k: (float(np.mean([r[k] for r in mine])),
                     float(np.std([r[k] for r in mine], ddof=1)) if len(mine) > 1 else 0.0)
                 for k in ("mAP", "GAP@20", "val_mAP", "test2_mAP")}
        summary[head] = {"description": text, "seeds": len(mine),
                         **{f"{k}_mean": v[0] for k, v in stats.items()}, **{f"{k}_std": v[1] for k, v in stats.items()}}
        print(f"  {text:<48} {stats['mAP'][0]:6.1f} ± {stats['mAP'][1]:3.1f}  {stats['GAP@20'][0]:6.1f} ± "
              f"{stats['GAP@20'][1]:3.1f}  (val {stats['val_mAP'][0]:.1f}, second test set "
              f"{stats['test2_mAP'][0]:.1f} ± {stats['test2_mAP'][1]:.1f})")
    if "cma" in summary and "gap" in summary:
        gain = summary["cma"]["mAP_mean"] - summary["gap"]["mAP_mean"]
        summary["cma_minus_gap_mAP"] = gain
        print(f"  temporal CMA - mean pooling: {gain:+.1f} mAP")
    return summary


def machine(threads: int) -> dict:
    """The machine, and its load when a study starts (a shared machine: other processes slow it)."""
    import os

    import torch

    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "torch": torch.__version__, "threads": threads,
            "load_average_1min_at_start": round(os.getloadavg()[0], 2)}


def main() -> None:
    import tempfile

    import torch

    from mlgraph_cli.core.progress import NULL_PROGRESS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--heads", nargs="+", default=list(HEADS), choices=list(HEADS))
    parser.add_argument("--work", type=Path, help="keep clips and features here (reused on the next run)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("-o", "--output", type=Path,
                        default=ROOT / "benchmarks" / "results" / "video_files_quality.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tmp = None
    if args.work is None:
        tmp = tempfile.TemporaryDirectory(prefix="video-files-")
        args.work = Path(tmp.name)
    args.work.mkdir(parents=True, exist_ok=True)
    host = machine(args.threads)
    paths = make_data(args.work, NULL_PROGRESS)
    runs = []
    for head in args.heads:
        for seed in args.seeds:
            out = train_row(head, paths, args.work / "runs" / f"{head}-{seed}", seed)
            runs.append(out)
            print(f"  {head:<10} seed {seed}: test mAP {out['mAP']:5.1f}  val mAP {out['val_mAP']:5.1f}  "
                  f"best epoch {out['best_epoch']}", file=sys.stderr, flush=True)
    payload = {
        "benchmark": "video_files_quality",
        "command": "python benchmarks/video_files_quality.py " + " ".join(sys.argv[1:]),
        "data": {"sizes": SIZES, "data_seeds": DATA_SEEDS, "frame_px": FRAME_PX, "frames_per_clip": 20, "fps": FPS,
                 "items_on_screen_frames": [3, 5], "labels": 10, "source": "Fashion-MNIST packaged subset"},
        "extraction": {"path": "stages.extract.extract (mlgraph extract)", "backbone": "efficientnet-lite0",
                       "weights": "IMAGENET1K (packaged)", "image_size": EXTRACT_SIZE or 224, "fps": FPS,
                       "timing": paths["timing"]},
        "training": {"path": "stages.train.train (mlgraph train), defaults", "seeds": args.seeds},
        "machine": host, "summary": summarise(runs), "runs": runs,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
