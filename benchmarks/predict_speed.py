"""What `mlgraph predict` on one image costs over a plain script doing the same, as whole processes.

The plain script imports torch, builds EfficientNet-Lite0 with its packaged ImageNet weights and
the run's head from ``best.safetensors``, reads one image, runs the forward and prints the
scores: the floor any tool must pay. `mlgraph predict IMAGE --model RUN --format jsonl` does the
same through the product (start-up, project and config resolution, checks, output). Both are
timed as whole processes (start to exit, wall clock), alternated ``--repeats`` times so a busy
machine slows both alike; the table shows each one's median and the ratio of medians.
Target: ratio <= 1.1.

The run is made here, in a temporary folder: 16 generated images, Lite0 features at 224 px, a
cma head trained for one epoch on random label embeddings (scores do not matter, cost does).

    python benchmarks/predict_speed.py                    # default repeats
    python benchmarks/predict_speed.py --repeats 15 --threads 1 2

Prints a table and writes benchmarks/results/predict_speed.json.
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

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PLAIN = r'''
import json, sys
import numpy as np, torch
from PIL import Image, ImageOps
from safetensors.torch import load_file
from mlgraph_cli.core.features.backbones.lite0 import Lite0Body
from mlgraph_cli.core.features.backbones.weights import lite0_model
from mlgraph_cli.core.models import build_head

run, path = sys.argv[1], sys.argv[2]
if len(sys.argv) > 3:
    torch.set_num_threads(int(sys.argv[3]))
cfg = json.load(open(f"{run}/config.json"))
size, layers = cfg["backbone"]["image_size"], cfg["backbone"]["layers"]
net, _ = lite0_model("IMAGENET1K", size, 0)
body = Lite0Body(net, layers).eval()
head = build_head(**cfg["head"])
head.load_state_dict({k[5:]: v for k, v in load_file(f"{run}/best.safetensors").items() if k.startswith("head.")})
head.eval()
img = ImageOps.exif_transpose(Image.open(path)).convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
x = (torch.from_numpy(np.asarray(img, np.float32) / 255.0) - 0.5) / 0.5  # (S, S, 3) in [-1, 1]
with torch.inference_mode():
    probs = torch.sigmoid(head(body(x.permute(2, 0, 1)[None])[layers[-1]]))[0]  # (C,)
print(json.dumps({n: round(float(p), 6) for n, p in zip(cfg["labels"], probs)}))
'''


def make_run(tmp: Path) -> tuple[Path, Path]:
    """A Lite0 cma run and one of its images, made through the CLI."""
    from PIL import Image, ImageDraw

    from mlgraph_cli.core.embeddings.files import LabelEmbeddings, write_embeddings

    rng = np.random.default_rng(0)
    labels = ["red", "green", "blue"]
    images = tmp / "images"
    images.mkdir()
    rows = []
    for i in range(16):
        img = Image.new("RGB", (320, 240), (128, 128, 128))
        draw = ImageDraw.Draw(img)
        present = [k for k in range(3) if rng.random() < 0.5] or [0]
        for k in present:
            x, y = int(rng.integers(0, 240)), int(rng.integers(0, 160))
            draw.ellipse([x, y, x + 70, y + 70], fill=[(220, 40, 40), (40, 180, 60), (50, 70, 220)][k])
        img.save(images / f"img{i:02d}.jpg", quality=90)
        rows.append(f"img{i:02d}.jpg," + ";".join(labels[k] for k in present))
    (tmp / "labels.csv").write_text("file_name,labels\n" + "\n".join(rows) + "\n")
    vectors = rng.normal(size=(3, 8)).astype(np.float32)
    write_embeddings(tmp / "emb.h5", LabelEmbeddings(labels=labels, vectors=vectors, attrs={"method": "bench"}))
    mlgraph = [sys.executable, "-m", "mlgraph_cli"]
    run = tmp / "run"
    for args in (["extract", images, "--annotations", tmp / "labels.csv", "-o", tmp / "f.h5", "--workers", "0", "-q"],
                 ["train", "--features", tmp / "f.h5", "--embeddings", tmp / "emb.h5", "--epochs", "1",
                  "--val-fraction", "0", "-o", run, "-q"]):
        subprocess.run([*mlgraph, *map(str, args)], check=True, cwd=tmp, capture_output=True)
    return run, images / "img00.jpg"


def whole_process(cmd: list[str], cwd: Path, pythonpath: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--threads", type=int, nargs="*", default=[],
                    help="also time `predict --threads N` for each N (the default is automatic)")
    ap.add_argument("--compare-with", type=Path, default=None,
                    help="also time `mlgraph predict` of another checkout (e.g. before a change)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "predict_speed.json")
    args = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        run, image = make_run(tmp)
        (tmp / "plain.py").write_text(PLAIN)
        variants = {"plain script": [sys.executable, str(tmp / "plain.py"), str(run), str(image)],
                    "mlgraph predict": [sys.executable, "-m", "mlgraph_cli", "predict", str(image), "--model",
                                        str(run), "--format", "jsonl", "-q"]}
        variants["plain script, 1 thread"] = [*variants["plain script"], "1"]
        for n in args.threads:
            variants[f"mlgraph predict --threads {n}"] = [*variants["mlgraph predict"], "--threads", str(n)]
        paths = {name: ROOT for name in variants}
        if args.compare_with is not None:
            variants[f"mlgraph predict of {args.compare_with}"] = variants["mlgraph predict"]
            paths[f"mlgraph predict of {args.compare_with}"] = args.compare_with
        plain_out = subprocess.run(variants["plain script"], check=True, capture_output=True, text=True, env=env)
        ours = subprocess.run([*variants["mlgraph predict"], "--threshold", "0"], check=True, capture_output=True,
                              text=True, env=env, cwd=tmp)
        plain_scores = json.loads(plain_out.stdout)
        our_scores = {i["label"]: i["score"] for i in json.loads(ours.stdout)["labels"]}
        agree = max(abs(plain_scores[k] - our_scores[k]) for k in plain_scores)
        times: dict[str, list[float]] = {k: [] for k in variants}
        for _ in range(args.repeats):  # alternated, so load on the machine falls on every variant alike
            for name, cmd in variants.items():
                times[name].append(whole_process(cmd, tmp, paths[name]))
    base = statistics.median(times["plain script"])
    print(f"{'variant':<32} {'median s':>9} {'min s':>7} {'ratio':>6}")
    rows = []
    for name, ts in times.items():
        med = statistics.median(ts)
        rows.append({"variant": name, "median_s": round(med, 3), "min_s": round(min(ts), 3),
                     "ratio": round(med / base, 3), "times_s": [round(t, 3) for t in ts]})
        print(f"{name:<32} {med:>9.2f} {min(ts):>7.2f} {med / base:>6.2f}")
    print(f"scores of the two agree within {agree:.1e}")
    result = {"benchmark": "predict_speed", "image": "320 x 240 JPEG, Lite0 IMAGENET1K at 224 px, cma head",
              "repeats": args.repeats, "cores": os.cpu_count(), "load_avg": list(os.getloadavg()),
              "python": platform.python_version(), "rows": rows, "max_score_difference": agree}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
