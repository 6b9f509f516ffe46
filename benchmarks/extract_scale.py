"""Extraction images/s with 1 and N processes on this machine: `mlgraph extract` against `torchrun ... extract`.

Both are whole commands on the same fashion-scenes (224 px, EfficientNet-Lite0, batch 32): one
process using every core, and N torchrun processes, each extracting its shard with the cores
shared out (LOCAL_WORLD_SIZE), then rank 0 merging. The two alternate ``--repeats`` times; the
median wall time of each gives images/s. The merged file is checked to equal the one-process
file, dataset by dataset.

    python benchmarks/extract_scale.py                  # 256 scenes, 1 and 2 processes, 3 repeats

Prints a table and writes benchmarks/results/extract_scale.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE), str(ROOT / "tests")]

from extract_speed import PY, load, make_scenes, timed  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", type=Path, default=HERE / "results" / "extract_scale.json")
    args = ap.parse_args()
    from shardkit import assert_same_file

    tmp = Path(tempfile.mkdtemp(prefix="mlgraph-scale-"))
    images = make_scenes(tmp / "scenes", args.images)
    one = [PY, "-m", "mlgraph_cli", "extract", str(images), "-q", "-o"]
    many = [PY, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={args.procs}", *one[1:]]
    before, times = load(), {"1": [], str(args.procs): []}
    for r in range(args.repeats):
        for key, cmd in ([("1", one), (str(args.procs), many)] if r % 2 == 0 else [(str(args.procs), many), ("1", one)]):
            out = tmp / f"f{key}.h5"
            wall, cpu = timed([*cmd, str(out)], ROOT)
            times[key].append(wall)
            print(f"  {key} process(es): {wall:.1f} s wall, {cpu:.1f} s CPU, load {load()}", flush=True)
        assert_same_file(tmp / "f1.h5", tmp / f"f{args.procs}.h5")
        for key in times:
            (tmp / f"f{key}.h5").unlink()
    rows = [{"processes": int(k), "median_wall_s": statistics.median(v), "walls": v,
             "images_per_s": args.images / statistics.median(v)} for k, v in times.items()]
    print(f"\n{args.images} fashion-scenes, 224 px, Lite0; {os.cpu_count()} CPUs; load {before} -> {load()}")
    print("| processes | median wall s | images/s |\n|---|---|---|")
    for row in rows:
        print(f"| {row['processes']} | {row['median_wall_s']:.1f} | {row['images_per_s']:.1f} |")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"benchmark": "extract_scale", "images": args.images, "cpus": os.cpu_count(),
                                     "machine": platform.processor() or platform.machine(), "load_before": before,
                                     "load_after": load(), "same_file": True, "rows": rows}, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
