"""ASGE at many labels: time per step and peak memory of the two formulations, 1k to 10k labels.

``dense`` (weighting balanced) forms the (C, C) cosine matrix, its weights and target every step:
O(C^2 d) time and several C x C float32 tensors kept for the backward pass. ``factorised``
(weighting uniform, the default) never forms a C x C matrix of cosines: O(C d^2 + nnz(A) d) per
step, with A sparse below 25 % density. Each (C, formulation) runs in a fresh process (peak
resident memory is the process's ru_maxrss, the adjacency and planted graph included), on one torch
thread, for ``--steps`` Adam steps; seconds per 500 steps (the embed default) are extrapolated.

    python benchmarks/asge_scale.py                  # 1000, 4000, 10000 labels, 10 steps each
    python benchmarks/asge_scale.py --sizes 1000 --steps 5

Prints a table and writes benchmarks/results/asge_scale.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def one(c: int, weighting: str, steps: int) -> dict:
    sys.path[:0] = [str(ROOT), str(HERE)]
    from embed_quality import planted_graph

    from mlgraph_cli.core.embeddings.asge import asge_embeddings
    from mlgraph_cli.core.graph.adjacency import adjacency
    from mlgraph_cli.core.progress import ProgressHook

    class Clock(ProgressHook):  # the time of each Adam step, read through the progress hook
        ticks: list[float] = []

        def start(self, *a, **k) -> None:
            self.ticks.append(time.perf_counter())

        def advance(self, n: int = 1) -> None:
            self.ticks.append(time.perf_counter())

    graph = planted_graph(c)
    target = adjacency(graph, "cond-mean")
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    clock = Clock()
    _, info = asge_embeddings(target, steps=steps, weighting=weighting, progress=clock)
    seconds = time.perf_counter() - t0
    per_step = (clock.ticks[-1] - clock.ticks[1]) / max(1, len(clock.ticks) - 2)  # first step (warm-up) left out
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"labels": c, "weighting": weighting, "solver": info["solver"], "steps": steps,
            "edges": int(graph.num_edges), "seconds_total": round(seconds, 3),
            "s_per_step": round(per_step, 4), "s_per_500_steps": round(per_step * 500, 1), "peak_rss_mib": round(peak),
            "rss_before_fit_mib": round(base), "load_after": os.getloadavg()[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000,4000,10000")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--one", nargs=3, help=argparse.SUPPRESS)
    ap.add_argument("--json", type=Path, default=HERE / "results" / "asge_scale.json")
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(int(args.one[0]), args.one[1], int(args.one[2]))))
        return
    rows = []
    for c in [int(x) for x in args.sizes.split(",")]:
        for weighting in ("uniform", "balanced"):
            proc = subprocess.run([sys.executable, __file__, "--one", str(c), weighting, str(args.steps)],
                                  capture_output=True, text=True, check=True)
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            r = rows[-1]
            print(f"  {c:>6} labels, {r['solver']:<10}: {r['s_per_step']:.3f} s/step, {r['s_per_500_steps']:.0f} s "
                  f"per 500 steps, peak {r['peak_rss_mib']} MiB (load {r['load_after']:.1f})", flush=True)
    print("\n| labels | formulation | s / step | s / 500 steps | peak memory MiB |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['labels']:,} | {r['solver']} | {r['s_per_step']:.3f} | {r['s_per_500_steps']:.0f} | "
              f"{r['peak_rss_mib']:,} |")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"benchmark": "asge_scale", "torch_threads": 1, "cpus": os.cpu_count(),
                                     "rows": rows}, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
