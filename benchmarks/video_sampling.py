"""Which frames `mlgraph extract` samples from a clip by default: a floor on frames per clip, chosen on validation.

At 1 frame a second a 4-second clip gives 4 frames, and an item on screen for under a second is
often missed; temporal CMA, which should find the few frames that show a label, is then starved.
Candidates: 1 fps with a floor of 0 (the old default), 8, 16 or 32 frames a clip (`--min-frames`;
the floor spreads its frames over the clip, never more than the clip has, and leaves clips longer
than floor / fps seconds at 1 fps).

Clips: tests/clipkit.py's generator (as benchmarks/video_files_quality.py uses it) at three
lengths, all at 8 fps with 96 px frames and each item on screen for 3-6 frames (under a second):
short 4 s (32 frames), medium 12 s (96), long 30 s (240); 160 train / 160 validation / 160 test
clips per length, items from disjoint photographs. Each set goes through the function behind
`mlgraph extract` once per distinct sampling (candidates that take the same frames of a set share
its file; EfficientNet-Lite0, packaged weights, its default 224 px input); the embeddings are what
`mlgraph build-graph` + `mlgraph embed` write for the set's training labels; `cma` (temporal CMA)
and `gap` (mean pooling) are trained by the function behind `mlgraph train` with its defaults and
the validation file choosing the checkpoint. Each candidate is compared with 1 fps by paired
differences of validation mAP over (length, training seed) pairs: same clips, same seed.

The rule, fixed before the study ran: a candidate may replace 1 fps only if its paired gain in
temporal CMA validation mAP over >= 9 runs exceeds two standard errors; among those, the one with
the best mean gain, unless a smaller floor (fewer frames to decode and run through the backbone) is
within two standard errors of it, paired. `--score-test` then scores the test clips of the named
candidates once, with the runs already trained.

    .venv/bin/python benchmarks/video_sampling.py --work /tmp/vs                      # the choice
    .venv/bin/python benchmarks/video_sampling.py --work /tmp/vs --score-test fps1 floor16

Prints markdown tables and writes benchmarks/results/video_sampling.json (video_sampling_test.json).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

from studykit import kept, paired  # noqa: E402
from video_files_quality import FRAME_PX, machine, make_embeddings, make_split, train_row  # noqa: E402

LENGTHS = {"short": 4.0, "medium": 12.0, "long": 32.0}  # seconds
CLIP_FPS, VISIBLE = 8.0, (3, 6)  # the clips' frame rate; frames an item stays on screen
SIZES = {"train": 120, "val": 120, "test": 120}
CANDIDATES = {"fps1": 0, "floor8": 8, "floor16": 16, "floor32": 32}  # --min-frames on --fps 1, in increasing floor
HEADS = {"cma": "temporal CMA", "gap": "mean pooling"}
ALL_LENGTHS = tuple(LENGTHS)  # a set's data seeds come from its place here, whichever lengths a run asks for


def sets(work: Path, splits: tuple[str, ...], candidates: list[str], timing: dict, image_size: int) -> dict:
    """Per length: its clips (generated once), a features file per distinct sampling of the
    candidates (extracted once), and the embeddings of its training labels."""
    from clipkit import ClipWorld, fashion_clips
    from mlgraph_cli.core.media.videos import Sampling, probe
    from mlgraph_cli.core.progress import NULL_PROGRESS

    out = {}
    for length, seconds in LENGTHS.items():
        i = list(ALL_LENGTHS).index(length)
        world = ClipWorld.lasting(seconds, CLIP_FPS, size=FRAME_PX, visible=VISIBLE)
        folder = work / length
        seeds = {split: 100 + 10 * i + j for j, split in enumerate(SIZES)}
        if not (folder / "train" / "labels.csv").is_file():
            fashion_clips(folder / "train", SIZES["train"], seed=seeds["train"], world=world, pool="train")
        clip = probe(folder / "train" / "clip0000.mp4")  # every clip of a set has the same length and rate
        keys = {c: f"t{len(Sampling(fps=1.0, min_frames=CANDIDATES[c]).times(clip.duration, clip.fps))}-{image_size}px"
                for c in candidates}
        files: dict = {}
        for cand, key in keys.items():
            sampling = {"fps": 1.0, "min_frames": CANDIDATES[cand], "max_frames": 300}
            if key not in files:
                files[key] = {split: make_split(folder / split, folder / f"{split}-{key}.h5", SIZES[split],
                                                seeds[split], world, split, sampling, NULL_PROGRESS, timing, image_size)
                              for split in splits}
        out[length] = {"keys": keys, "files": files, "embeddings": make_embeddings(folder), "folder": folder,
                       "seconds": clip.duration, "data_seeds": seeds}
    return out


def run(one: dict, length: str, cand: str, head: str, seed: int, score_test: bool) -> dict:
    """One (length, sampling, head, seed) run, trained once and kept; its test file scored on request."""
    key = one["keys"][cand]
    folder = one["folder"] / "runs" / f"{key}-{head}-{seed}"
    files = {**one["files"][key], "embeddings": one["embeddings"]}
    row = kept(folder.with_suffix(".json"), lambda: train_row(head, files, folder, seed, tests=()))
    if score_test:
        tested = folder.with_name(folder.name + "-test.json")
        row = kept(tested, lambda: dict(row, test_mAP=_test_map(folder, files["test"])))
    return dict(row, data_seed=length, length=length, candidate=cand, frames=_frames(key))


def _test_map(run_dir: Path, features: Path) -> float:
    from mlgraph_cli.stages.evaluate import evaluate

    return evaluate(run_dir, features=features, device="cpu", output=run_dir / "test.json").metrics["mAP"]


def study(data: dict, seeds: list[int], metric: str) -> dict:
    """The per-set table, the paired comparison of each candidate with 1 fps, and the choice."""
    runs = [run(one, length, cand, head, seed, metric == "test_mAP")
            for length, one in data.items() for cand in one["keys"] for head in HEADS for seed in seeds]
    value = lambda r: r[metric]  # noqa: E731
    pick = lambda cand, head: [r for r in runs if r["candidate"] == cand and r["head"] == head]  # noqa: E731
    print(f"\n| clips | sampling | frames a clip | temporal CMA {metric} | mean pooling {metric} "
          "| CMA - mean pooling |")
    print("|---|---|---|---|---|---|")
    rows = []
    for length, one in data.items():
        for cand, key in one["keys"].items():
            cma, gap = ([r for r in pick(cand, h) if r["length"] == length] for h in HEADS)
            lead = paired(cma, gap, value)
            rows.append({"length": length, "candidate": cand, "frames": _frames(key), "cma_minus_gap": lead,
                         **{h: [value(r) for r in rs] for h, rs in (("cma", cma), ("gap", gap))}})
            print(f"| {length} ({one['seconds']:g} s) | {cand} | {_frames(key)} | {_ms([value(r) for r in cma])} | "
                  f"{_ms([value(r) for r in gap])} | {_pm(lead)} |")
    compared = {}
    print(f"\n| sampling | temporal CMA gain over fps1 | mean pooling gain over fps1 | CMA - mean pooling | runs "
          f"| CMA gain > 2 SE |")
    print("|---|---|---|---|---|---|")
    for cand in [c for c in CANDIDATES if c != "fps1" and pick(c, "cma")]:
        cma = paired(pick(cand, "cma"), pick("fps1", "cma"), value)
        gap = paired(pick(cand, "gap"), pick("fps1", "gap"), value)
        lead = paired(pick(cand, "cma"), pick(cand, "gap"), value)
        compared[cand] = {"cma_gain": cma, "gap_gain": gap, "cma_minus_gap": lead}
        print(f"| {cand} | {_pm(cma)} | {_pm(gap)} | {_pm(lead)} | {cma['n']} | "
              f"{'yes' if cma['beyond_2se'] and cma['mean'] > 0 else 'no'} |")
    base = paired(pick("fps1", "cma"), pick("fps1", "gap"), value)
    print(f"| fps1 | | | {_pm(base)} | {base['n']} | |")
    return {"table": rows, "paired": compared, "fps1_cma_minus_gap": base, "runs": runs,
            "choice": choose(compared, pick, value)}


def choose(compared: dict, pick, value) -> str:
    """The rule of the module docstring."""
    passing = [c for c, p in compared.items() if p["cma_gain"]["n"] >= 9 and p["cma_gain"]["beyond_2se"]
               and p["cma_gain"]["mean"] > 0]
    if not passing:
        return "fps1"
    best = max(passing, key=lambda c: compared[c]["cma_gain"]["mean"])
    for cand in passing:  # in increasing floor
        worse = paired(pick(best, "cma"), pick(cand, "cma"), value)
        if cand == best or not (worse["beyond_2se"] and worse["mean"] > 0):
            return cand
    return best


def _frames(key: str) -> int:
    """Frames a clip of a set's key ("t16-224px")."""
    return int(key[1:].split("-")[0])


