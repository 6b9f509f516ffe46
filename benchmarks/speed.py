"""The speed targets of mlgraph, measured in one run: one table (value, target, pass/fail) and one JSON.

Each section reuses the measuring functions of a single-purpose benchmark script:

  extract      whole processes: `mlgraph extract` (start-up, decode, forward, float16 HDF5 write) over a
               plain script doing the same decode and forward with nothing written (plain_extract.py);
               EfficientNet-Lite0, 224 px, 256 fashion-scenes (extract_speed.py). The two alternate, the
               order inside each pair alternates too, so a drift in the machine's load hits both sides;
               the value is the median of the per-pair ratios. Target <= 1.1.
  train        epoch time of the cma head on cached features, read from HDF5 (--cache disk) over held in
               memory (--cache ram), and the head's images/s on the CPU, 1 torch thread (train_speed.py).
               Target <= 1.5.
  build-graph  the build-graph stage (detect, read, count, write) on 1,000,000 synthetic CSV annotations,
               5 labels each over 10,000 labels (build_graph_speed.py). Target < 10 s.
  asge         the embed stage (ASGE, one-hot inputs, 500 steps, 300-d, 1 thread) on planted-cluster graphs
               of 80, 1,000 and 4,000 labels (embed_quality.py's speed()). Targets: 80 < 10 s, 4,000 < 120 s.
  cold-start   fresh processes: `python -c "import torch"` (the floor of anything that runs a model),
               `mlgraph --help` (must not import torch, so it must beat that floor) and `mlgraph predict`
               on one image with a tiny run trained here on a handful of extracted features (the time a
               user waits for a first prediction). The three commands run round-robin, median of each.

Wall-clock times on a shared machine depend on what else runs there: the load average is recorded
before and after each section, and CPU seconds are given where the work is single-threaded.

    .venv/bin/python benchmarks/speed.py            # everything at full size (15-30 min on 2 busy cores)
    .venv/bin/python benchmarks/speed.py --quick    # small sizes: a smoke run of every section (~2 min)

Prints a markdown table and writes benchmarks/results/speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE)]

import build_graph_speed  # noqa: E402
import embed_quality  # noqa: E402
import extract_speed  # noqa: E402
import train_speed  # noqa: E402

SECTIONS = ("extract", "train", "build-graph", "asge", "cold-start")
MLGRAPH = Path(sys.executable).parent / "mlgraph"
RESULTS = HERE / "results" / "speed.json"


def load() -> float:
    return round(os.getloadavg()[0], 2)


def row(name: str, value: float, unit: str, target: float | None = None, op: str = "<=", note: str = "") -> dict:
    """One line of the table; ``target`` None marks a figure reported without a target."""
    passed = None if target is None else bool(value <= target if op == "<=" else value < target)
    return {"measure": name, "value": round(float(value), 3), "unit": unit, "target": target, "op": op,
            "pass": passed, "note": note}


def extract_section(args, tmp: Path) -> tuple[list[dict], dict]:
    """Whole processes: `mlgraph extract` against benchmarks/plain_extract.py, alternated (extract_speed.py)."""
    before = load()
    images_dir = extract_speed.make_scenes(tmp / "scenes", args.images)
    m = extract_speed.whole_process(images_dir, tmp / "features.h5", args.repeats)
    spread = ", ".join(f"{p['ratio']:.2f}" for p in m["pairs"])
    rows = [row(f"extract: whole process / plain script ({args.images} scenes, Lite0 224 px)", m["median_ratio"],
                "x", 1.1, note=f"median of {len(m['pairs'])} alternated pairs ({spread}); load {before} -> {load()}"),
            row("extract: whole-process images/s", args.images / m["median_mlgraph_s"], "img/s",
                note=f"plain script {args.images / m['median_plain_s']:.1f} img/s")]
    return rows, dict(m, images=args.images, load_before=before, load_after=load())


def train_section(args, tmp: Path) -> tuple[list[dict], dict]:
    import torch

    before, threads = load(), torch.get_num_threads()
    torch.set_num_threads(1)  # as train_speed.py: OpenMP spin-waits make 2-thread epochs swing on 2 busy cores
    try:
        m = train_speed.measure(args.train_images, 1280, 7, 20, args.epochs, 32, 0)
    finally:
        torch.set_num_threads(threads)
    ram, disk = (m["times"][c]["median_after_first"] for c in ("ram", "disk"))
    data_ratio = m["times"]["disk"]["data_only"] / m["times"]["ram"]["data_only"]
    detail = {"images": args.train_images, "feature_shape": [1280, 7, 7], "labels": 20, "batch_size": 32,
              "epochs": args.epochs, "torch_threads": 1, "features_mb": round(m["features_mb"], 1),
              "epoch_seconds": m["times"], "load_before": before, "load_after": load(),
              "note": "the file was just written, so it is read from the OS page cache"}
    shape = f"{args.train_images} x 1280x7x7"
    rows = [row(f"train: epoch time disk / ram ({shape}, cma head)", disk / ram, "x", 1.5,
                note=f"ram {ram:.2f} s, disk {disk:.2f} s per epoch; data path alone {data_ratio:.2f}x; "
                     f"load {before} -> {load()}"),
            row("train: cma head images/s on the CPU (ram, 1 thread)", args.train_images / ram, "img/s",
                note=f"disk: {args.train_images / disk:.0f} img/s")]
    return rows, detail


def build_graph_section(args, tmp: Path) -> tuple[list[dict], dict]:
    before = load()
    names = [f"label_{i:05d}" for i in range(10_000)]
    y = build_graph_speed.synthetic_labels(args.graph_images, len(names), 5, 400, 3, seed=0)
    files = build_graph_speed.write_files(y, names, tmp, ("csv",))
    del y
    r = build_graph_speed.bench(files["csv"], "csv", tmp, repeat=1)
    detail = dict(r, load_before=before, load_after=load())
    rows = [row(f"build-graph: {args.graph_images:,} images x 5 labels over 10,000 (CSV), stage wall", r["stage"],
                "s", 10.0, "<", note=f"CPU {r['stage_cpu']:.1f} s; read {r['read']:.1f} + count {r['count']:.1f} "
                                    f"+ write {r['write']:.1f} s; CLI process {r['cli']:.1f} s; load {before} -> "
                                    f"{load()}")]
    return rows, detail


def asge_section(args, tmp: Path) -> tuple[list[dict], dict]:
    before = load()
    results = embed_quality.speed(args.asge_sizes)
    targets = {80: 10.0, 4000: 120.0}
    rows = [row(f"embed (ASGE): {r['labels']:,} labels, stage wall", r["stage_seconds"], "s",
                targets.get(r["labels"]), "<",
                note=f"fit alone {r['fit_seconds']:.1f} s wall, {r['fit_cpu_seconds']:.1f} s CPU; "
                     f"load {r['load_average']:.1f}") for r in results]
    return rows, {"sizes": results, "load_before": before, "load_after": load()}


def tiny_run(tmp: Path) -> Path:
    """Extract a handful of labelled JPEGs with the real Lite0 backbone and train one epoch on them."""
    from mlgraph_cli.core.embeddings.files import LabelEmbeddings, write_embeddings
    from mlgraph_cli.core.training.trainer import TrainConfig
    from mlgraph_cli.stages.extract import ExtractConfig, extract
    from mlgraph_cli.stages.train import train
    from mlgraph_cli.stages.train.inputs import TrainInputs

    photos, labels = tmp / "tiny", ["cat", "dog", "sky", "tree"]
    extract_speed.make_photos(photos, 8, seed=1)
    rows = [f"photo{i:04d}.jpg,{labels[i % 4]};{labels[(i + 1) % 4]}" for i in range(8)]
    (tmp / "tiny.csv").write_text("path,labels\n" + "\n".join(rows) + "\n")
    extract([photos], tmp / "tiny.h5", ExtractConfig(workers=0, device="cpu"), annotations=tmp / "tiny.csv")
    vectors = np.random.default_rng(0).normal(size=(len(labels), 16)).astype(np.float32)
    write_embeddings(tmp / "tiny-emb.h5", LabelEmbeddings(labels=labels, vectors=vectors, attrs={"method": "random"}))
    train(TrainInputs(features=tmp / "tiny.h5", embeddings=tmp / "tiny-emb.h5"),
          TrainConfig(epochs=1, batch_size=4, val_fraction=0.0, device="cpu"), run_dir=tmp / "run", force=True)
    return tmp / "run"


def timed_process(cmd: list[str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child) of one fresh process; fails loudly if it fails."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {done.returncode}: {done.stderr.strip()[-500:]}")
    return wall, (after.ru_utime + after.ru_stime) - (usage.ru_utime + usage.ru_stime)


def cold_start_section(args, tmp: Path) -> tuple[list[dict], dict]:
    before = load()
    run = tiny_run(tmp)
    image = tmp / "tiny" / "photo0000.jpg"
    commands = {
        "import torch": [sys.executable, "-c", "import torch"],
        "mlgraph --help": [str(MLGRAPH), "--help"],
        "mlgraph predict (1 image)": [str(MLGRAPH), "predict", str(image), "--model", str(run), "--format",
                                      "jsonl", "-q"],
    }
    # The same command with one OpenMP thread: on a busy 2-core machine the threads of a
    # batch-of-one forward pass spin-wait for each other (see docs/benchmarks-speed.md).
    commands["mlgraph predict (1 image, OMP_NUM_THREADS=1)"] = ["env", "OMP_NUM_THREADS=1",
                                                                *commands["mlgraph predict (1 image)"]]
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in commands}
    for _ in range(args.cold_repeats):  # round-robin: each command sees the same spread of load
        for name, cmd in commands.items():
            times[name].append(timed_process(cmd, tmp))  # cwd tmp: no project folder is picked up
    med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in times.items()}
    floor = med["import torch"][0]
    detail = {"runs": args.cold_repeats, "seconds": {k: [list(t) for t in v] for k, v in times.items()},
              "median_wall_cpu": med, "load_before": before, "load_after": load()}
    n, one = args.cold_repeats, "mlgraph predict (1 image, OMP_NUM_THREADS=1)"
    rows = [row('cold start: python -c "import torch" (floor)', floor, "s",
                note=f"median of {n}; CPU {med['import torch'][1]:.2f} s"),
            row("cold start: mlgraph --help (target: under the torch floor)", med["mlgraph --help"][0], "s",
                round(floor, 3), "<", note=f"median of {n}; CPU {med['mlgraph --help'][1]:.2f} s"),
            row("cold start: mlgraph predict, 1 image (Lite0 cma run)", med["mlgraph predict (1 image)"][0], "s",
                note=f"median of {n}; {med['mlgraph predict (1 image)'][0] - floor:+.2f} s over the floor; "
                     f"CPU {med['mlgraph predict (1 image)'][1]:.2f} s"),
            row("cold start: the same with OMP_NUM_THREADS=1", med[one][0], "s",
                note=f"median of {n}; {med[one][0] - floor:+.2f} s over the floor; CPU {med[one][1]:.2f} s")]
    return rows, detail


def machine() -> dict:
    import torch

    def lscpu(key: str) -> str | None:
        try:
            text = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        except OSError:
            return None
        return next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith(key + ":")), None)

    mem = next((line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal:")), None) if Path("/proc/meminfo").is_file() else None
    return {"cpu_model": lscpu("Model name") or platform.processor(), "cpus": os.cpu_count(),
            "cpu_family_model": f"{lscpu('CPU family')}/{lscpu('Model')}",
            "threads_per_core": lscpu("Thread(s) per core"),
            "ram_gib": round(int(mem) / 2**20, 1) if mem else None, "torch": torch.__version__,
            "torch_threads_default": torch.get_num_threads(), "python": platform.python_version(),
            "platform": platform.platform(), "date": time.strftime("%Y-%m-%d %H:%M:%S %z")}


def table(rows: list[dict]) -> str:
    lines = ["| measure | value | target | result | note |", "|---|---:|---:|---|---|"]
    for r in rows:
        target = "—" if r["target"] is None else f"{r['op']} {r['target']:g} {r['unit']}"
        verdict = {True: "pass", False: "**fail**", None: "—"}[r["pass"]]
        lines.append(f"| {r['measure']} | {r['value']:.2f} {r['unit']} | {target} | {verdict} | {r['note']} |")
    return "\n".join(lines)


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes for a smoke run (sizes given explicitly win)")
    ap.add_argument("--images", type=int, help="extract: scenes (default 256; quick 32)")
    ap.add_argument("--repeats", type=int, help="extract: alternated whole-process pairs (default 5; quick 2)")
    ap.add_argument("--train-images", type=int, help="train: cached feature maps (default 1024; quick 128)")
    ap.add_argument("--epochs", type=int, help="train: epochs per cache mode, first one not counted (default 3)")
    ap.add_argument("--graph-images", type=int, help="build-graph: annotated images (default 1,000,000; quick 20,000)")
    ap.add_argument("--asge-sizes", help="embed: label counts (default 80,1000,4000; quick 80,200)")
    ap.add_argument("--cold-repeats", type=int, help="cold start: runs of each command (default 5; quick 2)")
    ap.add_argument("--only", default=",".join(SECTIONS), help=f"sections to run, of {','.join(SECTIONS)}")
    ap.add_argument("--json", type=Path, help="results file (default benchmarks/results/speed.json; with --quick a "
                                               "file in the temp folder, so a smoke run never replaces the results)")
    args = ap.parse_args(argv)
    defaults = dict(images=(256, 32), repeats=(5, 2), train_images=(1024, 128), epochs=(3, 2),
                    graph_images=(1_000_000, 20_000), asge_sizes=("80,1000,4000", "80,200"), cold_repeats=(5, 2))
    for key, (full, quick) in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, quick if args.quick else full)
    if args.json is None:
        args.json = Path(tempfile.gettempdir()) / "mlgraph-speed-quick.json" if args.quick else RESULTS
    args.asge_sizes = [int(x) for x in str(args.asge_sizes).split(",") if x]
    args.only = [s for s in args.only.split(",") if s]
    unknown = set(args.only) - set(SECTIONS)
    if unknown:
        ap.error(f"unknown section(s) {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    command = " ".join(["python benchmarks/speed.py", *(argv if argv is not None else sys.argv[1:])])
    runners = {"extract": extract_section, "train": train_section, "build-graph": build_graph_section,
               "asge": asge_section, "cold-start": cold_start_section}
    report = {"benchmark": "speed", "command": command, "machine": machine(), "load_start": load(),
              "rows": [], "sections": {}}
    started = time.perf_counter()
    for name in args.only:
        print(f"[{name}] load {load():.2f}", flush=True)
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix=f"mlgraph-speed-{name}-") as tmp:
            rows, detail = runners[name](args, Path(tmp))
        detail["section_seconds"] = round(time.perf_counter() - t0, 1)
        report["rows"] += rows
        report["sections"][name] = detail
        print(table(rows).split("\n", 2)[2], flush=True)
    report["load_end"], report["total_seconds"] = load(), round(time.perf_counter() - started, 1)
    m = report["machine"]
    print(f"\n{m['cpu_model']}, {m['cpus']} CPUs, {m['ram_gib']} GiB, torch {m['torch']}; load average "
          f"{report['load_start']} at start, {report['load_end']} at end; {report['total_seconds']:.0f} s in all\n")
    print(table(report["rows"]))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    tmp_json = args.json.with_suffix(".json.tmp")
    tmp_json.write_text(json.dumps(report, indent=2, default=float) + "\n")
    tmp_json.replace(args.json)  # never a half-written results file
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
