"""Do ASGE embeddings rank label-graph neighbours better than the baselines, and how fast are they?

Quality, on the real MS-COCO 2014 training statistics (80 labels, 82,783 images) and the real
300-d GloVe vectors of the label names (../shared/data/coco2014-label-stats/, or the copies in
tests/data/). Every method is scored by how well the cosine similarity of its embeddings ranks
each label's graph neighbours: neighbour mAP (mean over labels with a neighbour of the AP of the
true neighbours among the other 79 labels; neighbours = ML-GCN's binary graph, max(P(j|i),
P(i|j)) >= 0.4) and the Spearman / Pearson correlation of cosine with the fitted adjacency over
the 3,160 label pairs. Three settings:

  same      fitted to the binary adjacency, scored on its own edges (the same adjacency family
            ASGE was fitted to: the fair head-to-head, but ASGE is trained on exactly the answer);
  family    fitted to cond-mean ((P(j|i) + P(i|j)) / 2), scored on the binary edges (a neighbour
            definition the fit never saw: mean vs max of the two conditionals, then a threshold);
  pairs     link prediction: 20% of label pairs hidden (a new split per seed), every graph
            method fitted to cond-mean with the hidden pairs set to 0 (as if never seen
            together), scored on the hidden pairs only (for each label, rank its hidden pairs;
            positives = hidden binary edges).

word and onehot use no graph (the same vectors in every setting). ASGE and DeepWalk run with
--seeds seeds (mean and std); spectral, word and onehot are deterministic.

Speed: ASGE (one-hot inputs, default settings: 500 Adam steps, 300-d, hidden 256, 1 thread) on
synthetic planted-cluster graphs of 80, 1,000 and 4,000 labels, timed alone and as the whole
stage (read graph, adjacency, fit, write). Targets on a 2-core CPU: 80 labels < 10 s, 4,000
labels < 2 min. Other processes on the machine slow these down: the load average is recorded.

Prints a table and writes JSON (default benchmarks/results/embed_quality.json).

    .venv/bin/python benchmarks/embed_quality.py
    .venv/bin/python benchmarks/embed_quality.py --seeds 1 --sizes 80,1000   # a quick look
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mlgraph_cli.core.embeddings.asge import asge_embeddings
from mlgraph_cli.core.embeddings.quality import neighbour_ranking
from mlgraph_cli.core.evaluation.metrics import average_precision
from mlgraph_cli.core.embeddings.baselines import deepwalk_embeddings, onehot_embeddings, spectral_embeddings
from mlgraph_cli.core.graph.counts import LabelGraph, build_label_graph
from mlgraph_cli.core.graph.adjacency import adjacency, keep_apart
from mlgraph_cli.core.graph.files import write_graph
from mlgraph_cli.core.embeddings.wordvectors import label_vectors, load_word_vectors  # noqa: E402
from mlgraph_cli.stages.embed import EmbedConfig, embed  # noqa: E402

SHARED = ROOT.parent / "shared" / "data" / "coco2014-label-stats"
STATS = [SHARED / "cooccurrence.json", ROOT / "tests" / "data" / "coco2014-cooccurrence.json"]
GLOVE = [SHARED / "glove-300d-labels.txt", ROOT / "tests" / "data" / "coco-glove-300d.txt"]
TAU = 0.4  # ML-GCN's threshold on P(j|i): the neighbour definition of every score here


def first_existing(paths: list[Path]) -> Path:
    for p in paths:
        if p.is_file():
            return p
    sys.exit(f"none of these files exists: {', '.join(map(str, paths))}")


def coco_graph() -> LabelGraph:
    data = json.loads(first_existing(STATS).read_text())
    return LabelGraph(labels=data["labels"], image_counts=np.array(data["image_counts"], dtype=np.int64),
                      cooccurrence=sp.csr_matrix(np.array(data["cooccurrence"], dtype=np.int64)), num_images=82783)


def planted_graph(num_labels: int, *, cluster: int = 5, images_per_label: int = 25, noise: float = 0.3,
                  seed: int = 0) -> LabelGraph:
    """Labels in groups of ``cluster`` (label k in group k // cluster); each image carries 2-4
    labels of one group, and with probability ``noise`` one more label from anywhere."""
    rng = np.random.default_rng(seed)
    groups = num_labels // cluster
    n = num_labels * images_per_label
    group = rng.integers(groups, size=n)
    order = np.argsort(rng.random((n, cluster)), axis=1)  # a random permutation of each group per image
    size = rng.integers(2, min(cluster, 4) + 1, size=n)
    keep = np.arange(cluster)[None, :] < size[:, None]
    rows = np.repeat(np.arange(n), cluster)[keep.ravel()]
    cols = (group[:, None] * cluster + order).ravel()[keep.ravel()]
    extra = np.flatnonzero(rng.random(n) < noise)
    rows = np.concatenate([rows, extra])
    cols = np.concatenate([cols, rng.integers(groups * cluster, size=len(extra))])
    y = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, groups * cluster))
    return build_label_graph(y, [f"label{k}" for k in range(groups * cluster)])


def methods(target: np.ndarray, glove: np.ndarray, seed: int) -> dict:
    """Each method's ((C, d) vectors, seconds) for one target adjacency."""
    out = {}
    for name, init, weighting in (("asge (glove)", glove, "uniform"), ("asge (onehot)", None, "uniform"),
                                  ("asge (glove, balanced)", glove, "balanced")):
        start = time.perf_counter()
        out[name] = (asge_embeddings(target, init, seed=seed, weighting=weighting)[0], time.perf_counter() - start)
    start = time.perf_counter()  # what a plain `mlgraph embed` fits: one-hot inputs, A + 3 I at unit diagonal
    vectors = asge_embeddings(keep_apart(target, EmbedConfig().self_weight), None, seed=seed)[0]
    out[f"asge (onehot, self-weight {EmbedConfig().self_weight:g}: the default)"] = (vectors, time.perf_counter() - start)
    for name, fn in (("deepwalk", lambda: deepwalk_embeddings(target, dim=300, seed=seed)),
                     ("spectral", lambda: spectral_embeddings(target, 300))):
        start = time.perf_counter()
        out[name] = (fn(), time.perf_counter() - start)
    out["word (glove)"] = (glove, 0.0)
    out["onehot"] = (onehot_embeddings(len(glove)), 0.0)
    return out


def quality(seeds: int) -> dict:
    graph = coco_graph()
    glove = label_vectors(load_word_vectors(first_existing(GLOVE)), graph.labels).vectors
    binary = adjacency(graph, "binary", tau=TAU)
    cond = adjacency(graph, "cond-mean")
    edges = binary > 0
    c = len(graph.labels)
    rows: dict[str, dict[str, list]] = {}
    hidden_counts = []

    def add(setting: str, name: str, values: dict) -> None:
        slot = rows.setdefault(name, {}).setdefault(setting, [])
        slot.append(values)

    for seed in range(seeds):
        for setting, target in (("same", binary), ("family", cond)):
            for name, (vectors, secs) in methods(target, glove, seed).items():
                r = neighbour_ranking(vectors, edges, target)
                add(setting, name, {"map": r["map"], "spearman": r["spearman"], "pearson": r["pearson"],
                                    "seconds": secs})
        upper = np.triu(np.random.default_rng(123 + seed).random((c, c)) < 0.2, 1)
        hidden = upper | upper.T
        hidden_counts.append((int(upper.sum()), int((upper & edges).sum())))
        for name, (vectors, secs) in methods(np.where(hidden, 0.0, cond), glove, seed).items():
            add("pairs", name, {"map": neighbour_ranking(vectors, edges, pairs=hidden)["map"], "seconds": secs})
    # the ceiling of "family": ranking by the fitted cond-mean values themselves
    aps = [float(average_precision(np.delete(cond[i], i)[:, None], np.delete(edges[i], i)[:, None])[0])
           for i in range(c) if edges[i].any()]
    oracle = {"map": float(np.mean(aps)), "labels_with_neighbours": len(aps)}
    summary = {name: {setting: aggregate(values) for setting, values in by.items()} for name, by in rows.items()}
    return {"labels": c, "edges": int(np.triu(edges, 1).sum()), "hidden_pairs_and_edges_per_split": hidden_counts,
            "family_oracle_map": oracle["map"],
            "labels_with_neighbours": oracle["labels_with_neighbours"], "methods": summary}


def aggregate(values: list[dict]) -> dict:
    out = {}
    for key in values[0]:
        xs = np.array([v[key] for v in values], dtype=float)
        if np.isnan(xs).any():  # one-hot: every pair ties, no correlation is defined
            out[key] = None
            continue
        out[key] = float(np.mean(xs))
        if len(xs) > 1:
            out[f"{key}_std"] = float(np.std(xs))
    return out


def speed(sizes: list[int]) -> list[dict]:
    results = []
    for c in sizes:
        graph = planted_graph(c)
        target = adjacency(graph, "cond-mean")
        start, cpu = time.perf_counter(), time.process_time()
        vectors, info = asge_embeddings(target)
        fit_s, fit_cpu = time.perf_counter() - start, time.process_time() - cpu
        group = np.arange(c) // 5
        truth = (group[:, None] == group[None, :]) & ~np.eye(c, dtype=bool)
        r = neighbour_ranking(vectors, truth)
        with tempfile.TemporaryDirectory() as tmp:
            write_graph(graph, Path(tmp) / "graph.json")
            start = time.perf_counter()
            embed(Path(tmp) / "graph.json", Path(tmp) / "emb.h5", EmbedConfig())
            stage_s = time.perf_counter() - start
        results.append({"labels": c, "edges": graph.num_edges, "fit_seconds": fit_s, "fit_cpu_seconds": fit_cpu,
                        "stage_seconds": stage_s, "solver": info["solver"], "steps": info["steps"],
                        "planted_cluster_map": r["map"], "load_average": os.getloadavg()[0]})
        print(f"  {c:>5} labels: fit {fit_s:6.1f} s (cpu {fit_cpu:6.1f} s), stage {stage_s:6.1f} s, "
              f"planted-cluster mAP {r['map']:.3f}", flush=True)
    return results


def fmt(x: float | None, std: float | None = None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "   n/a"
    return f"{x:6.3f}" + (f" ±{std:.3f}" if std is not None else "")


def print_quality(q: dict) -> None:
    print(f"\nCOCO 2014: {q['labels']} labels, {q['edges']} binary edges (tau {TAU}), {q['labels_with_neighbours']} "
          f"labels with a neighbour; hidden (pairs, edges) per 'pairs' split: "
          f"{q['hidden_pairs_and_edges_per_split']}.")
    print(f"{'method':26s} {'same mAP':>14s} {'same rho':>8s} {'family mAP':>14s} {'family rho':>10s} "
          f"{'family r':>8s} {'pairs mAP':>14s} {'fit s':>6s}")
    for name, by in q["methods"].items():
        s, f, p = by["same"], by["family"], by["pairs"]
        print(f"{name:26s} {fmt(s['map'], s.get('map_std')):>14s} {fmt(s['spearman']):>8s} "
              f"{fmt(f['map'], f.get('map_std')):>14s} {fmt(f['spearman']):>10s} {fmt(f['pearson']):>8s} "
              f"{fmt(p['map'], p.get('map_std')):>14s} {f['seconds']:6.1f}")
    print(f"{'(cond-mean values)':26s} {'':>14s} {'':>8s} {fmt(q['family_oracle_map']):>14s}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="seeds for ASGE and DeepWalk (default 3)")
    parser.add_argument("--sizes", default="80,1000,4000", help="label counts of the speed runs")
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "benchmarks" / "results" / "embed_quality.json")
    args = parser.parse_args()

    load = os.getloadavg()[0]
    print(f"load average at start: {load:.2f} on {os.cpu_count()} cores")
    q = quality(args.seeds)
    print_quality(q)
    print("\nASGE speed (one-hot inputs, 500 steps, 300-d, 1 thread) on planted-cluster graphs:")
    s = speed([int(x) for x in args.sizes.split(",") if x])
    result = {"quality": q, "speed": s, "seeds": args.seeds,
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load_average_start": load,
                          "python": platform.python_version()},
              "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2, allow_nan=False, default=str) + "\n")
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
