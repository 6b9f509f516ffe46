"""How much `mlgraph extract` costs over a bare forward pass of the same backbone on the same images.

The pipeline (decode JPEG + resize in DataLoader workers, forward, float16 HDF5 write) is timed
by the extract stage itself (model building excluded); the bare forward runs the same batches of
already-preprocessed tensors held in memory. Target: overhead under 15 % on EfficientNet-Lite0,
224 px, 512 photo-sized (640 x 480) JPEGs. Both measurements alternate ``--repeats`` times and
the best of each is compared (and, separately, each pipeline run with the bare run just before
it), which damps the noise of a shared machine.

    python benchmarks/extract_speed.py                       # the target configuration
    python benchmarks/extract_speed.py --workers 0 1 2       # compare worker counts

Prints a table and writes benchmarks/results/extract_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_photos(folder: Path, n: int, size=(640, 480), seed: int = 0) -> None:
    """Photo-like JPEGs: smooth gradients, a few shapes and sensor-like noise (quality 90, ~50-100 KB)."""
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


def bare_forward(backbone, tensors, batch_size: int, device) -> float:
    """Seconds to run every batch through the backbone (tensors already decoded and resized)."""
    import torch

    with torch.inference_mode():
        t0 = time.perf_counter()
        for s in range(0, len(tensors), batch_size):
            out = backbone(tensors[s:s + batch_size].to(device))
            for v in out.values():
                v.cpu()  # the pipeline copies to host too; also synchronises a GPU
        return time.perf_counter() - t0


def prepare_photos(folder: Path, images: int, backbone_name: str, weights: str, image_size: int, batch_size: int,
                   device):
    """Make ``images`` JPEGs in ``folder`` (unless already there) and the bare-forward inputs.

    Returns (backbone, tensors (N, 3, S, S) preprocessed in memory, mean JPEG size in KB); the
    backbone has run one warm-up batch (kernel selection), so the first timed run is not penalised.
    """
    import torch

    from mlgraph_cli.core.backbones import build_backbone
    from mlgraph_cli.core.images import list_images, load_image

    if len(list_images(folder) if folder.is_dir() else []) != images:
        make_photos(folder, images)
    paths = list_images(folder)
    mean_kb = float(np.mean([p.stat().st_size for p in paths]) / 1024)
    backbone = build_backbone(backbone_name, weights, None, image_size, device)
    tensors = torch.stack([backbone.preprocess(load_image(p)) for p in paths])  # untimed
    bare_forward(backbone, tensors[:batch_size], batch_size, device)  # warm-up (kernel selection)
    return backbone, tensors, mean_kb


def pipeline_seconds(folder: Path, out: Path, cfg, expected_rows: int) -> tuple[float, float]:
    """One `extract` stage run of ``folder`` into ``out`` (deleted after): (stage seconds, wall seconds).

    Stage seconds are the stage's own timing (model building excluded); wall includes building it.
    """
    from mlgraph_cli.stages.extract import extract

    t0 = time.perf_counter()
    result = extract([folder], out, cfg)
    wall = time.perf_counter() - t0
    assert result.rows == expected_rows, result
    out.unlink()
    return result.seconds, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--backbone", default="efficientnet-lite0")
    parser.add_argument("--weights", default="DEFAULT")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, nargs="+", default=[2])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--folder", type=Path, default=None, help="Keep the generated JPEGs here (default: a temp dir).")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "extract_speed.json")
    args = parser.parse_args()

    import torch

    from mlgraph_cli.core.device import resolve_device
    from mlgraph_cli.stages.extract import ExtractConfig

    tmp = tempfile.TemporaryDirectory(prefix="mlgraph-bench-")
    folder = args.folder or Path(tmp.name) / "photos"
    device = resolve_device(args.device)
    backbone, tensors, mean_kb = prepare_photos(folder, args.images, args.backbone, args.weights, args.image_size,
                                                args.batch_size, device)

    rows = []
    for workers in args.workers:
        cfg = ExtractConfig(backbone=args.backbone, weights=args.weights, image_size=args.image_size,
                            batch_size=args.batch_size, workers=workers, device=str(device))
        bare, pipe, wall = [], [], []
        for r in range(args.repeats):
            bare.append(bare_forward(backbone, tensors, args.batch_size, device))
            stage_s, wall_s = pipeline_seconds(folder, Path(tmp.name) / f"f{workers}-{r}.h5", cfg, args.images)
            pipe.append(stage_s)
            wall.append(wall_s)
        best_bare, best_pipe = min(bare), min(pipe)
        rows.append({
            "workers": workers, "bare_forward_s": bare, "pipeline_s": pipe, "pipeline_wall_s": wall,
            "bare_img_per_s": args.images / best_bare, "pipeline_img_per_s": args.images / best_pipe,
            "overhead_pct": 100 * (best_pipe / best_bare - 1),
            # Each pipeline run against the bare run just before it: robust to slow drifts in load.
            "paired_overhead_pct": [100 * (p / b - 1) for b, p in zip(bare, pipe)],
            "median_paired_overhead_pct": float(np.median([100 * (p / b - 1) for b, p in zip(bare, pipe)])),
        })

    print(f"\n{args.backbone} ({args.weights}), {args.image_size} px, {args.images} JPEGs "
          f"({mean_kb:.0f} KB mean, 640x480), batch {args.batch_size}, device {device}, "
          f"torch threads {torch.get_num_threads()}, {os.cpu_count()} CPUs")
    print(f"{'workers':>7} | {'bare fwd s':>10} | {'pipeline s':>10} | {'bare img/s':>10} | {'pipe img/s':>10} | "
          f"overhead (best/best) | overhead (median of pairs)")
    for r in rows:
        print(f"{r['workers']:>7} | {min(r['bare_forward_s']):>10.2f} | {min(r['pipeline_s']):>10.2f} | "
              f"{r['bare_img_per_s']:>10.1f} | {r['pipeline_img_per_s']:>10.1f} | {r['overhead_pct']:>+18.1f} % | "
              f"{r['median_paired_overhead_pct']:>+24.1f} %")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    report = {
        "benchmark": "extract_speed", "backbone": args.backbone, "weights": args.weights,
        "image_size": args.image_size, "images": args.images, "jpeg_mean_kb": round(float(mean_kb), 1),
        "batch_size": args.batch_size, "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(), "load_avg_1min_at_end": load,
        "target_overhead_pct": 15.0, "rows": rows,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
