"""The label graph without confounds (issue 19, item 3): same width, same images, and a richer corpus.

Three scenarios on the fashion-scenes projects of benchmarks/heads.py (same data seeds, same work
folder, so its rows are reused), every row over 3 data seeds x 3 training seeds, paired with a
reference row of its scenario over the same (data seed, training seed):

- ``width``: CMA on the full training set with ASGE embeddings fitted to A (`--self-weight 0`, the
  paper's target), to (A + 3I) / 4 (`--self-weight 3`, today's default) and one-hot embeddings as
  wide as ASGE's (`mlgraph embed --method onehot --dim 300`: the same Gram matrix as the identity,
  so the comparison is no longer also one of widths) (the 10-wide identity is fair.json's
  cma-probe-onehot@head, on the same sets). The same for the label-query head (queries projected
  from those embeddings, or random).
- ``rare``: the training subset where shirt, sneaker and bag keep 15 images each (studykit.rare_subset),
  with the graph built by `mlgraph build-graph` from exactly that subset's labels, so the graph
  rows see no co-occurrence the images do not show.
- ``corpus``: the same few images, the graph built from a label-only corpus: label sets without
  images drawn from the outfit sampler fashion-scenes uses (core/datasets/outfits.py), written as
  JSONL and fed to `mlgraph build-graph`. Named apart: here the graph knows more than the images.

The label-query head is in every scenario too, its graph-projected queries paired with one-hot-300
ones (width) or with random queries (rare, corpus).

Every run trains through the train stage (studykit.run_spec) with `mlgraph train`'s defaults, keeps
its best validation epoch, and is scored on test once; validation mAP is what a choice would read,
test AP of the rare labels is reported apart.

    python benchmarks/graphstudy.py --work /work/bench-work/heads            # every scenario
    python benchmarks/graphstudy.py --work /work/bench-work/heads --scenarios rare --report
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from studykit import (RARE, RARE_IMAGES, RESULTS, Spec, describe, graph_of_labels, labels_of, machine, mean_std,
                      paired, prepare, project, run_spec, shared_study_args)

CORPUS_SETS = 20_000  # label sets in the label-only corpus (33x the 600 training scenes)
RARE_GRAPH, CORPUS_GRAPH = "rare-graph.json", "corpus-graph.json"
_rare = {"train_file": "rare-features.h5"}
_gap = {"gap_branch": True}  # cma as before this study (a row names what it ran, whatever the default becomes)
_emb = {"init": "embeddings"}

# scenario -> ({head: its reference row}, {row key: spec}); a key that heads.py also runs names the same runs
SCENARIOS: dict[str, tuple[dict[str, str], dict[str, Spec]]] = {
    "width": ({"cma": "cma-onehot300", "query": "query-onehot300"}, {
        "cma": Spec("cma", "default", _gap),  # today's default embeddings (--self-weight 3); heads.py's row
        "cma-asge": Spec("cma", "asge", _gap),
        "cma-onehot300": Spec("cma", "onehot-300", _gap),
        "query-graph": Spec("query", "default", _emb),  # heads.py's row
        "query-asge": Spec("query", "asge", _emb),
        "query-onehot300": Spec("query", "onehot-300", _emb),
        "query-random": Spec("query", options={"init": "random"}),  # heads.py's row
    }),
    "rare": ({"cma": "rare-cma-onehot300", "gap": "rare-cma-onehot300", "probe": "rare-cma-onehot300",
              "query": "rare-query-random"}, {
        "rare-probe-gapgmp": Spec("probe", options={"pool": "gapgmp"}, **_rare),
        "rare-gap": Spec("gap", **_rare),
        "rare-cma-asge": Spec("cma", "asge", _gap, graph=RARE_GRAPH, **_rare),
        "rare-cma-lam3": Spec("cma", "asge-lam3", _gap, graph=RARE_GRAPH, **_rare),
        "rare-cma-onehot300": Spec("cma", "onehot-300", _gap, graph=RARE_GRAPH, **_rare),
        "rare-query-random": Spec("query", options={"init": "random"}, **_rare),
        "rare-query-asge": Spec("query", "asge", _emb, graph=RARE_GRAPH, **_rare),
    }),
    "corpus": ({"cma": "rare-cma-onehot300", "gap": "rare-cma-onehot300", "probe": "rare-cma-onehot300",
                "query": "rare-query-random"}, {
        "corpus-cma-asge": Spec("cma", "asge", _gap, graph=CORPUS_GRAPH, **_rare),
        "corpus-cma-lam3": Spec("cma", "asge-lam3", _gap, graph=CORPUS_GRAPH, **_rare),
        "corpus-query-asge": Spec("query", "asge", _emb, graph=CORPUS_GRAPH, **_rare),
    }),
}
GRAPH_NOTE = {"graph.json": "all 600 training scenes", RARE_GRAPH: "the rare subset's scenes",
              CORPUS_GRAPH: f"{CORPUS_SETS:,} label sets, no images"}


def corpus_label_sets(data_seed: int) -> list[list[str]]:
    """CORPUS_SETS label sets from the outfit sampler of fashion-scenes (its default LabelSetConfig),
    seeded apart from every scene of the data seed's dataset."""
    import numpy as np

    from mlgraph_cli.core.datasets.fashion_mnist import LABELS
    from mlgraph_cli.core.datasets.outfits import LabelSetConfig, sample_label_set

    rng, config = np.random.default_rng([100 + data_seed, 7919]), LabelSetConfig()
    return [[LABELS[i] for i in sample_label_set(rng, LABELS, config)[0]] for _ in range(CORPUS_SETS)]


