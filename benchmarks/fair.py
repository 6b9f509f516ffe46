"""A fair table: every head on the same maps, over data seeds x training seeds (docs/benchmarks.md).

fashion-scenes projects made with `mlgraph make-dataset fashion-scenes --seed 100 + d` (one per
data seed d), `mlgraph build-graph`, and one `mlgraph extract --layer stage5 --layer head` per
split: `head` (1280 x 7 x 7) is the map every one-map head reads, `stage5` (112 x 14 x 14) the
finer one. The baselines see the finer map too (a copy of the file with `stage5` as its map), so
MS-CMA's advantage of attention over 14 x 14 is not confused with seeing a map the others never
get. Label embeddings come from the embed stage with the settings of a plain `mlgraph embed`
(ASGE, cond-mean, 300-d, one-hot inputs, seeded with the training seed), or the variant named.

Every run trains through `stages.train.train` (the code of `mlgraph train`, its defaults), keeps its
best validation epoch, and is scored on test once (`stages.evaluate`); choices are made on the
validation column. One JSON per run under --work, so an interrupted study keeps what it did.

    python benchmarks/fair.py --prepare-only                  # data, graphs, features, stage5 copies
    python benchmarks/fair.py --configs gap@head,cma@head --data-seeds 0 --seeds 0
    python benchmarks/fair.py --report                        # the table from the runs done so far
    python benchmarks/fair.py --work /tmp/fair3k --train 3000 --val 500 --test 1500 --data-seeds 0 \
        --configs gap@head,cma-probe-lam3@head -o benchmarks/results/fair-3000.json   # more images
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from studykit import RARE, RARE_IMAGES, RESULTS, embeddings, kept, prepare, project, train_and_score

NOGAP = {"gap_branch": False}

# name -> (head, map, embeddings, head options). map: "head" (7 x 7), "stage5" (14 x 14) or
# "both" (ms-cma). embeddings: "asge" (ASGE fitted to A, --self-weight 0: the plain `mlgraph embed` until
# 2026-11-30), "asge-lam<L>" (--self-weight L; lam3 is the plain `mlgraph embed` since),
# "onehot", "word" (GloVe, the GCN input of mlgcn as in Chen et al.), or None.
CONFIGS: dict[str, tuple[str, str, str | None, dict[str, Any]]] = {
    "gap@head": ("gap", "head", None, {}),
    "gap@stage5": ("gap", "stage5", None, {}),
    "gmp@head": ("gmp", "head", None, {}),
    "gmp@stage5": ("gmp", "stage5", None, {}),
    "mlgcn@head": ("mlgcn", "head", "word", {}),
    "mlgcn@stage5": ("mlgcn", "stage5", "word", {}),
    "cma@head": ("cma", "head", "asge", {}),
    "cma-nogap@head": ("cma", "head", "asge", NOGAP),
    "cma-onehot@head": ("cma", "head", "onehot", {}),
    "cma-onehot-nogap@head": ("cma", "head", "onehot", NOGAP),
    "cma-lam1@head": ("cma", "head", "asge-lam1", {}),
    "cma-lam3@head": ("cma", "head", "asge-lam3", {}),
    "cma-nogap@stage5": ("cma", "stage5", "asge", NOGAP),
    # (the rows of the options sharpen and tune_embeddings / anchor, screened in docs/benchmarks.md
    # and not kept, went with the options)
    "ms-cma": ("ms-cma", "both", "asge", {}),
    "ms-cma-nogap": ("ms-cma", "both", "asge", NOGAP),
    "ms-cma-onehot-nogap": ("ms-cma", "both", "onehot", NOGAP),
}
# Rows that also change a training setting of `mlgraph train`. Every other row trains with
# probe_epochs = 0: they were measured before the probe start became the default of cma and
# ms-cma (a row's name fixes what it ran, so an interrupted study resumes the same runs).
TRAINING: dict[str, dict[str, Any]] = {
    "cma-wd0.05@head": {"weight_decay": 0.05},
    "cma-lr3e-4@head": {"lr": 3e-4},
    "cma-probe@head": {"probe_epochs": 20},
    "cma-probe-onehot@head": {"probe_epochs": 20},
    "cma-probe-lam1@head": {"probe_epochs": 20},
    "cma-probe-lam3@head": {"probe_epochs": 20},
    "ms-cma-probe": {"probe_epochs": 20},
    "ms-cma-probe-lam3": {"probe_epochs": 20},
    "ms-cma-probe-onehot": {"probe_epochs": 20},
    "cma-probe-lam3-nogap@head": {"probe_epochs": 20},
    "ms-cma-probe-lam3-nogap": {"probe_epochs": 20},
}
CONFIGS["cma-probe-lam3-nogap@head"] = ("cma", "head", "asge-lam3", NOGAP)
CONFIGS["ms-cma-probe-lam3-nogap"] = ("ms-cma", "both", "asge-lam3", NOGAP)
CONFIGS["ms-cma-probe"] = CONFIGS["ms-cma"]
CONFIGS["ms-cma-probe-lam3"] = ("ms-cma", "both", "asge-lam3", {})
CONFIGS["ms-cma-probe-onehot"] = ("ms-cma", "both", "onehot", {})
CONFIGS["cma-probe-lam1@head"] = CONFIGS["cma-lam1@head"]
CONFIGS["cma-probe-lam3@head"] = CONFIGS["cma-lam3@head"]
CONFIGS["cma-probe@head"] = CONFIGS["cma@head"]
CONFIGS["cma-probe-onehot@head"] = CONFIGS["cma-onehot@head"]
CONFIGS["cma-wd0.05@head"] = CONFIGS["cma@head"]
CONFIGS["cma-lr3e-4@head"] = CONFIGS["cma@head"]
CONFIGS["cma-do0.5@head"] = ("cma", "head", "asge", {"dropout": 0.5})
# The low-data regime: the same heads trained on a subset where RARE labels keep RARE_IMAGES
# training images each (validation and test unchanged; studykit.rare_subset); their test AP is
# reported apart.
for _name in ("gap@head", "cma@head", "cma-onehot@head", "cma-lam1@head", "cma-lam3@head", "cma-probe@head",
              "cma-probe-onehot@head", "cma-probe-lam3@head"):
    CONFIGS[_name + "+rare"] = CONFIGS[_name]


def run_one(work: Path, name: str, data_seed: int, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    from mlgraph_cli.core.training.trainer import TrainConfig
    from mlgraph_cli.stages.train.inputs import TrainInputs

    head, layer, emb_kind, options = CONFIGS[name]
    art = project(work, data_seed) / "artifacts"
    prefix = "stage5-" if layer == "stage5" else ""

    def run() -> dict[str, Any]:
        train_file = art / ("rare-features.h5" if name.endswith("+rare") else f"{prefix}features.h5")
        emb = embeddings(art.parent, emb_kind, seed, "benchmarks/fair.py") if emb_kind else None
        cfg = TrainConfig(head=head, seed=seed, cache="ram", workers=0, device="cpu", head_options=dict(options),
                          **{"probe_epochs": 0, **TRAINING.get(name.removesuffix("+rare"), {})})
        inputs = TrainInputs(features=train_file, val_features=art / f"{prefix}val-features.h5", embeddings=emb,
                             graph=art / "graph.json" if head == "mlgcn" else None)
        scored = train_and_score(work / "runs" / f"{name}-d{data_seed}-s{seed}", inputs, cfg,
                                 art / f"{prefix}test-features.h5")
        return {"config": name, "data_seed": data_seed, "seed": seed, **scored}

    return kept(work / "results" / f"{name}-d{data_seed}-s{seed}.json", run)


def summary(work: Path) -> list[dict[str, Any]]:
    runs = [json.loads(p.read_text()) for p in sorted((work / "results").glob("*.json"))]
    rows = []
    for name in CONFIGS:
        mine = [r for r in runs if r["config"] == name]
        if not mine:
            continue
        row: dict[str, Any] = {"config": name, "runs": len(mine),
                               "data_seeds": sorted({r["data_seed"] for r in mine})}
        for key, values in (("val", [r["val_mAP"] for r in mine]), ("mAP", [r["test"]["mAP"] for r in mine]),
                            ("CF1", [r["test"]["CF1"] for r in mine]), ("OF1", [r["test"]["OF1"] for r in mine])):
            row[key] = statistics.fmean(values)
            row[key + "_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
        row["seconds"] = statistics.fmean(r["train_seconds"] for r in mine)
        rows.append(row)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| config | head | map | embeddings | GAP branch | probe start | val mAP | test mAP | test CF1 | test OF1 "
             "| runs | s / run |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        head, layer, emb, options = CONFIGS[r["config"]]
        attends = head in ("cma", "ms-cma")
        branch = "-" if not attends else ("no" if options.get("gap_branch") is False else "yes")
        probe = TRAINING.get(r["config"].removesuffix("+rare"), {}).get("probe_epochs", 0)
        probe = "-" if not attends else (f"{probe} epochs" if probe else "no")
        cells = " | ".join(f"{r[k]:.2f} ± {r[k + '_std']:.2f}" for k in ("val", "mAP", "CF1", "OF1"))
        where = {"head": "7 x 7", "stage5": "14 x 14", "both": "both"}[layer]
        lines.append(f"| {r['config']} | {head} | {where} | {emb or '-'} | {branch} | {probe} | {cells} | {r['runs']} "
                     f"| {r['seconds']:.0f} |")
    return "\n".join(lines)


def rare_table(work: Path) -> str:
    """Test AP of the RARE labels and of the others, per config trained on the rare subset (and the
    same config on the full training set, where RARE labels have their usual 100+ images)."""
    runs = [json.loads(p.read_text()) for p in sorted((work / "results").glob("*.json"))]
    lines = ["| config | training set | AP of the rare labels | AP of the other labels | mAP | runs |",
             "|---|---|---|---|---|---|"]
    for name in [n for n in CONFIGS if n.endswith("+rare")]:
        for full in (name, name.removesuffix("+rare")):
            rare_runs = {(r["data_seed"], r["seed"]) for r in runs if r["config"] == name}
            mine = [r for r in runs if r["config"] == full and (r["data_seed"], r["seed"]) in rare_runs]
            if not mine:
                continue
            ap = [[v for k, v in r["test_ap"].items() if (k in RARE) == want and v is not None] for r in mine
                  for want in (True, False)]
            rare, other = [statistics.fmean(a) for a in ap[0::2]], [statistics.fmean(a) for a in ap[1::2]]
            maps = [r["test"]["mAP"] for r in mine]
            cells = [f"{statistics.fmean(v):.2f} ± {statistics.stdev(v) if len(v) > 1 else 0.0:.2f}"
                     for v in (rare, other, maps)]
            which = f"{RARE_IMAGES} images per rare label" if full == name else "full"
            lines.append(f"| {full} | {which} | " + " | ".join(cells) + f" | {len(mine)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import torch

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", default="/tmp/mlgraph-fair", help="data, features, runs and one JSON per run")
    p.add_argument("--train", type=int, default=600)
    p.add_argument("--val", type=int, default=200)
    p.add_argument("--test", type=int, default=400)
    p.add_argument("--data-seeds", default="0,1,2")
    p.add_argument("--seeds", default="0,1,2", help="training seeds")
    p.add_argument("--configs", default=",".join(CONFIGS))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--prepare-only", action="store_true")
    p.add_argument("--report", action="store_true", help="print the table of the runs done; train nothing")
    p.add_argument("-o", "--output", type=Path, default=RESULTS / "fair.json", help="the JSON of the runs in --work")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    work = Path(args.work)
    configs = args.configs.split(",")
    unknown = sorted(set(configs) - set(CONFIGS))
    if unknown:
        p.error(f"unknown config(s) {', '.join(unknown)}")
    if not args.report:
        for d in (int(s) for s in args.data_seeds.split(",")):
            prepare(work, d, args)
            if args.prepare_only:
                continue
            for seed in (int(s) for s in args.seeds.split(",")):
                for name in configs:
                    r = run_one(work, name, d, seed, args)
                    print(f"{name:24s} d{d} s{seed}: val {r['val_mAP']:.2f} test {r['test']['mAP']:.2f} "
                          f"({r['train_seconds']:.0f} s)", flush=True)
    rows = summary(work)
    full = max((r["runs"] for r in rows), default=0)
    print(f"Every data seed x every training seed ({full} runs a row):")
    print(table([r for r in rows if r["runs"] == full and not r["config"].endswith("+rare")]))
    print("\nScreened on fewer runs (training seed 0 on each data seed, unless the runs column says more):")
    print(table([r for r in rows if r["runs"] < full and not r["config"].endswith("+rare")]))
    print("\n" + rare_table(work))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    runs = [json.loads(p.read_text()) for p in sorted((work / "results").glob("*.json"))]
    args.output.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "summary": rows,
                                        "settings": settings, "runs": runs}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