def _ms(values: list[float]) -> str:
    return f"{np.mean(values):.2f} ± {np.std(values, ddof=1) if len(values) > 1 else 0.0:.2f}"


def _pm(p: dict) -> str:
    return "" if p["mean"] is None else f"{p['mean']:+.2f} ± {p['se'] or 0.0:.2f}"


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="clips, features and runs (reused on the next run)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--score-test", nargs="+", choices=list(CANDIDATES),
                        help="score the test clips of these candidates once (after the choice)")
    parser.add_argument("--clips", type=int, help=f"clips per split (default: {SIZES})")
    parser.add_argument("--lengths", nargs="+", choices=list(LENGTHS), help="only these clip lengths (a smoke run)")
    parser.add_argument("--image-size", type=int, default=128, help="the backbone's input side (its default: 224)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("-o", "--output", type=Path)
    args = parser.parse_args()
    if args.clips:
        SIZES.update({split: args.clips for split in SIZES})
    for length in set(LENGTHS) - set(args.lengths or LENGTHS):
        del LENGTHS[length]
    name = "video_sampling_test" if args.score_test else "video_sampling"
    output = args.output or ROOT / "benchmarks" / "results" / f"{name}.json"
    torch.set_num_threads(args.threads)
    host, start, timing = machine(args.threads), time.perf_counter(), {}
    splits = ("train", "val", "test") if args.score_test else ("train", "val")
    data = sets(args.work, splits, args.score_test or list(CANDIDATES), timing, args.image_size)
    result = study(data, args.seeds, "test_mAP" if args.score_test else "val_mAP")
    if not args.score_test:
        print(f"\nchosen on validation: {result['choice']}")
    host.update(load_average_1min_at_end=round(os.getloadavg()[0], 2), wall_seconds=round(time.perf_counter() - start))
    payload = {"benchmark": name, "command": "python benchmarks/video_sampling.py " + " ".join(sys.argv[1:]),
               "machine": host,
               "data": {"lengths_seconds": LENGTHS, "clip_fps": CLIP_FPS, "items_on_screen_frames": VISIBLE,
                        "sizes": SIZES, "frame_px": FRAME_PX, "labels": 10, "source": "Fashion-MNIST packaged subset",
                        "data_seeds": {k: v["data_seeds"] for k, v in data.items()}},
               "extraction": {"path": "stages.extract.extract (mlgraph extract)", "backbone": "efficientnet-lite0",
                              "weights": "IMAGENET1K (packaged)", "image_size": args.image_size, "timing": timing},
               "candidates": {c: {"fps": 1.0, "min_frames": k, "max_frames": 300} for c, k in CANDIDATES.items()},
               "training": {"path": "stages.train.train (mlgraph train), defaults", "seeds": args.seeds}, **result}
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {output}", file=sys.stderr)


if __name__ == "__main__":
    main()
