"""What the head studies share (benchmarks/fair.py, benchmarks/heads.py): the data, the runs, the statistics.

- Data: one fashion-scenes project per data seed d (`mlgraph make-dataset fashion-scenes --seed
  100 + d`, `mlgraph build-graph`, `mlgraph extract --layer stage5 --layer head` per split, or
  extract's defaults: the `head` map alone), plus, when asked, a copy of each features file with
  the finer `stage5` map as its only map and a rare-label subset.
- Embeddings made by the embed stage, one file per graph, kind and training seed.
- A row (:class:`Spec`): a head, its embeddings, options and training settings, the training
  file and the graph; :func:`run_spec` trains it on one (data seed, training seed).
- Runs: each trains through `stages.train.train` (the code of `mlgraph train`), keeps its best
  validation epoch and is scored on test once (`stages.evaluate`); one JSON per run, written
  atomically, so an interrupted study resumes where it stopped.
- Paired statistics: a row against a reference row over the (data seed, training seed) pairs
  both ran: the mean difference, its standard error, and whether it exceeds two of them.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # this checkout's mlgraph_cli, whatever the environment installed
RESULTS = ROOT / "benchmarks" / "results"
GLOVE = ROOT / "mlgraph_cli" / "data" / "vectors" / "glove-6b-50d-fashion.txt"
SPLITS = (("train", "features"), ("val", "val-features"), ("test", "test-features"))
RARE = ("shirt", "sneaker", "bag")
RARE_IMAGES = 15


def mlgraph(*args: str, cwd: Path) -> None:
    """Run this checkout's `mlgraph` in a new process (also when another mlgraph is installed)."""
    print("$ mlgraph " + " ".join(args), flush=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    subprocess.run([sys.executable, "-m", "mlgraph_cli", *args], cwd=cwd, check=True, env=env)


def project(work: Path, data_seed: int) -> Path:
    return work / f"data-s{data_seed}"


def prepare(work: Path, data_seed: int, sizes: Any, *, stage5: bool = True, rare: bool = True,
            layers: tuple[str, ...] | None = ("stage5", "head")) -> Path:
    """The project of one data seed: dataset, graph, features of ``layers`` (None: what `mlgraph
    extract` writes with its defaults) (``sizes``: .train, .val, .test), and, when asked, the
    stage5-only copies and the rare-label training subset."""
    data = project(work, data_seed)
    if not (data / "mlgraph.toml").exists():
        mlgraph("make-dataset", "fashion-scenes", str(data), "--train", str(sizes.train), "--val", str(sizes.val),
                "--test", str(sizes.test), "--seed", str(100 + data_seed), cwd=ROOT)
    if not (data / "artifacts" / "graph.json").exists():
        mlgraph("build-graph", cwd=data)
    for split, name in SPLITS:
        if not (data / "artifacts" / f"{name}.h5").exists():
            flags = [x for layer in layers or () for x in ("--layer", layer)]
            mlgraph("extract", "--split", split, *flags, "-q", cwd=data)
        if stage5:  # the finer map as the only map
            copy_rows(data / "artifacts" / f"{name}.h5", data / "artifacts" / f"stage5-{name}.h5", None,
                      features_aux="features")
    if rare:
        rare_subset(data / "artifacts")
    return data


def copy_rows(src: Path, dst: Path, rows, **renames: str) -> None:
    """A features file holding only ``rows`` of ``src`` (sorted indices; None: all), datasets renamed as given."""
    import h5py
    import numpy as np

    if dst.exists():
        return
    tmp = dst.with_name(dst.name + ".partial")
    with h5py.File(src, "r") as f, h5py.File(tmp, "w") as g:
        n = len(f["ids"])
        rows = np.arange(n) if rows is None else np.asarray(rows)
        for key in f:
            if key in renames.values() and key not in renames:
                continue
            ds = f[key]
            name = renames.get(key, key)
            if isinstance(ds, h5py.Dataset) and ds.shape and ds.shape[0] == n and key != "label_names":
                g.create_dataset(name, data=ds[rows], chunks=True, fletcher32=ds.fletcher32)
            else:
                f.copy(ds, g, name=name)
        for k, v in f.attrs.items():
            g.attrs[k] = v
        for k in ("rows_done", "inputs_done"):
            if k in g.attrs:
                g.attrs[k] = len(rows)
    tmp.rename(dst)


def rare_subset(art: Path) -> None:
    """features with RARE labels cut to RARE_IMAGES training images each (seeded by the data)."""
    import h5py
    import numpy as np

    with h5py.File(art / "features.h5", "r") as f:
        names = [x.decode() if isinstance(x, bytes) else str(x) for x in f["label_names"][:]]
        y = f["labels"][:] > 0
    cols = [names.index(r) for r in RARE]
    keep = ~y[:, cols].any(axis=1)
    rng = np.random.default_rng(0)
    for c in cols:
        keep[rng.choice(np.flatnonzero(y[:, c]), RARE_IMAGES, replace=False)] = True
    copy_rows(art / "features.h5", art / "rare-features.h5", np.flatnonzero(keep))


def embeddings(data: Path, kind: str, seed: int, command: str, graph: str = "graph.json") -> Path:
    """The embeddings file of ``kind`` for one training seed, made by the embed stage from
    ``graph`` (a file under the project's artifacts).

    kinds: "default" (a plain `mlgraph embed` today), "asge" (ASGE fitted to A, --self-weight 0),
    "asge-lam<L>" (--self-weight L), "onehot" (the identity), "onehot-<d>" (orthonormal rows in d
    dimensions), "word" (the packaged GloVe vectors as they are)."""
    from mlgraph_cli.stages.embed import EmbedConfig, embed

    stem = "" if graph == "graph.json" else graph.removesuffix(".json") + "-"
    path = data / "artifacts" / "emb" / f"{stem}{kind}-s{seed}.h5"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    init = None
    if kind == "word":
        config, init = EmbedConfig(method="word", seed=seed), GLOVE
    elif kind.startswith("onehot"):
        width = int(kind.split("-", 1)[1]) if "-" in kind else None
        config = EmbedConfig(method="onehot", seed=seed, dim=width)
    elif kind == "default":
        config = EmbedConfig(seed=seed)
    else:  # "asge" or "asge-lam<L>"
        config = EmbedConfig(seed=seed, self_weight=float(kind.split("-lam", 1)[1]) if "-lam" in kind else 0.0)
    embed(data / "artifacts" / graph, path, config, init=init, command=command)
    return path


def graph_of_labels(art: Path, label_sets: list[list[str]], name: str) -> str:
    """``mlgraph build-graph`` on ``label_sets`` written as JSONL (one {"image", "labels"} per set):
    the graph of exactly those label sets, as a user would build it; returns its file name under ``art``."""
    out = art / name
    if not out.exists():
        src = art / (name.removesuffix(".json") + "-labels.jsonl")
        src.write_text("".join(json.dumps({"image": f"set{i}", "labels": labels}) + "\n"
                               for i, labels in enumerate(label_sets)))
        mlgraph("build-graph", str(src), "--format", "jsonl", "-o", str(out), "-q", cwd=art)
    return name


def labels_of(features: Path) -> list[list[str]]:
    """The label sets of a features file, one list of names per row (positives only)."""
    import h5py

    with h5py.File(features, "r") as f:
        names = [x.decode() if isinstance(x, bytes) else str(x) for x in f["label_names"][:]]
        y = f["labels"][:] > 0
    return [[names[j] for j in row.nonzero()[0]] for row in y]


@dataclass
class Spec:
    """One row of a study: ``head`` with ``embeddings`` (a kind of :func:`embeddings`, or None),
    head ``options``, ``training`` (TrainConfig fields other than the head, seed and loss), the
    training file under the project's artifacts, and the ``graph`` its embeddings (and mlgcn's
    adjacency) come from. ms-cma reads both maps of the features files."""

    head: str
    embeddings: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    train_file: str = "features.h5"
    graph: str = "graph.json"


def run_spec(work: Path, key: str, loss: str, spec: Spec, data_seed: int, seed: int, *, command: str,
             smoke: bool = False) -> dict[str, Any]:
    """Row ``key/loss`` of ``spec`` on one (data seed, training seed), kept as results/KEY-LOSS-dD-sS.json."""
    from mlgraph_cli.core.training.trainer import TrainConfig
    from mlgraph_cli.stages.train.inputs import TrainInputs

    art = project(work, data_seed) / "artifacts"
    tag = f"{key}-{loss}-d{data_seed}-s{seed}"

    def run() -> dict[str, Any]:
        emb = embeddings(art.parent, spec.embeddings, seed, command, spec.graph) if spec.embeddings else None
        extra = {**spec.training, **({"epochs": 1} if smoke else {})}
        cfg = TrainConfig(head=spec.head, seed=seed, loss=loss, cache="ram", workers=0, device="cpu",
                          head_options=dict(spec.options), **extra)
        inputs = TrainInputs(features=art / spec.train_file, val_features=art / "val-features.h5", embeddings=emb,
                             graph=art / spec.graph if spec.head == "mlgcn" else None)
        scored = train_and_score(work / "runs" / tag, inputs, cfg, art / "test-features.h5")
        return {"row": f"{key}/{loss}", "data_seed": data_seed, "seed": seed, **scored,
                "load": round(os.getloadavg()[0], 2)}

    return kept(work / "results" / f"{tag}.json", run)


def kept(out: Path, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The run kept in ``out`` (JSON), or ``compute()`` written there atomically."""
    if out.exists():
        return json.loads(out.read_text())
    row = compute()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".partial")
    tmp.write_text(json.dumps(row, indent=1) + "\n")
    tmp.rename(out)
    return row


def train_and_score(run_dir: Path, inputs: Any, config: Any, test_features: Path) -> dict[str, Any]:
    """Train through the train stage, then score the best validation epoch on ``test_features`` once."""
    from mlgraph_cli.stages.evaluate import evaluate
    from mlgraph_cli.stages.train import train

    t0 = time.perf_counter()
    result = train(inputs, config, run_dir=run_dir, force=True)
    seconds = time.perf_counter() - t0
    metrics = evaluate(run_dir, features=test_features, checkpoint="best", device=config.device).metrics
    return {"best_epoch": result.best_epoch, "val_mAP": result.best_map,
            "test": {k: metrics[k] for k in ("mAP", "CF1", "OF1")}, "test_ap": metrics.get("per_label_ap", {}),
            "train_seconds": round(seconds, 1)}


def paired(rows: list[dict[str, Any]], reference: list[dict[str, Any]], value: Callable[[dict], float]) -> dict:
    """Paired difference ``value(row) - value(reference row)`` over the (data seed, training seed)
    pairs both hold: n, mean, standard error (sample std / sqrt n; None under 2 pairs) and
    whether |mean| exceeds two standard errors."""
    ref = {(r["data_seed"], r["seed"]): value(r) for r in reference}
    diffs = [value(r) - ref[key] for r in rows if (key := (r["data_seed"], r["seed"])) in ref]
    if not diffs:
        return {"n": 0, "mean": None, "se": None, "beyond_2se": False}
    mean = statistics.fmean(diffs)
    se = statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else None
    return {"n": len(diffs), "mean": mean, "se": se, "beyond_2se": se is not None and abs(mean) > 2 * se}


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def machine() -> dict[str, Any]:
    """What the numbers were measured on: CPU, cores, torch, and the load average now."""
    import platform

    import torch

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "load": [round(x, 2) for x in os.getloadavg()]}


def _one_load(value: Any) -> float | None:
    """A run's 1-minute load average: a number, or the first of a list (older runs), or None."""
    if isinstance(value, (list, tuple)):
        value = value[0] if value else None
    return float(value) if isinstance(value, (int, float)) else None


def describe(info: dict[str, Any], runs: list[dict[str, Any]]) -> str:
    """One line on the machine (a :func:`machine` dict) and the load the ``runs`` saw as they ended."""
    loads = sorted(x for x in (_one_load(r.get("load")) for r in runs) if x is not None)
    seen = (f"load average (1 min) at the end of the runs {loads[0]:.1f}-{loads[-1]:.1f}, median "
            f"{loads[len(loads) // 2]:.1f}" if loads else "load not recorded")
    return (f"Machine: {info['cpu']}, {info['cores']} cores, torch {info['torch']}, {info['threads']} torch "
            f"thread(s) per run; {seen}.")


def shared_study_args(p) -> None:
    """The arguments of a study that reads benchmarks/heads.py's work folder: the sets and the seeds."""
    p.add_argument("--work", type=Path, default=Path("/tmp/mlgraph-heads"),
                   help="benchmarks/heads.py's work folder (data and runs are shared)")
    p.add_argument("--train", type=int, default=600)
    p.add_argument("--val", type=int, default=200)
    p.add_argument("--test", type=int, default=400)
    p.add_argument("--data-seeds", default="0,1,2")
    p.add_argument("--seeds", default="0,1,2", help="training seeds")
    p.add_argument("--threads", type=int, default=1)
