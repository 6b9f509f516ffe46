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

Issue 19: every head x loss (`--loss bce|asl`; the label-query head `video-query` with graph or
random queries, the converged probe `video-probe`), and ``--clip-sets K``: K independent clip sets
(generator seeds DATA_SEEDS + 10 k), so that the rule of docs/benchmarks.md (paired over >= 9 runs,
> 2 SE on validation) can be applied: rows are paired with ``cma/bce`` (today's default) over
(clip set, training seed), and the mean-pool branch with ``cma-no-mean-branch/bce``. ``--size``
sets the clips per split; ``--no-test2`` skips the second test set.

    .venv/bin/python benchmarks/video_files_quality.py                 # 3 seeds, all rows
    .venv/bin/python benchmarks/video_files_quality.py --seeds 0 --heads cma gap --work /tmp/vf
    .venv/bin/python benchmarks/video_files_quality.py --clip-sets 3 --size 200 --no-test2 --losses bce asl \
        --work /work/bench-work/video -o benchmarks/results/video_heads.json

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
# this checkout's mlgraph_cli; tests/ holds the clip generators; benchmarks/ the study kit
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

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
    "cma-sharpen": "temporal CMA, learned per-label sharpness (head option sharpen)",
    "cma-no-center": "temporal CMA without centering the frames on the clip's mean (center = false)",
    "cma-collapse-zero": "temporal CMA with the paper's a_k when no frame looks like a label (collapse = zero)",
    "query": "label queries over the frames (video-query), queries from the graph's embeddings",
    "query-random": "label queries over the frames (video-query), random queries",
    "probe": "converged linear probe on mean + max pooled frames (video-probe)",
}
# rows pin the options they compare, so that a row names what it ran whatever the defaults become
_CMA = {"mean_branch": True, "center": True, "collapse": "uniform"}  # temporal CMA's defaults before issue 19
HEAD_OPTIONS = {"cma": ("cma", _CMA), "cma-no-mean-branch": ("cma", {**_CMA, "mean_branch": False}),
                "cma-sharpen": ("cma", {**_CMA, "sharpen": True}),
                "cma-no-center": ("cma", {**_CMA, "center": False}),
                "cma-collapse-zero": ("cma", {**_CMA, "collapse": "zero"}),
                "query": ("query", {"init": "embeddings"}), "query-random": ("query", {"init": "random"})}
REFERENCE = "cma/bce"


def clip_set(work: Path, k: int, size: int, test2: bool) -> tuple[Path, dict[str, int], dict[str, int]]:
    """Folder, sizes and generator seeds of clip set ``k`` (set 0: the original seeds, in ``work``)."""
    sizes = {split: size for split in SIZES if test2 or split != "test2"}
    return (work if k == 0 else work / f"set{k}"), sizes, {split: DATA_SEEDS[split] + 10 * k for split in sizes}


def make_data(work: Path, progress, sizes: dict[str, int] = SIZES, seeds: dict[str, int] = DATA_SEEDS) -> dict:
    """Clips, their features files and the embeddings; kept in ``work`` and reused when present."""
    from mlgraph_cli.core.annotations import load_annotations
    from clipkit import ClipWorld, fashion_clips
    from mlgraph_cli.core.graph.counts import build_label_graph
    from mlgraph_cli.core.graph.files import write_graph
    from mlgraph_cli.stages.embed import EmbedConfig, embed
    from mlgraph_cli.stages.extract import ExtractConfig, extract

    world = ClipWorld(size=FRAME_PX, frames=20, fps=FPS)
    paths: dict[str, Path] = {}
    timing = {}
    for split, n in sizes.items():
        folder = work / split
        if not (folder / "labels.csv").is_file():
            fashion_clips(folder, n, seed=seeds[split], world=world, pool=POOLS[split])
        out = work / f"{split}.h5"
        if not out.is_file():
            t0 = time.perf_counter()
            config = ExtractConfig(backbone="efficientnet-lite0", weights="DEFAULT", image_size=EXTRACT_SIZE, fps=FPS,
                                   workers=0, batch_size=32, device="cpu", offline=True)
            r = extract([folder], out, config, annotations=folder / "labels.csv", progress=progress)
            timing[split] = {"clips": r.rows, "frames": r.frames, "seconds": time.perf_counter() - t0}
            print(f"  extracted {split}: {r.rows} clips, {r.frames} frames, {r.frames_per_s:.1f} frames/s",
                  file=sys.stderr, flush=True)
        paths[split] = out
    # the label graph and embeddings a plain `mlgraph build-graph` + `mlgraph embed` write
    ann = load_annotations(work / "train" / "labels.csv")
    graph = work / "graph.json"
    if not graph.is_file():
        write_graph(build_label_graph(ann.dense(), list(ann.labels)), graph)
    paths["embeddings"] = work / "embeddings-default.h5"
    if not paths["embeddings"].is_file():
        embed(graph, paths["embeddings"], EmbedConfig(), command="benchmarks/video_files_quality.py")
    paths["timing"] = timing
    return paths


