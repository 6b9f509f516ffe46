"""`mlgraph extract` against a plain script doing the same work, both measured as whole processes.

A: ``python -m mlgraph_cli extract IMAGES -o OUT`` (defaults: EfficientNet-Lite0 with its packaged
weights, 224 px, batch 32; workers and threads chosen from the core count), start-up included.
B: benchmarks/plain_extract.py: imports torch, builds the same Lite0, decodes with PIL, stretches to
224 and runs the forward in batches of 32, writing nothing.

The images are fashion-scenes made by ``mlgraph make-dataset`` (224 px JPEGs). A and B alternate
(A B, B A, ...) ``--repeats`` times, so a change in the load of a shared machine hits both; the
ratio reported is the median of the per-pair ratios. The 1-minute load average is recorded with
every run. Target: ratio <= 1.1.

    python benchmarks/extract_speed.py                 # 256 images, 5 pairs
    python benchmarks/extract_speed.py --extra --workers 2 --threads 1    # A with other settings

Prints a table and writes benchmarks/results/extract_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PY = sys.executable


def load() -> float:
    return round(os.getloadavg()[0], 2)


def make_photos(folder: Path, n: int, size=(640, 480), seed: int = 0) -> None:
    """Photo-like JPEGs: smooth gradients, a few shapes and sensor-like noise (quality 90, ~50-100 KB)."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        base = np.stack([(xx / w) * rng.uniform(80, 255), (yy / h) * rng.uniform(80, 255),
                         np.full_like(xx, rng.uniform(0, 200))], -1)
        img = Image.fromarray(np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(img)
        for _ in range(6):
            x0, y0 = int(rng.integers(0, w - 60)), int(rng.integers(0, h - 60))
            box = [x0, y0, x0 + int(rng.integers(30, 250)), y0 + int(rng.integers(30, 200))]
            color = tuple(int(c) for c in rng.integers(0, 255, 3))
            (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=color)
        img.save(folder / f"photo{i:04d}.jpg", quality=90)


def make_scenes(folder: Path, images: int) -> Path:
    """``images`` fashion-scenes at 224 px under ``folder``; returns the images folder."""
    if not (folder / "images" / "train").is_dir():
        subprocess.run([PY, "-m", "mlgraph_cli", "make-dataset", "fashion-scenes", str(folder), "--train", str(images),
                        "--val", "0", "--test", "0", "--size", "224"], cwd=ROOT, check=True, capture_output=True)
    return folder / "images" / "train"


def timed(cmd: list[str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one fresh process."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def whole_process(images_dir: Path, out: Path, repeats: int, extra: list[str] | None = None) -> dict:
    """``repeats`` alternated (mlgraph extract, plain script) pairs of whole-process wall times."""
    a_cmd = [PY, "-m", "mlgraph_cli", "extract", str(images_dir), "-o", str(out), "-q", *(extra or [])]
    b_cmd = [PY, str(HERE / "plain_extract.py"), str(images_dir)]
    pairs = []
    for r in range(repeats):
        order = ("a", "b") if r % 2 == 0 else ("b", "a")
        t, cpu = {}, {}
        for side in order:
            t[side], cpu[side] = timed(a_cmd if side == "a" else b_cmd, ROOT)
            if side == "a":
                out.unlink()
        pairs.append({"mlgraph_s": round(t["a"], 3), "plain_s": round(t["b"], 3), "ratio": round(t["a"] / t["b"], 4),
                      "mlgraph_cpu_s": round(cpu["a"], 2), "plain_cpu_s": round(cpu["b"], 2),
                      "first": order[0], "load_after": load()})
        print(f"  pair {r + 1}/{repeats}: mlgraph {t['a']:.2f} s, plain {t['b']:.2f} s, "
              f"ratio {t['a'] / t['b']:.3f}, load {load()}", flush=True)
    return {"pairs": pairs, "median_ratio": statistics.median(p["ratio"] for p in pairs),
            "median_mlgraph_s": statistics.median(p["mlgraph_s"] for p in pairs),
            "median_plain_s": statistics.median(p["plain_s"] for p in pairs),
            "median_cpu_ratio": statistics.median(p["mlgraph_cpu_s"] / p["plain_cpu_s"] for p in pairs)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--folder", type=Path, default=None, help="Keep the scenes here (default: a temp dir).")
    ap.add_argument("--json", type=Path, default=HERE / "results" / "extract_speed.json")
    ap.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="More `mlgraph extract` flags (last).")
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory(prefix="mlgraph-bench-")
    images_dir = make_scenes(args.folder or Path(tmp.name) / "scenes", args.images)
    before = load()
    m = whole_process(images_dir, Path(tmp.name) / "features.h5", args.repeats, args.extra)
    print(f"\n{args.images} fashion-scenes, 224 px, EfficientNet-Lite0, batch 32, {os.cpu_count()} CPUs, "
          f"load {before} -> {load()}; extra flags: {' '.join(args.extra) or '(none)'}")
    print("| run | mlgraph extract s | plain script s | ratio |\n|---|---|---|---|")
    for i, p in enumerate(m["pairs"], 1):
        print(f"| {i} ({p['first']} first) | {p['mlgraph_s']:.2f} | {p['plain_s']:.2f} | {p['ratio']:.3f} |")
    print(f"| median | {m['median_mlgraph_s']:.2f} | {m['median_plain_s']:.2f} | {m['median_ratio']:.3f} |")
    print(f"CPU seconds, median ratio of the pairs: {m['median_cpu_ratio']:.3f}")
    report = {"benchmark": "extract_speed (whole processes)", "images": args.images, "image_size": 224,
              "backbone": "efficientnet-lite0", "batch_size": 32, "extra_flags": args.extra, "cpus": os.cpu_count(),
              "machine": platform.processor() or platform.machine(), "load_before": before, "load_after": load(),
              "target_ratio": 1.1, **m}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
