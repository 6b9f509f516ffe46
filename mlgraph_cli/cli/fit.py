"""``mlgraph fit``: annotations (and images) to a trained, evaluated run in one command.

It runs the stages a user would type, each printed before it runs (as ``mlgraph demo`` does), and
keeps every file in one folder, so any stage can be run again by hand:

split -> build-graph -> embed -> extract (train, val, test) -> train -> evaluate (test, once)

A rerun skips the steps that are up to date and resumes an interrupted extract or train
(stages/fit/plan.py).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Literal, Optional

import typer
from rich.rule import Rule

from mlgraph_cli.cli._common import err, handle_errors, load_project, summary
from mlgraph_cli.cli._options import config_option, given, key_values, plain_option
from mlgraph_cli.cli._steps import run_step, show_step
from mlgraph_cli.core.features.config import ExtractConfig  # plain dataclasses and tuples: no torch
from mlgraph_cli.core.training.config import HEAD_CHOICES, TrainConfig
from mlgraph_cli.core.training.fit_config import FitConfig

EPILOG = ("Example: mlgraph fit photos/labels.csv --epochs 20   (photos/labels.csv: path,labels rows; "
          "files in runs/fit/exp)")
DATA = "Data"


def fit(
    annotations: Annotated[Optional[Path], typer.Argument(
        help="Training annotations (any format build-graph reads: CSV/JSONL, COCO, VOC, ...). Default: \\[dataset] "
             "annotations in a project folder.", show_default=False)] = None,
    *,
    images: Annotated[Optional[Path], plain_option("--images", help="The folder the annotation file names are "
                                                   "relative to. Default: the annotation file's folder.",
                                                   panel=DATA)] = None,
    val_annotations: Annotated[Optional[Path], plain_option("--val-annotations", help="Validation annotations. "
                                                            "Default: drawn from the training file (--val).",
                                                            panel=DATA)] = None,
    val_images: Annotated[Optional[Path], plain_option("--val-images", help="Their images folder. Default: --images.",
                                                       panel=DATA)] = None,
    test_annotations: Annotated[Optional[Path], plain_option("--test-annotations", help="Test annotations, evaluated "
                                                             "once at the end. Default: drawn (--test).",
                                                             panel=DATA)] = None,
    test_images: Annotated[Optional[Path], plain_option("--test-images", help="Their images folder. Default: "
                                                        "--images.", panel=DATA)] = None,
    val: Annotated[Optional[float], config_option(FitConfig, "val", min=0.0, max=0.99, help="Share of the training "
                                                  "file's images drawn for validation when neither --val-annotations "
                                                  "nor a split column gives them; 0 = none.", panel=DATA)] = None,
    test: Annotated[Optional[float], config_option(FitConfig, "test", min=0.0, max=0.99, help="The same for the test "
                                                   "set; 0 = no test evaluation.", panel=DATA)] = None,
    split_column: Annotated[Optional[str], config_option(FitConfig, "split_column", help="CSV column naming each "
                                                         "image's split (train, val, test), used when present.",
                                                         panel=DATA)] = None,
    seed: Annotated[Optional[int], config_option(FitConfig, "seed", help="Seed of the split (and, when given, of "
                                                 "embed and train).")] = None,
    head: Annotated[Optional[Literal[HEAD_CHOICES]], config_option(TrainConfig, "head", help="Classification head, "
                                                                   "as `mlgraph train --head`.")] = None,
    head_option: Annotated[Optional[list[str]], plain_option("--head-option", metavar="KEY=VALUE", help="An option "
                                                             "of the head, as `mlgraph train --head-option`; repeat "
                                                             "for more.")] = None,
    epochs: Annotated[Optional[int], config_option(TrainConfig, "epochs", min=1, help="Training epochs; a larger "
                                                   "count on a rerun extends the run.")] = None,
    backbone: Annotated[Optional[str], config_option(ExtractConfig, "backbone", "--backbone", "-b", help="As "
                                                     "`mlgraph extract --backbone`.")] = None,
    weights: Annotated[Optional[str], config_option(ExtractConfig, "weights", "--weights", "-w", help="Backbone "
                                                    "weights, as `mlgraph extract --weights`.")] = None,
    image_size: Annotated[Optional[int], config_option(ExtractConfig, "image_size", min=1, help="Input side in "
                                                       "px.")] = None,
    device: Annotated[Optional[str], config_option(ExtractConfig, "device", help="auto, cpu, cuda, cuda:N, for "
                                                   "every stage.")] = None,
    output: Annotated[Optional[Path], plain_option("-o", "--output", help="The fit folder. Default: runs/fit/exp (in "
                                                   "a project with no annotations given: its \\[artifacts]).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Run every step again, and write into a folder that holds "
                                                        "another fit or other files.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars in the stages.")] = False,
) -> None:
    """Train and evaluate a model from annotations in one command: split, build-graph, embed, extract, train and
    evaluate, each printed as it runs, every file kept in one folder. Run it again to skip what is up to date
    and resume what was interrupted. Stage settings beyond these options come from the stages' own tables in
    mlgraph.toml."""
    from mlgraph_cli.stages.fit.plan import FitInputs, StageOptions, run_plan

    started = time.perf_counter()
    inputs = FitInputs(annotations=annotations, images=images, val_annotations=val_annotations, val_images=val_images,
                       test_annotations=test_annotations, test_images=test_images)
    key_values(head_option, "--head-option")  # a malformed KEY=VALUE is refused before any step runs
    options = StageOptions(head=head, head_options=head_option or [], epochs=epochs, backbone=backbone,
                           weights=weights, image_size=image_size, device=device, seed=seed, quiet=quiet)
    plan = run_plan(inputs, options, given(val=val, test=test, seed=seed, split_column=split_column),
                    project=load_project(), output=output, force=force)
    split, config = plan.split, plan.config
    if split is not None:
        shares = " and ".join(f"{share:g} for {s}" for s, share in plan.shares.items() if share)
        draw = f"draw {shares} (seed {config.seed})" if shares else ""
        by = f"by its {config.split_column!r} column" if plan.has_column else ""
        how = f"{by}; splits it lacks: {draw}" if by and draw else by or draw
        what = f"split {plan.inputs.annotations}: {how} -> {plan.paths['splits']}"
        if plan.action(split) is None:
            show_step(what, "up to date")
        else:
            show_step(what)
            drawn = plan.draw()
            counts = ", ".join(f"{n:,} {s}" for s, n in drawn.counts.items())
            summary(f"Split {plan.inputs.annotations} ({drawn.how}): {counts} -> {plan.paths['splits']}")
    ran = 0
    for step in plan.steps():
        argv = plan.action(step)
        if argv is None:
            show_step(step.argv, "up to date")
            continue
        plan.manifest.start(step, argv, plan.data)
        run_step(argv)
        plan.manifest.finish(step)
        ran += 1
    err.print(Rule(style="dim"))
    _summary(plan, ran, time.perf_counter() - started)


def _summary(plan, ran: int, seconds: float) -> None:
    p = plan.paths
    metrics = p["metrics"]
    if metrics.is_file():
        doc = json.loads(metrics.read_text(encoding="utf-8"))
        figures = ", ".join(f"{k} {doc[k]:.2f}" for k in ("mAP", "CF1", "OF1") if isinstance(doc.get(k), float))
        tested = f"test {figures} ({metrics})"
    else:
        tested = "no test split, nothing evaluated (give --test-annotations, or --test 0.1)"
    minutes, rest = divmod(seconds, 60)
    done = f"{ran} step(s) run" if ran else "everything was up to date"
    summary(f"Fit finished in {int(minutes)} min {rest:.0f} s ({done}): {tested}. The run is {p['run']}; every "
            f"stage's file is in {plan.folder} (fit.json lists each command).\n"
            f"Next: mlgraph predict IMAGES --model {p['run']} --topk 5")


def register(app: typer.Typer) -> None:
    app.command("fit", epilog=EPILOG)(handle_errors(fit))