def train_row(head: str, paths: dict, run: Path, seed: int, loss: str = "bce") -> dict:
    from mlgraph_cli.core.training.trainer import TrainConfig
    from mlgraph_cli.stages.evaluate import evaluate
    from mlgraph_cli.stages.train import train
    from mlgraph_cli.stages.train.inputs import TrainInputs

    inputs = TrainInputs(features=paths["train"], val_features=paths["val"], embeddings=paths["embeddings"])
    start = time.perf_counter()
    name, options = HEAD_OPTIONS.get(head, (head, {}))
    result = train(inputs, TrainConfig(head=name, seed=seed, device="cpu", head_options=options, loss=loss),
                   run_dir=run, force=True)
    seconds = time.perf_counter() - start
    report = evaluate(run, features=paths["test"], device="cpu", output=run / "test.json").metrics
    second = (evaluate(run, features=paths["test2"], device="cpu", output=run / "test2.json").metrics
              if "test2" in paths else {"mAP": None})
    return {"head": head, "loss": loss, "seed": seed, "mAP": report["mAP"], "GAP@20": report["GAP@20"],
            "test2_mAP": second["mAP"], "val_mAP": result.best_map, "best_epoch": result.best_epoch, "seconds": seconds}


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


def ranked(runs: list[dict]) -> tuple[list[dict], str]:
    """Rows (head/loss) ranked by validation mAP with paired differences to REFERENCE over (clip set,
    training seed), the markdown table, and the rule's pick (benchmarks/heads.py's recommend)."""
    from heads import MIN_RUNS, recommend
    from studykit import mean_std, paired

    ref = [r for r in runs if r["row"] == REFERENCE]
    rows = []
    for row in sorted({r["row"] for r in runs}):
        mine = [r for r in runs if r["row"] == row]
        val, test = mean_std([r["val_mAP"] for r in mine]), mean_std([r["mAP"] for r in mine])
        rows.append({"row": row, "runs": len(mine), "val": val[0], "val_std": val[1], "test": test[0],
                     "test_std": test[1], "gap20": mean_std([r["GAP@20"] for r in mine])[0],
                     "val_vs_ref": paired(mine, ref, lambda r: r["val_mAP"]),
                     "test_vs_ref": paired(mine, ref, lambda r: r["mAP"])})
    rows.sort(key=lambda r: -r["val"])
    lines = [f"| rank | head / loss | val mAP | val vs {REFERENCE} | > 2 SE | test mAP | test vs {REFERENCE} | "
             "test GAP@20 | runs |", "|---|---|---|---|---|---|---|---|---|"]
    for i, r in enumerate(rows, 1):
        d, t = r["val_vs_ref"], r["test_vs_ref"]
        fmt = (lambda x: "-" if x["se"] is None or r["row"] == REFERENCE else f"{x['mean']:+.2f} ± {x['se']:.2f}")
        beyond = "-" if fmt(d) == "-" else ("yes" if d["beyond_2se"] else "no")
        head, loss = r["row"].split("/")
        lines.append(f"| {i} | {head} / {loss} | {r['val']:.2f} ± {r['val_std']:.2f} | {fmt(d)} | {beyond} | "
                     f"{r['test']:.2f} ± {r['test_std']:.2f} | {fmt(t)} | {r['gap20']:.2f} | {r['runs']} |")
    choice, why = recommend(rows, REFERENCE, runs)
    for option, paper_row, paper in (("mean_branch", "cma-no-mean-branch", "false"),
                                      ("center", "cma-no-center", "false"), ("collapse", "cma-collapse-zero", "zero")):
        d = paired(ref, [r for r in runs if r["row"] == f"{paper_row}/bce"], lambda r: r["val_mAP"])
        if d["n"] > 1:
            keep = d["n"] >= MIN_RUNS and d["beyond_2se"] and d["mean"] > 0
            lines.append(f"\nTemporal cma `{option}` (today's default - the paper's {paper}, validation): "
                         f"{d['mean']:+.2f} ± {d['se']:.2f} over {d['n']} paired runs: "
                         + ("keep today's." if keep else f"not beyond 2 SE over >= {MIN_RUNS} runs: {paper}."))
    lines.append(f"\nRecommended for video: {choice} ({why}).")
    return rows, "\n".join(lines)


