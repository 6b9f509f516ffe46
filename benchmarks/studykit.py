"""What the head studies share (benchmarks/fair.py, benchmarks/heads.py): the data, the runs, the statistics.

- Data: one fashion-scenes project per data seed d (`mlgraph make-dataset fashion-scenes --seed
  100 + d`, `mlgraph build-graph`, `mlgraph extract --layer stage5 --layer head` per split), plus a
  copy of each features file with the finer `stage5` map as its only map and a rare-label subset.
- Embeddings made by the embed stage, one file per kind and training seed.
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


def prepare(work: Path, data_seed: int, sizes: Any, *, stage5: bool = True, rare: bool = True) -> Path:
    """The project of one data seed: dataset, graph, two-stage features (``sizes``: .train, .val,
    .test), and, when asked, the stage5-only copies and the rare-label training subset."""
    data = project(work, data_seed)
    if not (data / "mlgraph.toml").exists():
        mlgraph("make-dataset", "fashion-scenes", str(data), "--train", str(sizes.train), "--val", str(sizes.val),
                "--test", str(sizes.test), "--seed", str(100 + data_seed), cwd=ROOT)
    if not (data / "artifacts" / "graph.json").exists():
        mlgraph("build-graph", cwd=data)
    for split, name in SPLITS:
        if not (data / "artifacts" / f"{name}.h5").exists():
            mlgraph("extract", "--split", split, "--layer", "stage5", "--layer", "head", "-q", cwd=data)
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


def embeddings(data: Path, kind: str, seed: int, command: str) -> Path:
    """The embeddings file of ``kind`` for one training seed, made by the embed stage.

    kinds: "default" (a plain `mlgraph embed` today), "asge" (ASGE fitted to A, --self-weight 0),
    "asge-lam<L>" (--self-weight L), "onehot" (the identity), "onehot-<d>" (orthonormal rows in d
    dimensions), "word" (the packaged GloVe vectors as they are)."""
    from mlgraph_cli.stages.embed import EmbedConfig, embed

    path = data / "artifacts" / "emb" / f"{kind}-s{seed}.h5"
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
    embed(data / "artifacts" / "graph.json", path, config, init=init, command=command)
    return path


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
