"""``mlgraph demo``: the whole pipeline on the embedded fashion-scenes data, no network.

The demo runs the same commands a user would type, in the project folder that
``make-dataset`` writes, each printed before it runs:

make-dataset -> build-graph -> embed -> extract (train, val, test) -> train -> evaluate -> predict --explain
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Literal, Optional

import typer
from rich.rule import Rule

from mlgraph_cli.cli._common import err, fail, handle_errors, summary
from mlgraph_cli.cli._steps import inside, run_step
from mlgraph_cli.core.training.config import HEAD_CHOICES  # plain tuples: no torch

EPILOG = "Example: mlgraph demo mlgraph-demo --epochs 8"
# What the demo writes into the project beyond make-dataset's files; --force replaces these too.
DEMO_OUTPUTS = ("artifacts/", "runs/train/demo/", "explain/")


def demo(
    folder: Annotated[Path, typer.Argument(help="Where the demo project goes.")] = Path("mlgraph-demo"),
    *,
    train: Annotated[int, typer.Option(min=20, help="Training scenes.")] = 600,
    val: Annotated[int, typer.Option(min=10, help="Validation scenes.")] = 200,
    test: Annotated[int, typer.Option(min=10, help="Test scenes.")] = 200,
    epochs: Annotated[int, typer.Option(min=1, help="Training epochs.")] = 12,
    head: Annotated[Optional[Literal[HEAD_CHOICES]], typer.Option(help="Classification head, as `mlgraph train --head`; left out, "
                                                "train's default (ms-cma on the demo's two-map features).",
                                                show_default=False)] = None,
    seed: Annotated[int, typer.Option(help="Seed of the data and of training.")] = 0,
    force: Annotated[bool, typer.Option("--force", help=(
        "Replace a demo folder made earlier; files the demo did not make (or changed since) are listed and "
        "kept."))] = False,
) -> None:
    """Run the whole pipeline on generated fashion scenes: data, graph, embeddings, features, model, metrics, predictions."""
    from importlib.resources import files

    started = time.perf_counter()
    folder = folder.resolve()
    if folder.exists() and any(folder.iterdir()) and not force:
        fail(f"{folder}: the folder exists and is not empty (use --force to replace a demo made earlier, "
             "or name another folder)")
    replace = force and folder.is_dir() and any(folder.iterdir())
    if replace:  # make-dataset knows its own files; the demo adds what it writes itself
        from mlgraph_cli.stages.make_dataset import check_replaceable

        check_replaceable(folder, also=DEMO_OUTPUTS, who="the demo",
                          fix="move them out of the folder, or name another folder")
    vectors = Path(str(files("mlgraph_cli") / "data" / "vectors" / "glove-6b-50d-fashion.txt"))
    run_step(["make-dataset", "fashion-scenes", str(folder), "--train", str(train), "--val", str(val), "--test",
          str(test), "--seed", str(seed)] + (["--force", "--overwrite-all"] if replace else []))
    with inside(folder):
        # Inside the project folder every command finds its inputs in mlgraph.toml.
        run_step(["build-graph"])
        run_step(["embed", "--init", str(vectors), "--seed", str(seed)])
        run_step(["extract", "--split", "train"])
        run_step(["extract", "--split", "val"])
        run_step(["extract", "--split", "test"])
        run_step(["train", *(["--head", head] if head else []), "--epochs", str(epochs), "--seed", str(seed), "--name",
                  "demo", "--force"])
        run_step(["evaluate", "--features", "artifacts/test-features.h5", "-o", "artifacts/test-metrics.json"])
        samples = sorted((folder / "images" / "test").glob("*.jpg"))[:4]
        run_step(["predict", *[str(p.relative_to(folder)) for p in samples], "--topk", "3", "--explain", "explain"])
    err.print(Rule(style="dim"))
    minutes, seconds = divmod(time.perf_counter() - started, 60)
    summary(
        f"Demo finished in {int(minutes)} min {seconds:.0f} s. Everything is in {folder}:\n"
        f"  mlgraph.toml                   the project file (run any command there without paths)\n"
        f"  images/, annotations/          the generated scenes and their COCO annotations\n"
        f"  artifacts/graph.json           label co-occurrence graph\n"
        f"  artifacts/embeddings.h5        ASGE label embeddings\n"
        f"  artifacts/*features.h5         EfficientNet-Lite0 feature maps\n"
        f"  runs/train/demo/               the trained model, config.json, metrics.jsonl\n"
        f"  artifacts/test-metrics.json    test metrics\n"
        f"  explain/                       attention maps of the predictions above\n"
        f"Next: cd {folder} && mlgraph predict images/test --topk 5"
    )


def register(app: typer.Typer) -> None:
    app.command("demo", epilog=EPILOG)(handle_errors(demo))
