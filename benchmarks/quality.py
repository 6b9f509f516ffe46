"""Does the method work? Test mAP / CF1 / OF1 of every head on fashion-scenes, over several seeds.

The protocol (docs/benchmarks-quality.md): fashion-scenes built from the full Debian
Fashion-MNIST set (train / val / test scenes), EfficientNet-Lite0 maps at 224 px (`head`,
1280 x 7 x 7, plus `stage5`, 112 x 14 x 14, for MS-CMA), the label graph of the training
annotations, and seven heads trained with the same schedule and budget:

    gap, gmp, mlgcn (GloVe inputs), cma + one-hot / word vectors / ASGE, ms-cma + ASGE

Each run keeps the epoch with the best validation mAP (the run's ``best`` checkpoint) and is
scored once on the test split. The work folder (default /tmp/mlgraph-bench, outside the repo)
caches the dataset, the features, the embeddings and every finished run, so an interrupted
benchmark picks up where it stopped and a second call only re-prints the table. The dataset
sizes (--train, --val, --test) only apply when the work folder holds no dataset yet: use
another --work for other sizes.

    python benchmarks/quality.py                               # the full protocol (~2 h on 2 busy cores)
    python benchmarks/quality.py --configs gap,cma-asge --seeds 0 --tag quick
    python benchmarks/quality.py --configs cma-asge --head-options '{"cma": {"gap_branch": false}}' --tag no-gap

``--tag`` names the result file (benchmarks/results/quality-<tag>.json) and the run folders, so
ablations never overwrite the main table; only the untagged run rewrites the docs page.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's mlgraph_cli, whatever the environment installed
RESULTS = ROOT / "benchmarks" / "results"
DOC = ROOT / "docs" / "benchmarks-quality.md"
GLOVE = ROOT / "mlgraph_cli" / "data" / "vectors" / "glove-6b-50d-fashion.txt"
NOTES_MARK = "<!-- hand-written notes below: kept when benchmarks/quality.py rewrites this page -->"

# name -> (head, label embeddings it reads). ML-GCN feeds the GloVe vectors of the labels
# through its GCN, as in Chen et al. (CVPR 2019).
CONFIGS: dict[str, tuple[str, str | None]] = {
    "gap": ("gap", None),
    "gmp": ("gmp", None),
    "mlgcn": ("mlgcn", "word"),
    "cma-onehot": ("cma", "onehot"),
    "cma-word": ("cma", "word"),
    "cma-asge": ("cma", "asge"),
    "ms-cma-asge": ("ms-cma", "asge"),
}
BASELINES = ("gap", "gmp", "mlgcn")
# EfficientNet-Lite0's last stage at stride 16 and its final map at stride 32: the analogue of
# the paper's res4 + res5 (docs/extract.md, Layers). `head` is the deeper one, so `features` is
# the same map the one-stage heads use.
LAYERS = ("stage5", "head")


def mlgraph(*args: str, cwd: Path) -> None:
    """Run this checkout's CLI (the same commands a user types), failing loudly."""
    cmd = [sys.executable, "-m", "mlgraph_cli", *args]
    print("$ mlgraph " + " ".join(args), flush=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    subprocess.run(cmd, cwd=cwd, check=True, env=env)


# ---------------------------------------------------------------------------------------------
# Data: dataset, graph, features (once per work folder)

def prepare_data(args: argparse.Namespace) -> Path:
    data = Path(args.work) / "fashion"
    if not (data / "mlgraph.toml").exists():
        mlgraph("make-dataset", "fashion-scenes", str(data), "--train", str(args.train), "--val", str(args.val),
                "--test", str(args.test), "--seed", "0", "--source", args.source, cwd=ROOT)
    if not (data / "artifacts" / "graph.json").exists():
        mlgraph("build-graph", cwd=data)
    layer_args = [a for layer in LAYERS for a in ("--layer", layer)]
    splits = [("train", "features"), ("val", "val-features")] + ([] if args.val_only else [("test", "test-features")])
    for split, name in splits:
        if not (data / "artifacts" / f"{name}.h5").exists():  # extract resumes a partial file itself
            mlgraph("extract", "--split", split, *layer_args, "-q", cwd=data)
    return data


def embeddings_file(data: Path, kind: str, seed: int, args: argparse.Namespace) -> Path:
    """Write (once) the label embeddings of ``kind`` through the library (core/embeddings/).

    ASGE is fitted per seed (its MLP starts from the seed), so its variance is in the spread.
    """
    from mlgraph_cli.core.io.artifacts import provenance
    from mlgraph_cli.core.embeddings.files import LabelEmbeddings, write_embeddings
    from mlgraph_cli.core.embeddings.asge import asge_embeddings
    from mlgraph_cli.core.embeddings.baselines import onehot_embeddings
    from mlgraph_cli.core.graph.adjacency import adjacency
    from mlgraph_cli.core.graph.files import read_graph
    from mlgraph_cli.core.embeddings.wordvectors import label_vectors, load_word_vectors

    graph = read_graph(data / "artifacts" / "graph.json")
    labels = list(graph.labels)
    if kind == "asge":
        name = f"asge-{args.asge_adjacency}-d{args.asge_dim}-s{seed}.h5"
    else:
        name = f"{kind}.h5"
    path = Path(args.work) / "embeddings" / name
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    attrs: dict[str, Any] = {"method": kind}
    if kind == "onehot":
        vectors = onehot_embeddings(len(labels))
    else:
        words = label_vectors(load_word_vectors(GLOVE), labels, source=GLOVE).vectors  # (C, 50)
        vectors = words
        if kind == "asge":
            target = adjacency(graph, args.asge_adjacency)  # (C, C)
            vectors, info = asge_embeddings(target, init=words, dim=args.asge_dim, seed=seed)
            attrs.update(init=str(GLOVE.name), seed=seed, adjacency={"kind": args.asge_adjacency, "params": {}},
                         asge=info)
    attrs["provenance"] = provenance("benchmarks/quality.py", {"kind": kind, "seed": seed})
    write_embeddings(path, LabelEmbeddings(labels=labels, vectors=vectors, attrs=attrs))
    return path


# ---------------------------------------------------------------------------------------------
# One run: train (best epoch on val), evaluate on test

def train_config(head: str, seed: int, args: argparse.Namespace):
    from mlgraph_cli.core.training.trainer import TrainConfig

    options = dict(args.head_options.get(head, {}))
    return TrainConfig(head=head, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                       weight_decay=args.weight_decay, schedule="cosine", warmup_epochs=args.warmup, seed=seed,
                       cache="ram", workers=0, device="cpu", head_options=options)


def head_defaults(head: str) -> dict[str, Any]:
    """The keyword defaults of ``head``'s class: a changed model default invalidates cached runs."""
    import inspect

    from mlgraph_cli.core.models import HEADS

    cls = HEADS[head].head_class
    if cls.__name__ == "MultiScaleCMA":  # its options are its branches' (CrossModalityAttention)
        from mlgraph_cli.core.models import CrossModalityAttention as cls
    params = inspect.signature(cls.__init__).parameters.values()
    return {p.name: p.default for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}


def run_key(cfg, emb_kind: str | None, emb: Path | None, args: argparse.Namespace) -> str:
    """What a cached run was made with: its training config, embeddings and the head's defaults."""
    import dataclasses

    key = {"config": dataclasses.asdict(cfg), "embeddings": emb.name if emb else None,
           "head_defaults": head_defaults(cfg.head)}
    if emb_kind == "asge":
        key["asge"] = {"dim": args.asge_dim, "adjacency": args.asge_adjacency}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]


