"""How fast `mlgraph train` runs on cached features: from the HDF5 file vs from memory.

Writes a synthetic features file (EfficientNet-Lite0-sized maps by default: 1280 x 7 x 7,
float16) and trains the cma head on it for a few epochs with ``--cache disk`` (one sorted
HDF5 read per batch) and ``--cache ram`` (maps copied into memory once). Reports the epoch time
of each (the median of the epochs after the first), their ratio (target: disk / ram <= 1.5),
the training throughput of the cma head in images/s, and the time of an epoch of batches with no
model (the data path alone, less sensitive to other load on the machine). Prints a table and writes
benchmarks/results/train_speed.json.

    python benchmarks/train_speed.py                      # defaults: 1024 images, 3 epochs, 1 thread
    python benchmarks/train_speed.py --images 4096 --channels 2048 --size 14   # ResNet-101 res5 at 448 px
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "train_speed.json"


def make_features(path: Path, n: int, channels: int, size: int, labels: list[str], seed: int = 0) -> None:
    """A features file of Gaussian maps with a planted per-label prototype (so training is real work)."""
    from mlgraph_cli.core.features.file import FeatureWriter

    rng = np.random.default_rng(seed)
    protos = rng.normal(size=(len(labels), channels)).astype(np.float32)
    bcfg = {"name": "synthetic", "weights": "IMAGENET1K", "image_size": size * 32, "layers": ["last"]}
    writer = FeatureWriter(path, shapes={"features": (channels, size, size)}, plan="bench", label_names=labels,
                           attrs={"backbone": "synthetic", "weights": "IMAGENET1K", "image_size": size * 32,
                                  "layers": ["last"], "backbone_config": bcfg})
    step = 256
    for start in range(0, n, step):
        b = min(step, n - start)
        y = (rng.random((b, len(labels))) < 0.2).astype(np.int8)
        x = rng.normal(scale=0.5, size=(b, channels, size, size)).astype(np.float32)
        for i, k in zip(*np.nonzero(y)):
            h, w = rng.integers(0, size, 2)
            x[i, :, h, w] += 2.0 * protos[k]
        ids = [f"img{start + i:06d}" for i in range(b)]
        writer.append({"features": x}, ids, ids, y, inputs_consumed=b)
    writer.finish()


def run_epochs(features: Path, embeddings: Path, out: Path, cache: str, epochs: int, batch: int,
               workers: int) -> list[float]:
    from mlgraph_cli.core.training.trainer import TrainConfig
    from mlgraph_cli.stages.train import train
    from mlgraph_cli.stages.train.inputs import TrainInputs

    config = TrainConfig(head="cma", epochs=epochs, batch_size=batch, cache=cache, workers=workers, val_fraction=0.0,
                         device="cpu")
    train(TrainInputs(features=features, embeddings=embeddings), config, run_dir=out, force=True)
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return [r["seconds"] for r in rows]  # training time of each epoch, saving excluded


def loader_seconds(features: Path, cache: str, batch: int, repeats: int = 3) -> float:
    """One epoch of batches with no model: the data path alone (median of ``repeats``)."""
    from mlgraph_cli.core.training.batches import FeatureSet, make_loader
    from mlgraph_cli.core.training.distributed import DistInfo
    from mlgraph_cli.core.features.file import open_features

    ff = open_features(features)
    data = FeatureSet(ff, np.arange(len(ff)), ff.labels, in_ram=cache == "ram")
    loader = make_loader(data, batch_size=batch, dist=DistInfo(), shuffle=True, seed=0)
    times = []
    for epoch in range(repeats):
        loader.sampler.sampler.set_epoch(epoch)
        t0 = time.perf_counter()
        for _ in loader:
            pass
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(images: int, channels: int, size: int, num_labels: int, epochs: int, batch: int,
            workers: int) -> dict:
    """Write a synthetic features file, train the cma head from it with ``--cache ram`` then ``disk``.

    Returns {"times": {cache: {"epochs": [s, ...], "median_after_first": s, "data_only": s}},
    "features_mb": MB, "write_seconds": s}. Torch threads are the caller's to set.
    """
    from mlgraph_cli.core.embeddings.files import LabelEmbeddings, write_embeddings

    labels = [f"label{i:02d}" for i in range(num_labels)]
    with tempfile.TemporaryDirectory(prefix="mlgraph-train-speed-") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        make_features(tmp / "features.h5", images, channels, size, labels)
        write_seconds = time.perf_counter() - t0
        vectors = np.random.default_rng(1).normal(size=(num_labels, 300)).astype(np.float32)
        write_embeddings(tmp / "emb.h5", LabelEmbeddings(labels=labels, vectors=vectors, attrs={"method": "random"}))
        size_mb = (tmp / "features.h5").stat().st_size / 2**20
        times = {}
        for cache in ("ram", "disk"):
            secs = run_epochs(tmp / "features.h5", tmp / "emb.h5", tmp / f"run-{cache}", cache, epochs, batch,
                              workers)
            times[cache] = {"epochs": secs, "median_after_first": statistics.median(secs[1:] or secs),
                            "data_only": loader_seconds(tmp / "features.h5", cache, batch)}
    return {"times": times, "features_mb": size_mb, "write_seconds": write_seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--channels", type=int, default=1280)
    parser.add_argument("--size", type=int, default=7)
    parser.add_argument("--labels", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: on a small shared machine, OpenMP threads spinning "
                             "between batches make multi-threaded epoch times swing by 3x run to run)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)

    measured = measure(args.images, args.channels, args.size, args.labels, args.epochs, args.batch_size,
                       args.workers)
    times, size_mb, write_seconds = measured["times"], measured["features_mb"], measured["write_seconds"]
    ram, disk = times["ram"]["median_after_first"], times["disk"]["median_after_first"]
    result = {
        "benchmark": "train_speed",
        "command": " ".join(["python benchmarks/train_speed.py", *(argv if argv is not None else sys.argv[1:])]),
        "setup": {"images": args.images, "feature_shape": [args.channels, args.size, args.size],
                  "labels": args.labels, "head": "cma", "batch_size": args.batch_size, "workers": args.workers,
                  "epochs": args.epochs, "features_mb": round(size_mb, 1), "write_seconds": round(write_seconds, 2),
                  "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
                  "python": platform.python_version(), "torch": torch.__version__, "device": "cpu",
                  "note": "the file was just written, so it is read from the OS page cache"},
        "epoch_seconds": times,
        "disk_over_ram": round(disk / ram, 3),
        "target_disk_over_ram": 1.5,
        "data_only_disk_over_ram": round(times["disk"]["data_only"] / times["ram"]["data_only"], 3),
        "images_per_s": {"ram": round(args.images / ram, 1), "disk": round(args.images / disk, 1)},
    }
    print(f"{'cache':<6} {'epoch s (median)':>17} {'images/s':>10} {'data-only s':>12}   epochs")
    for cache in ("ram", "disk"):
        t = times[cache]
        print(f"{cache:<6} {t['median_after_first']:>17.3f} {args.images / t['median_after_first']:>10.1f} "
              f"{t['data_only']:>12.3f}   " + ", ".join(f"{s:.2f}" for s in t["epochs"]))
    verdict = "meets" if result["disk_over_ram"] <= 1.5 else "misses"
    print(f"disk / ram = {result['disk_over_ram']:.2f} ({verdict} the <= 1.5 target); "
          f"{args.images} images of {args.channels}x{args.size}x{args.size}, cma head, batch {args.batch_size}, "
          f"{torch.get_num_threads()} torch threads")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"-> {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