def main() -> None:
    import tempfile

    import torch

    from mlgraph_cli.core.progress import NULL_PROGRESS
    from studykit import kept, machine

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--heads", nargs="+", default=list(HEADS), choices=list(HEADS))
    parser.add_argument("--losses", nargs="+", default=["bce"], choices=["bce", "asl"])
    parser.add_argument("--clip-sets", type=int, default=1, help="independent clip sets (1: the original one)")
    parser.add_argument("--size", type=int, default=300, help="clips per split")
    parser.add_argument("--no-test2", action="store_true", help="skip the second test set")
    parser.add_argument("--work", type=Path, help="keep clips and features here (reused on the next run)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "benchmarks" / "results" / "video_files_quality.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tmp = None
    if args.work is None:
        tmp = tempfile.TemporaryDirectory(prefix="video-files-")
        args.work = Path(tmp.name)
    args.work.mkdir(parents=True, exist_ok=True)
    info = machine()
    runs, timing = [], {}
    for k in range(args.clip_sets):
        folder, sizes, seeds = clip_set(args.work, k, args.size, not args.no_test2)
        folder.mkdir(parents=True, exist_ok=True)
        paths = make_data(folder, NULL_PROGRESS, sizes, seeds)
        timing[k] = paths["timing"]
        for head in args.heads:
            for loss in args.losses:
                if head == "probe" and loss == "asl":
                    continue  # a fitted head: its loss is the log loss of its fit
                for seed in args.seeds:
                    tag = f"{head}-{seed}" if (k, loss) == (0, "bce") else f"{head}-{loss}-set{k}-{seed}"
                    out = kept(args.work / "results" / f"{tag}.json",
                               lambda: train_row(head, paths, args.work / "runs" / tag, seed, loss))
                    runs.append({**out, "row": f"{head}/{out.get('loss', 'bce')}", "data_seed": k})
                    print(f"  {head:<12} {loss} set {k} seed {seed}: test mAP {out['mAP']:5.1f}  val mAP "
                          f"{out['val_mAP']:5.1f}  best epoch {out['best_epoch']}", file=sys.stderr, flush=True)
    single = args.clip_sets == 1 and args.losses == ["bce"]
    rows, text = ranked(runs)
    if not single:
        print(text)
    payload = {
        "benchmark": "video_files_quality",
        "command": "python benchmarks/video_files_quality.py " + " ".join(sys.argv[1:]),
        "data": {"sizes": clip_set(args.work, 0, args.size, not args.no_test2)[1], "clip_sets": args.clip_sets,
                 "data_seeds": {k: clip_set(args.work, k, args.size, not args.no_test2)[2]
                                for k in range(args.clip_sets)},
                 "frame_px": FRAME_PX, "frames_per_clip": 20, "fps": FPS,
                 "items_on_screen_frames": [3, 5], "labels": 10, "source": "Fashion-MNIST packaged subset"},
        "extraction": {"path": "stages.extract.extract (mlgraph extract)", "backbone": "efficientnet-lite0",
                       "weights": "IMAGENET1K (packaged)", "image_size": EXTRACT_SIZE or 224, "fps": FPS,
                       "timing": timing},
        "training": {"path": "stages.train.train (mlgraph train), defaults", "seeds": args.seeds,
                     "losses": args.losses},
        "machine": {"platform": platform.platform(), **info},
        "summary": summarise(runs) if single else rows, "runs": runs,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