def run_one(data: Path, config_name: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """Train and test one (config, seed); cached in the run folder under a key of every setting."""
    from mlgraph_cli.stages.evaluate import evaluate
    from mlgraph_cli.stages.train import train
    from mlgraph_cli.stages.train.inputs import TrainInputs

    head, emb_kind = CONFIGS[config_name]
    cfg = train_config(head, seed, args)
    emb = embeddings_file(data, emb_kind, seed, args) if emb_kind else None
    art = data / "artifacts"
    digest = run_key(cfg, emb_kind, emb, args)
    run_dir = Path(args.work) / "runs" / (args.tag or "main") / f"{config_name}-s{seed}"
    done = run_dir / "quality-result.json"
    if done.exists():
        cached = json.loads(done.read_text())
        if cached.get("key") == digest and (cached["test"] is not None or args.val_only):
            return cached
    t0 = time.perf_counter()
    result = train(TrainInputs(features=art / "features.h5", val_features=art / "val-features.h5",
                               embeddings=emb, graph=art / "graph.json" if head == "mlgcn" else None),
                   cfg, run_dir=run_dir, force=True)
    seconds = time.perf_counter() - t0
    metrics = None
    if not args.val_only:
        metrics = evaluate(run_dir, features=art / "test-features.h5", checkpoint="best", device="cpu").metrics
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    out = {"config": config_name, "head": head, "embeddings": emb_kind, "seed": seed, "key": digest,
           "best_epoch": result.best_epoch, "val_mAP": result.best_map,
           "test": {k: metrics[k] for k in ("mAP", "CF1", "OF1", "CP", "CR", "OP", "OR")} if metrics else None,
           "train_seconds": round(seconds, 1), "val_curve": [r.get("val_mAP") for r in rows]}
    done.write_text(json.dumps(out, indent=1) + "\n")
    return out


# ---------------------------------------------------------------------------------------------
# Report

def summarise(runs: list[dict[str, Any]], configs: list[str]) -> list[dict[str, Any]]:
    rows = []
    for name in configs:
        mine = [r for r in runs if r["config"] == name]
        if not mine:
            continue
        row: dict[str, Any] = {"config": name, "seeds": len(mine)}
        for metric in ("mAP", "CF1", "OF1"):
            if all(r["test"] for r in mine):
                values = [r["test"][metric] for r in mine]
                row[metric] = statistics.fmean(values)
                row[metric + "_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
        vals = [r["val_mAP"] for r in mine]
        row["val_mAP"] = statistics.fmean(vals)
        row["val_mAP_std"] = statistics.stdev(vals) if len(vals) > 1 else 0.0
        row["best_epoch"] = [r["best_epoch"] for r in mine]
        row["train_seconds"] = statistics.fmean(r["train_seconds"] for r in mine)
        rows.append(row)
    return rows


def markdown_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| config | head | embeddings | test mAP | test CF1 | test OF1 | val mAP | best epochs | s / run |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        head, emb = CONFIGS[r["config"]]
        cells = [f"{r[m]:.2f} ± {r[m + '_std']:.2f}" if m in r else "-" for m in ("mAP", "CF1", "OF1")]
        lines.append(f"| {r['config']} | {head} | {emb or '-'} | " + " | ".join(cells)
                     + f" | {r['val_mAP']:.2f} ± {r['val_mAP_std']:.2f} | {', '.join(map(str, r['best_epoch']))}"
                     f" | {r['train_seconds']:.0f} |")
    return "\n".join(lines)


def verdict(rows: list[dict[str, Any]]) -> str | None:
    """The claim of the task: CMA + ASGE >= best baseline + 1.0 mAP, beyond the seed spread."""
    by = {r["config"]: r for r in rows}
    base = [by[b] for b in BASELINES if b in by]
    if "cma-asge" not in by or not base or "mAP" not in by["cma-asge"]:
        return None
    best = max(base, key=lambda r: r["mAP"])
    ours = by["cma-asge"]
    gap = ours["mAP"] - best["mAP"]
    spread = ours["mAP_std"] + best["mAP_std"]
    ok = gap >= 1.0 and gap > spread
    return (f"cma-asge {ours['mAP']:.2f} vs best baseline {best['config']} {best['mAP']:.2f}: "
            f"{gap:+.2f} mAP (target >= +1.00 and beyond the summed seed std {spread:.2f}): "
            f"{'met' if ok else 'NOT met'}")


def machine() -> dict[str, Any]:
    import torch

    model = platform.processor() or platform.machine()
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return {"cpu": model, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform()}


def write_doc(doc: dict[str, Any], table: str) -> None:
    s, m = doc["settings"], doc["machine"]
    notes = ""
    if DOC.exists() and NOTES_MARK in DOC.read_text():
        notes = DOC.read_text().split(NOTES_MARK, 1)[1]
    text = f"""## Quality: does CMA with ASGE beat the baselines? (fashion-scenes)

Written by `python benchmarks/quality.py` on {doc['date']}; numbers in
`benchmarks/results/quality.json`. Machine: {m['cpu']}, {m['cores']} cores (shared with other jobs),
torch {m['torch']} on the CPU, {m['torch_threads']} threads.

Test-split mAP, CF1 and OF1 (0-100, docs/metrics.md), mean ± sample standard deviation over
seeds {', '.join(map(str, s['seeds']))}; each run is scored at its best validation epoch.

{table}

{doc.get('verdict') or ''}

### Protocol

- Data: `mlgraph make-dataset fashion-scenes fashion --train {s['train']} --val {s['val']} --test {s['test']}
  --seed 0 --source {s['source']}` (all 70,000 Fashion-MNIST photographs; test and validation
  scenes use t10k photographs only), then `mlgraph build-graph` (training annotations).
- Features: `mlgraph extract --split train|val|test --layer stage5 --layer head`:
  EfficientNet-Lite0, packaged ImageNet weights, 224 px, `head` 1280 x 7 x 7 for every head
  and `stage5` 112 x 14 x 14 as the second stage of MS-CMA (the last stride-16 stage, the
  analogue of the paper's res4).
- Embeddings, made with the library (core/embeddings/, core/embeddings/wordvectors.py; `mlgraph embed`
  was not finished when this benchmark was written): one-hot; GloVe 6B 50-d
  (`mlgraph_cli/data/vectors/glove-6b-50d-fashion.txt`, also the GCN input of mlgcn); ASGE with
  `{s['asge_adjacency']}` adjacency, d = {s['asge_dim']}, initialised from those GloVe vectors, fitted per seed.
- Training (`mlgraph train` stage, the same for every head): {s['epochs']} epochs, AdamW, lr {s['lr']},
  weight decay {s['weight_decay']}, batch {s['batch_size']}, cosine schedule to 1% with {s['warmup']} warm-up
  epochs, features in RAM, validation mAP after each epoch, the best epoch kept (`best.safetensors`),
  then `mlgraph evaluate` on the test features. Head options: `{json.dumps(s['head_options'])}`
  (otherwise the defaults of core/models/).
- Run: `{doc['command']}`
"""
    DOC.write_text(text + "\n" + NOTES_MARK + (notes if notes else "\n"))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", default="/tmp/mlgraph-bench", help="cache folder for data, features, runs")
    p.add_argument("--train", type=int, default=4000)
    p.add_argument("--val", type=int, default=1000)
    p.add_argument("--test", type=int, default=2000)
    p.add_argument("--source", default="debian", help="make-dataset --source (debian: all 70,000 photographs)")
    p.add_argument("--configs", default=",".join(CONFIGS), help=f"comma list of {', '.join(CONFIGS)}")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--warmup", type=float, default=0.0)
    p.add_argument("--asge-dim", type=int, default=64)
    p.add_argument("--asge-adjacency", default="cond-mean")
    p.add_argument("--head-options", type=json.loads, default={},
                   help='JSON: head name -> its options, e.g. \'{"cma": {"dropout": 0.0}}\' (default: the heads\' defaults)')
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--tag", default="", help="name of an ablation: results go to quality-<tag>.json")
    p.add_argument("--val-only", action="store_true",
                   help="score on the validation split only (model development: never select on test)")
    p.add_argument("--prepare-only", action="store_true", help="make the data and features, train nothing")
    args = p.parse_args(argv)
    unknown = sorted(set(args.configs.split(",")) - set(CONFIGS))
    if unknown:
        p.error(f"unknown config(s) {', '.join(unknown)}")
    return args


def main(argv: list[str] | None = None) -> int:
    import torch

    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    data = prepare_data(args)
    if args.prepare_only:
        return 0
    configs, seeds = args.configs.split(","), [int(s) for s in args.seeds.split(",")]
    runs = []
    for name in configs:
        for seed in seeds:
            r = run_one(data, name, seed, args)
            runs.append(r)
            test = (f"test mAP {r['test']['mAP']:.2f} CF1 {r['test']['CF1']:.2f} OF1 {r['test']['OF1']:.2f} "
                    if r["test"] else "")
            print(f"{name:12s} seed {seed}: {test}(val mAP {r['val_mAP']:.2f} at epoch {r['best_epoch']}, "
                  f"{r['train_seconds']:.0f} s)", flush=True)
    rows = summarise(runs, configs)
    table = markdown_table(rows)
    print("\n" + table)
    v = verdict(rows)
    if v:
        print("\n" + v)
    settings = {k: getattr(args, k) for k in ("train", "val", "test", "source", "epochs", "lr", "weight_decay",
                                              "batch_size", "warmup", "asge_dim", "asge_adjacency", "head_options",
                                              "threads")}
    settings["seeds"] = seeds
    settings["layers"] = list(LAYERS)
    doc = {"benchmark": "quality", "date": dt.date.today().isoformat(), "machine": machine(), "settings": settings,
           "command": "python benchmarks/quality.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "summary": rows, "verdict": v, "runs": runs}
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / (f"quality-{args.tag}.json" if args.tag else "quality.json")
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"\nwrote {out.relative_to(ROOT)}")
    if not args.tag:
        write_doc(doc, table)
        print(f"wrote {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
