"""Every default by the rule (issue 19, item 4; docs/benchmarks.md, "Defaults by a rule").

The rule: a default other than the paper's choice stands only when, paired over at least 9 runs
(3 data seeds x 3 training seeds), it improves validation mAP over the paper's choice by more than
two standard errors of the paired difference; otherwise the paper's choice is the default.
Test mAP is reported beside it and never read.

Each setting names the paper's choice, today's default, and where the paired runs come from:
- ``fair``: the per-run JSON of benchmarks/results/fair.json (benchmarks/fair.py, the same three
  fashion-scenes sets as benchmarks/heads.py: `make-dataset fashion-scenes --seed 100|101|102`,
  600 / 200 / 400 scenes), computed, not rerun;
- ``runs``: runs of this script (or of heads.py / graphstudy.py) in the shared work folder, each
  trained through the train stage (studykit.run_spec) on those sets;
- ``video``: the per-run JSON of benchmarks/results/video_files_quality.json (one clip set).

    python benchmarks/defaults.py --work /work/bench-work/heads      # runs what is missing, then the table
    python benchmarks/defaults.py --work /work/bench-work/heads --report
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studykit import RESULTS, Spec, describe, machine, paired, prepare, run_spec, shared_study_args

MIN_RUNS = 9

# rows this script trains (bce; the reference "cma" is benchmarks/heads.py's cma/bce row)
VARIANTS: dict[str, Spec] = {
    "cma": Spec("cma", "default", {"gap_branch": True}),
    "cma-dropout0": Spec("cma", "default", {"gap_branch": True, "dropout": 0.0}),
    "cma-collapse-zero": Spec("cma", "default", {"gap_branch": True, "collapse": "zero"}),
    # the label-query head as benchmarks/heads.py recommends it, and with ML-Decoder's decoder sizes
    "query-random": Spec("query", options={"init": "random"}),
    "query-random-mld": Spec("query", options={"init": "random", "width": 768, "ffn": 2048}),
}


@dataclass
class Setting:
    """One default: what it sets, the paper's choice, today's, and the two rows to pair (source, today, paper)."""

    setting: str
    paper: str
    today: str
    source: str  # "fair", "runs", "video" or "video_heads"
    row_today: str
    row_paper: str
    note: str = ""
    per_data_seed: bool = False  # a deterministic fit: one value per data seed, whatever the training seed


SETTINGS = [
    Setting("`mlgraph embed --self-weight` (cma, probe start)", "0 (ASGE fits A)", "3", "fair",
            "cma-probe-lam3@head", "cma-probe@head"),
    Setting("`mlgraph embed --self-weight` (cma, probe start; rerun)", "0 (ASGE fits A)", "3", "runs", "cma",
            "cma-asge", "graphstudy.py's width rows"),
    Setting("`mlgraph embed --self-weight` (ms-cma, probe start)", "0 (ASGE fits A)", "3", "fair",
            "ms-cma-probe-lam3", "ms-cma-probe"),
    Setting("cma `gap_branch`", "false (no such branch)", "true", "fair", "cma-probe-lam3@head",
            "cma-probe-lam3-nogap@head"),
    Setting("ms-cma `gap_branch`", "false (no such branch)", "true", "fair", "ms-cma-probe-lam3",
            "ms-cma-probe-lam3-nogap"),
    Setting("cma `--probe-epochs` (ASGE at self-weight 0)", "0 (random start)", "20", "fair", "cma-probe@head",
            "cma@head"),
    Setting("ms-cma `--probe-epochs` (ASGE at self-weight 0)", "0 (random start)", "20", "fair", "ms-cma-probe",
            "ms-cma"),
    Setting("cma `dropout`", "0 (none named)", "0.3", "runs", "cma", "cma-dropout0"),
    Setting("cma `collapse`", "zero (a_k as written)", "uniform", "runs", "cma", "cma-collapse-zero"),
    Setting("cma `gap_branch`, `dropout`, `collapse` together", "false, 0, zero (the paper's head)",
            "true, 0.3, uniform", "runs", "cma", "cma-paper", "heads.py's rows"),
    Setting("ms-cma `gap_branch`, `dropout`, `collapse` together", "false, 0, zero (the paper's head)",
            "true, 0.3, uniform", "runs", "ms-cma", "ms-cma-paper", "heads.py's rows"),
    Setting("query `init`", "random (learned queries: Query2Label, ML-Decoder)", "embeddings", "runs",
            "query-graph", "query-random", "heads.py's rows"),
    Setting("query `width` / `ffn`", "768 / 2048 (ML-Decoder)", "256 / 1024", "runs", "query-random",
            "query-random-mld"),
    Setting("probe `pool`", "none (no paper; gap is the usual probe)", "gapgmp", "runs", "probe-gapgmp",
            "probe-gap", "a deterministic fit: paired over the 3 data sets", per_data_seed=True),
    Setting("temporal cma `mean_branch` (video files)", "false (no such branch)", "true", "video", "cma",
            "cma-no-mean-branch", "one clip set x 3 training seeds"),
    Setting("temporal cma `mean_branch` (video files, 3 clip sets)", "false (no such branch)", "true", "video_heads",
            "cma/bce", "cma-no-mean-branch/bce", "video_heads.py: 3 clip sets x 3 training seeds"),
]


def load(source: str, work: Path) -> list[dict[str, Any]]:
    """Runs as {"row", "data_seed", "seed", "val_mAP", "test_mAP"} from one source."""
    if source == "fair":
        runs = json.loads((RESULTS / "fair.json").read_text())["runs"]
        return [{"row": r["config"], "data_seed": r["data_seed"], "seed": r["seed"], "val_mAP": r["val_mAP"],
                 "test_mAP": r["test"]["mAP"]} for r in runs]
    if source == "video_heads":
        runs = json.loads((RESULTS / "video_heads.json").read_text())["runs"]
        return [{"row": r["row"], "data_seed": r["data_seed"], "seed": r["seed"], "val_mAP": r["val_mAP"],
                 "test_mAP": r["test_mAP"]} for r in runs]
    if source == "video":
        runs = json.loads((RESULTS / "video_files_quality.json").read_text())["runs"]
        return [{"row": r["head"], "data_seed": 0, "seed": r["seed"], "val_mAP": r["val_mAP"], "test_mAP": r["mAP"]}
                for r in runs]
    runs = [json.loads(f.read_text()) for f in sorted((work / "results").glob("*-bce-d*-s*.json"))]
    return [{"row": r["row"].removesuffix("/bce"), "data_seed": r["data_seed"], "seed": r["seed"],
             "val_mAP": r["val_mAP"], "test_mAP": r["test"]["mAP"], "load": r.get("load")} for r in runs]


def verdict(s: Setting, work: Path) -> dict[str, Any]:
    runs = load(s.source, work)
    today = [r for r in runs if r["row"] == s.row_today]
    paper = [r for r in runs if r["row"] == s.row_paper]
    if s.per_data_seed:  # the training seeds repeat one result: keep one run per data seed
        today, paper = ([{**r, "seed": 0} for r in rows if r["seed"] == min(x["seed"] for x in rows)]
                        for rows in (today, paper))
    val = paired(today, paper, lambda r: r["val_mAP"])
    test = paired(today, paper, lambda r: r["test_mAP"])
    keeps = val["n"] >= MIN_RUNS and val["beyond_2se"] and val["mean"] > 0
    if val["n"] == 0:
        why = "no paired runs"
    elif keeps:
        why = f"keep {s.today}"
    elif s.paper.startswith("none"):
        why = f"keep {s.today}: no paper's choice to fall back to ({val['n']} paired runs)"
    elif val["n"] < MIN_RUNS:
        why = f"{s.paper.split(' ')[0]} (the paper's): {val['n']} paired runs, fewer than {MIN_RUNS}"
    else:
        why = f"{s.paper.split(' ')[0]} (the paper's): not beyond 2 SE"
    return {"setting": s.setting, "paper": s.paper, "today": s.today, "source": s.source, "rows": [s.row_today,
            s.row_paper], "note": s.note, "val": val, "test": test, "keeps_today": keeps, "verdict": why}


def _d(d: dict[str, Any]) -> str:
    if d["mean"] is None:
        return "-"
    return f"{d['mean']:+.2f} ± {d['se']:.2f}" if d["se"] is not None else f"{d['mean']:+.2f}"


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| default | paper's choice | today | runs (source) | val: today - paper | > 2 SE | test: today - paper "
             "| by the rule |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        src = {"fair": "fair.json", "runs": "this study", "video": "video_files_quality.json",
               "video_heads": "video_heads.json"}[r["source"]]
        beyond = "-" if r["val"]["se"] is None else ("yes" if r["val"]["beyond_2se"] else "no")
        lines.append(f"| {r['setting']} | {r['paper']} | {r['today']} | {r['val']['n']} ({src}) | {_d(r['val'])} | "
                     f"{beyond} | {_d(r['test'])} | {r['verdict']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import torch

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    shared_study_args(p)
    p.add_argument("--rows", default=",".join(VARIANTS), help="rows to train")
    p.add_argument("--report", action="store_true", help="print the table of the runs kept; train nothing")
    p.add_argument("-o", "--output", type=Path, default=RESULTS / "defaults.json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    info = machine()
    if not args.report:
        for d in (int(s) for s in args.data_seeds.split(",")):
            prepare(args.work, d, args, stage5=False, rare=False)
            for seed in (int(s) for s in args.seeds.split(",")):
                for key in args.rows.split(","):
                    r = run_spec(args.work, key, "bce", VARIANTS[key], d, seed, command="benchmarks/defaults.py")
                    print(f"{key:20s} d{d} s{seed}: val {r['val_mAP']:.2f} test {r['test']['mAP']:.2f} "
                          f"({r['train_seconds']:.0f} s)", flush=True)
    rows = [verdict(s, args.work) for s in SETTINGS]
    print(table(rows))
    mine = [r for r in load("runs", args.work) if r["row"] in VARIANTS]
    print("\nRows of this study: " + describe(info, mine))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    args.output.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "settings": settings, "machine": info,
                                       "min_runs": MIN_RUNS, "defaults": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