def graphs(work: Path, data_seed: int) -> None:
    """The rare subset's own graph and the label-only corpus graph of one data seed."""
    art = project(work, data_seed) / "artifacts"
    graph_of_labels(art, labels_of(art / "rare-features.h5"), RARE_GRAPH)
    graph_of_labels(art, corpus_label_sets(data_seed), CORPUS_GRAPH)


def _ap(run: dict[str, Any], rare: bool) -> float:
    return statistics.fmean(v for k, v in run["test_ap"].items() if (k in RARE) == rare and v is not None)


def table(scenario: str, runs: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    references, rows = SCENARIOS[scenario]
    if scenario == "corpus":  # compared with the rare scenario's rows as well
        rows = {**SCENARIOS["rare"][1], **rows}
    lines = ["| row | head | graph from | embeddings | val mAP | val vs reference | > 2 SE | test mAP | "
             "test AP rare labels | rare AP vs reference | test AP other labels | runs |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    out = []
    for key, spec in rows.items():
        mine = [r for r in runs if r["row"] == f"{key}/bce"]
        if not mine:
            continue
        reference = references[spec.head]
        ref = [r for r in runs if r["row"] == f"{reference}/bce"]
        val = paired(mine, ref, lambda r: r["val_mAP"])
        rare = paired(mine, ref, lambda r: _ap(r, True))
        cells = {"val": mean_std([r["val_mAP"] for r in mine]), "test": mean_std([r["test"]["mAP"] for r in mine]),
                 "rare": mean_std([_ap(r, True) for r in mine]), "other": mean_std([_ap(r, False) for r in mine])}
        out.append({"row": key, "reference": reference, "runs": len(mine), **{k: list(v) for k, v in cells.items()},
                    "val_vs_ref": val, "rare_vs_ref": rare})
        fmt = {k: f"{m:.2f} ± {s:.2f}" for k, (m, s) in cells.items()}
        diff = {k: "-" if d["se"] is None or key == reference else f"{d['mean']:+.2f} ± {d['se']:.2f}"
                for k, d in (("val", val), ("rare", rare))}
        beyond = "-" if diff["val"] == "-" else ("yes" if val["beyond_2se"] else "no")
        emb = {"default": "asge, --self-weight 3 (default)", "asge": "asge, --self-weight 0",
               "asge-lam3": "asge, --self-weight 3", "onehot-300": "onehot --dim 300",
               "onehot": "onehot (10 wide)"}.get(spec.embeddings, "-")
        graph = GRAPH_NOTE[spec.graph] if spec.embeddings and "onehot" not in spec.embeddings else "-"
        lines.append(f"| {key} | {spec.head} | {graph} | {emb} | {fmt['val']} | {diff['val']} | {beyond} | "
                     f"{fmt['test']} | {fmt['rare']} | {diff['rare']} | {fmt['other']} | {len(mine)} |")
    return "\n".join(lines), out


def main(argv: list[str] | None = None) -> int:
    import torch

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    shared_study_args(p)
    p.add_argument("--scenarios", default=",".join(SCENARIOS))
    p.add_argument("--report", action="store_true", help="print the tables of the runs kept; train nothing")
    p.add_argument("-o", "--output", type=Path, default=RESULTS / "graphstudy.json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    scenarios = args.scenarios.split(",")
    info = machine()
    if not args.report:
        for d in (int(s) for s in args.data_seeds.split(",")):
            prepare(args.work, d, args, stage5=False, rare=True)
            graphs(args.work, d)
            for seed in (int(s) for s in args.seeds.split(",")):
                for scenario in scenarios:
                    for key, spec in SCENARIOS[scenario][1].items():
                        r = run_spec(args.work, key, "bce", spec, d, seed, command="benchmarks/graphstudy.py")
                        print(f"{key:22s} d{d} s{seed}: val {r['val_mAP']:.2f} test {r['test']['mAP']:.2f} "
                              f"({r['train_seconds']:.0f} s)", flush=True)
    runs = [json.loads(f.read_text()) for f in sorted((args.work / "results").glob("*-bce-d*-s*.json"))]
    keys = {f"{k}/bce" for s in scenarios for k in SCENARIOS[s][1]}
    if "corpus" in scenarios:
        keys |= {f"{k}/bce" for k in SCENARIOS["rare"][1]}
    runs = [r for r in runs if r["row"] in keys]
    summary = {}
    for scenario in scenarios:
        text, summary[scenario] = table(scenario, runs)
        refs = ", ".join(f"{h}: {r}" for h, r in SCENARIOS[scenario][0].items())
        print(f"\n{scenario} (reference rows: {refs}):\n{text}")
    print(f"\nRare labels: {', '.join(RARE)} ({RARE_IMAGES} training images each in the rare and corpus scenarios).")
    print(describe(info, runs))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    args.output.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "settings": settings, "machine": info,
                                       "summary": summary, "runs": runs}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
