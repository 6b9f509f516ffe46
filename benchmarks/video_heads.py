"""Every video head x loss on clips of our own, over 9 paired runs: the rule's pick for video (issue 19).

The clip sets are those of benchmarks/video_sampling.py (three independent sets of 4, 12 and 32-second
clips, 8 fps, items on screen for under a second; 120 train / 120 validation / 120 test clips each),
sampled as `mlgraph extract` now samples by default (1 fps with a floor of 32 frames) and extracted
by it at 128 px (EfficientNet-Lite0, packaged weights). Each head is trained through the train stage
with its defaults and 3 training seeds, so a row holds 9 runs, paired with temporal CMA / BCE (the
video default) over (clip set, seed); the validation file chooses each run's epoch and the rule of
docs/benchmarks.md picks on validation mAP (> 2 SE of the paired difference over >= 9 runs). Test
is scored once per run and reported beside it.

    python benchmarks/video_heads.py --work /work/vs      # the work folder of video_sampling.py

Prints the table and writes benchmarks/results/video_heads.json.
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
from video_files_quality import machine, train_row  # noqa: E402
from video_sampling import _test_map, sets  # noqa: E402

SAMPLING = "floor32"  # extract's default sampling (video_sampling.py's choice)
# row -> (head name of video_files_quality.train_row, loss)
ROWS = {
    "cma/bce": ("cma", "bce"), "cma/asl": ("cma", "asl"),
    "cma-no-mean-branch/bce": ("cma-no-mean-branch", "bce"),
    "gap/bce": ("gap", "bce"), "gap/asl": ("gap", "asl"),
    "gmp/bce": ("gmp", "bce"),
    "query/bce": ("query", "bce"), "query/asl": ("query", "asl"),
    "query-graph/bce": ("query-graph", "bce"),
    "probe/bce": ("probe", "bce"),
    "frame-max/bce": ("frame-max", "bce"),
}
REFERENCE = "cma/bce"
MIN_RUNS = 9


def one_run(one: dict, length: str, row: str, seed: int) -> dict:
    """A (clip set, row, seed) run, trained once and kept (bce runs of cma and gap are video_sampling.py's)."""
    head, loss = ROWS[row]
    key = one["keys"][SAMPLING]
    name = f"{key}-{head}-{seed}" if loss == "bce" else f"{key}-{head}-{loss}-{seed}"
    folder = one["folder"] / "runs" / name
    files = {**one["files"][key], "embeddings": one["embeddings"]}
    trained = kept(folder.with_suffix(".json"), lambda: train_row(head, files, folder, seed, tests=(), loss=loss))
    tested = kept(folder.with_name(folder.name + "-test.json"),
                  lambda: dict(trained, test_mAP=_test_map(folder, files["test"])))
    return dict(tested, row=row, data_seed=length, seed=seed)


def table(runs: list[dict]) -> tuple[str, list[dict]]:
    ref = [r for r in runs if r["row"] == REFERENCE]
    rows = []
    for row in ROWS:
        mine = [r for r in runs if r["row"] == row]
        if not mine:
            continue
        val = paired(mine, ref, lambda r: r["val_mAP"])
        test = paired(mine, ref, lambda r: r["test_mAP"])
        rows.append({"row": row, "runs": len(mine), "val": float(np.mean([r["val_mAP"] for r in mine])),
                     "test": float(np.mean([r["test_mAP"] for r in mine])), "val_vs_ref": val, "test_vs_ref": test})
    rows.sort(key=lambda r: -r["val"])
    lines = [f"| rank | head / loss | val mAP | val vs {REFERENCE} | > 2 SE | test mAP | test vs {REFERENCE} | runs |",
             "|---|---|---|---|---|---|---|---|"]
    for rank, r in enumerate(rows, 1):
        v, t = r["val_vs_ref"], r["test_vs_ref"]
        beyond = "-" if r["row"] == REFERENCE or v["se"] is None else ("yes" if v["beyond_2se"] else "no")
        fmt = (lambda d: "-" if d["mean"] is None or r["row"] == REFERENCE else f"{d['mean']:+.2f} ± {d['se'] or 0:.2f}")
        lines.append(f"| {rank} | {r['row'].replace('/', ' / ')} | {r['val']:.2f} | {fmt(v)} | {beyond} | "
                     f"{r['test']:.2f} | {fmt(t)} | {r['runs']} |")
    return "\n".join(lines), rows


def recommend(rows: list[dict]) -> str:
    """The best-validation row beating the reference by > 2 SE over >= 9 pairs; else the reference."""
    for r in rows:
        v = r["val_vs_ref"]
        if r["row"] != REFERENCE and v["n"] >= MIN_RUNS and v["beyond_2se"] and v["mean"] > 0:
            return r["row"]
    return REFERENCE


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="video_sampling.py's work folder (clips are reused)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rows", nargs="+", choices=list(ROWS), default=list(ROWS))
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "benchmarks" / "results" / "video_heads.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    host, start = machine(args.threads), time.perf_counter()
    data = sets(args.work, ("train", "val", "test"), [SAMPLING], {}, args.image_size)
    runs = [one_run(one, length, row, seed) for length, one in data.items() for row in args.rows
            for seed in args.seeds]
    text, rows = table(runs)
    pick = recommend(rows)
    print(text)
    print(f"\nRecommended for video: {pick} (the rule: > 2 SE over >= {MIN_RUNS} paired runs on validation against "
          f"{REFERENCE}, else {REFERENCE})")
    host.update(load_average_1min_at_end=round(os.getloadavg()[0], 2), wall_seconds=round(time.perf_counter() - start))
    payload = {"benchmark": "video_heads", "command": "python benchmarks/video_heads.py " + " ".join(sys.argv[1:]),
               "machine": host, "sampling": SAMPLING, "image_size": args.image_size, "rows": rows,
               "recommended": pick, "runs": runs}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(payload, indent=1, default=float) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
