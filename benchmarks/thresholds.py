"""Do per-label thresholds tuned on validation beat the global 0.5 on held-out data?

Protocol (docs/benchmarks.md, "Tuned thresholds"): fashion-scenes (--train / --val / --test scenes,
generator seed 0), EfficientNet-Lite0 features at 224 px, ASGE label embeddings, the cma head
trained by the train stage with its default settings (``stages.train.train``: the same code
`mlgraph train` runs, which also tunes the thresholds on the validation split), then scored once
on the test split by the evaluate stage (``stages.evaluate.evaluate``), at 0.5 and with
``--threshold tuned``. Several training seeds; mean and sample std.

The data is prepared with the CLI (make-dataset, build-graph, embed, extract) in the work folder
(default /tmp/mlgraph-thresh, outside the repository), once; finished runs are reused.

    python benchmarks/thresholds.py                      # 2000 / 500 / 1000 scenes, seeds 0 1 2
    python benchmarks/thresholds.py --seeds 0 --work /tmp/t --train 600 --val 200 --test 400
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "thresholds.json"
GLOVE = ROOT / "mlgraph_cli" / "data" / "vectors" / "glove-6b-50d-fashion.txt"
KEYS = ("CP", "CR", "CF1", "OP", "OR", "OF1")
sys.path.insert(0, str(ROOT))  # this checkout's mlgraph_cli, whatever is installed


def mlgraph(*args: str, cwd: Path) -> None:
    """The data preparation runs the commands a user types."""
    print("$ mlgraph " + " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "mlgraph_cli", *args], cwd=cwd, check=True)


def prepare(args: argparse.Namespace) -> Path:
    data = Path(args.work) / "fashion"
    if not (data / "mlgraph.toml").exists():
        mlgraph("make-dataset", "fashion-scenes", str(data), "--train", str(args.train), "--val", str(args.val),
                "--test", str(args.test), "--seed", "0", cwd=ROOT)
    art = data / "artifacts"
    if not (art / "graph.json").exists():
        mlgraph("build-graph", cwd=data)
    if not (art / "embeddings.h5").exists():
        mlgraph("embed", "--init", str(GLOVE), "--seed", "0", cwd=data)
    for split, name in (("train", "features"), ("val", "val-features"), ("test", "test-features")):
        if not (art / f"{name}.h5").exists():
            mlgraph("extract", "--split", split, "-q", cwd=data)
    return data


def run_seed(data: Path, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """Train (thresholds tuned on val by the train stage), then evaluate on val and test."""
    from mlgraph_cli.core.training.config import TrainConfig
    from mlgraph_cli.stages.evaluate import evaluate
    from mlgraph_cli.stages.train import train
    from mlgraph_cli.stages.train.inputs import TrainInputs

    art = data / "artifacts"
    run_dir = Path(args.work) / "runs" / f"{args.head}-s{seed}"
    t0 = time.perf_counter()
    if not (run_dir / "curves.png").exists():
        train(TrainInputs(features=art / "features.h5", val_features=art / "val-features.h5",
                          embeddings=art / "embeddings.h5"),
              TrainConfig(head=args.head, seed=seed, cache="ram", device="cpu", epochs=args.epochs), run_dir=run_dir,
              force=True)
    seconds = time.perf_counter() - t0
    out: dict[str, Any] = {"seed": seed, "run": str(run_dir), "train_seconds": round(seconds, 1)}
    for split, name in (("val", "val-features"), ("test", "test-features")):
        m = evaluate(run_dir, features=art / f"{name}.h5", output=run_dir / f"eval-{split}.json", device="cpu",
                     plots=None).metrics
        both = m["thresholds"]
        out[split] = {"mAP": m["mAP"], "at_0.5": {k: both["fixed"][k] for k in KEYS},
                      "tuned": {k: both["tuned"][k] for k in KEYS}, "split": m["split"]["name"]}
    config = json.loads((run_dir / "config.json").read_text())
    out["thresholds"] = dict(zip(config["labels"], config["thresholds"]))
    return out


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def table(runs: list[dict[str, Any]]) -> str:
    lines = ["| split | metric | at 0.5 | tuned | tuned - 0.5 |", "|---|---|---:|---:|---:|"]
    for split in ("test", "val"):
        for key in KEYS:
            fixed = [r[split]["at_0.5"][key] for r in runs]
            tuned = [r[split]["tuned"][key] for r in runs]
            diff = [t - f for t, f in zip(tuned, fixed)]
            cells = [mean_std(v) for v in (fixed, tuned, diff)]
            lines.append(f"| {split} | {key} | " + " | ".join(f"{m:.2f} ± {s:.2f}" for m, s in cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="/tmp/mlgraph-thresh")
    parser.add_argument("--train", type=int, default=2000)
    parser.add_argument("--val", type=int, default=500)
    parser.add_argument("--test", type=int, default=1000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--head", default="cma")
    parser.add_argument("--epochs", type=int, default=None, help="default: the head's default schedule")
    args = parser.parse_args()
    data = prepare(args)
    runs = [run_seed(data, seed, args) for seed in args.seeds]
    text = table(runs)
    print(text)
    cf1 = [r["test"]["tuned"]["CF1"] - r["test"]["at_0.5"]["CF1"] for r in runs]
    doc = {"benchmark": "benchmarks/thresholds.py", "date": time.strftime("%Y-%m-%d"),
           "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}",
           "protocol": {"train": args.train, "val": args.val, "test": args.test, "head": args.head,
                        "seeds": args.seeds, "epochs": args.epochs, "backbone": "efficientnet-lite0 224 px", "embeddings": "asge"},
           "runs": runs, "test_CF1_gain": {"mean": mean_std(cf1)[0], "std": mean_std(cf1)[1], "min": min(cf1)},
           "target": "tuned thresholds do not lower test CF1 below the 0.5 figure", "pass": min(cf1) >= 0.0,
           "table": text}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"-> {RESULTS}")


if __name__ == "__main__":
    main()
