"""The steps of ``mlgraph fit`` as the commands a user would type, and what a rerun does with each.

Files: outside a project (or with ``-o``) everything goes into one folder (``runs/fit/exp`` by
default): ``splits/``, ``graph.json``, ``embeddings.h5``, ``features.h5``, ``val-features.h5``,
``test-features.h5``, ``run/``, ``metrics.json`` and ``fit.json``. In a project folder with no
annotations given, the inputs are ``[dataset]``'s and the outputs its ``[artifacts]`` (the run in
``<runs>/fit``, the test metrics beside the test features, ``fit.json`` beside the graph).

A rerun (docs/fit.md): a step that is up to date (``manifest``) is skipped; ``extract`` run
again resumes its interrupted file by itself; ``train`` becomes ``--resume RUN`` when the run
was interrupted with the same settings, ``--resume RUN --epochs N`` when only a larger
``--epochs`` is new, and a new run (``--force`` over the old one) otherwise.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlgraph_cli.core.io.jsonfile import read_json
from mlgraph_cli.core.project import merge_config
from mlgraph_cli.core.training import checkpoint as ckpt
from mlgraph_cli.core.training.fit_config import FitConfig
from mlgraph_cli.core.training.run_config import CONFIG
from mlgraph_cli.core.training.run_dir import is_run_dir
from mlgraph_cli.errors import MlgraphError
from mlgraph_cli.stages.fit.manifest import MANIFEST, Manifest, fingerprint
from mlgraph_cli.stages.fit.splits import SPLITS, Drawn, draw_splits, has_split_column

# What a train step makes: its outputs, and the evaluate step's input (a file written into the run by
# hand, such as `mlgraph evaluate RUN`'s eval-*.json, changes none of them)
RUN_FILES = (CONFIG, "best.safetensors", "last.safetensors", ckpt.METRICS)
# Annotations that describe a whole dataset (a folder: VOC, NUS-WIDE; a YOLO data.yaml) rather than one file of rows
_DATASET_SUFFIXES = (".yaml", ".yml")


@dataclass
class FitInputs:
    """What ``mlgraph fit`` was given (None: not given)."""

    annotations: Path | None = None
    images: Path | None = None
    val_annotations: Path | None = None
    val_images: Path | None = None
    test_annotations: Path | None = None
    test_images: Path | None = None


@dataclass
class StageOptions:
    """The few stage options fit passes on when given (None: the stage's default or its mlgraph.toml table)."""

    head: str | None = None
    head_options: list[str] = field(default_factory=list)  # KEY=VALUE, passed to train as --head-option
    epochs: int | None = None
    backbone: str | None = None
    weights: str | None = None
    image_size: int | None = None
    device: str | None = None
    seed: int | None = None
    quiet: bool = False


@dataclass
class Step:
    """One step: its name in fit.json, its command line (without ``mlgraph``), what it reads and makes."""

    name: str
    argv: list[str]
    inputs: list[Path]
    outputs: list[Path]
    exclude: tuple[Path, ...] = ()

    def fingerprint_inputs(self) -> dict[str, str | None]:
        return {os.fspath(p): fingerprint(p, exclude=self.exclude) for p in self.inputs}

    def fingerprint_outputs(self) -> dict[str, str | None]:
        return {os.fspath(p): fingerprint(p, every_file=True) for p in self.outputs}


@dataclass
class FitPlan:
    """Where everything goes, the split to draw first (if any), and the steps after it."""

    folder: Path
    manifest: Manifest
    data: dict[str, Any]
    paths: dict[str, Path]
    config: FitConfig
    options: StageOptions
    inputs: FitInputs
    split: Step | None
    shares: dict[str, float] = field(default_factory=dict)
    has_column: bool = False  # the training CSV has the split column
    format: str | None = None
    force: bool = False

    def steps(self) -> list[Step]:
        """The commands after the split, from the split files it left (call it once the split is done)."""
        p, o = self.paths, self.options
        exclude = (self.folder, p["run"].parent)
        ann = {s: self.inputs.annotations if s == "train" else getattr(self.inputs, f"{s}_annotations")
               for s in SPLITS}
        fmt = {s: self.format for s in SPLITS}
        if self.split is not None:
            for s in SPLITS:
                drawn = p["splits"] / f"{s}.csv"
                if drawn.is_file() and (s == "train" or ann[s] is None):  # a split given as a file wins
                    ann[s], fmt[s] = drawn, None
        graph_fmt = ["--format", fmt["train"]] if fmt["train"] else []
        steps = [Step("build-graph", ["build-graph", str(ann["train"]), "-o", str(p["graph"]), *graph_fmt],
                      [ann["train"]], [p["graph"]]),
                 Step("embed", ["embed", str(p["graph"]), "-o", str(p["embeddings"]), *_opt("--seed", o.seed)],
                      [p["graph"]], [p["embeddings"]])]
        extract_opts = [*_opt("--backbone", o.backbone), *_opt("--weights", o.weights),
                        *_opt("--image-size", o.image_size), *_opt("--device", o.device)]
        features = {}
        for s in SPLITS:
            if ann[s] is None:
                continue
            images = self._images(s, ann[s])
            features[s] = p["features" if s == "train" else f"{s}_features"]
            argv = ["extract", *([str(images)] if images else []), "-a", str(ann[s]), "-o", str(features[s]),
                    *(["--format", fmt[s]] if fmt[s] else []), *extract_opts]
            steps.append(Step(f"extract {s}", argv, [x for x in (images, ann[s]) if x is not None], [features[s]],
                              exclude))
        train = ["train", "--features", str(features["train"])]
        if "val" in features:
            train += ["--val-features", str(features["val"])]
        train += ["--embeddings", str(p["embeddings"]), "--graph", str(p["graph"]), "-o", str(p["run"]),
                  *_opt("--head", o.head), *[a for kv in o.head_options for a in ("--head-option", kv)],
                  *_opt("--epochs", o.epochs), *_opt("--seed", o.seed),
                  *_opt("--device", o.device)]
        run_files = [p["run"] / name for name in RUN_FILES]
        steps.append(Step("train", train, [features["train"], *([features["val"]] if "val" in features else []),
                                           p["embeddings"], p["graph"]], run_files))
        if "test" in features:
            steps.append(Step("evaluate", ["evaluate", str(p["run"]), "--features", str(features["test"]), "-o",
                                           str(p["metrics"]), *_opt("--device", o.device)],
                              [*run_files, features["test"]], [p["metrics"]]))
        return steps

    def draw(self) -> Drawn:
        """Draw the split files (the split step), recorded in fit.json as any step."""
        self.manifest.start(self.split, self.split.argv, self.data)
        drawn = draw_splits(self.inputs.annotations, self.paths["splits"], shares=self.shares, seed=self.config.seed,
                            column=self.config.split_column, format=self.format)
        self.manifest.finish(self.split)
        return drawn

    def action(self, step: Step) -> list[str] | None:
        """The command line to run for ``step`` now (with ``-q`` when fit is quiet: how a step prints
        is not what it makes), or None when it is up to date."""
        if not self.force and self.manifest.up_to_date(step):
            return None
        argv = self._action(step)
        return argv + ["-q"] if self.options.quiet and step.name != "split" else argv

    def _action(self, step: Step) -> list[str]:
        if step.name != "train":
            return step.argv  # extract run again resumes an interrupted file by itself
        run = self.paths["run"]
        held = (run / ckpt.RESUME).is_file()  # a run that finished an epoch: replacing it takes --force
        rec = self.manifest.record("train")
        same_inputs = rec is not None and rec.get("inputs") == step.fingerprint_inputs()
        if is_run_dir(run) and not self.force and same_inputs:
            if rec.get("argv") == step.argv and not rec.get("done"):
                return ["train", "--resume", str(run)]  # interrupted: go on where it stopped
            extended = self._extension(rec["argv"], step.argv, run) if held else None
            if extended is not None:
                return ["train", "--resume", str(run), "--epochs", str(extended)]
        return step.argv + (["--force"] if held else [])

    def _extension(self, before: list[str], now: list[str], run: Path) -> int | None:
        """The new epoch count when ``now`` differs from ``before`` only by a larger --epochs."""
        if self.options.epochs is None or _without(before, "--epochs") != _without(now, "--epochs"):
            return None
        try:
            started = int(read_json(run / ckpt.ARGS, fix="")["config"]["epochs"])
        except (MlgraphError, KeyError, TypeError, ValueError):
            return None
        return self.options.epochs if self.options.epochs > started else None

    def _images(self, split: str, annotations: Path) -> Path | None:
        """The images folder of ``split``: given, or the training one, or the annotation file's folder
        (none for a dataset folder or data.yaml, whose reader knows its images)."""
        given = self.inputs.images if split == "train" else getattr(self.inputs, f"{split}_images")
        if given is not None:
            return given
        if split != "train" and self.inputs.images is not None:
            return self.inputs.images
        source = self.inputs.annotations if annotations.parent == self.paths["splits"] else annotations
        return None if _is_dataset(source) else source.parent


def run_plan(inputs: FitInputs, options: StageOptions, overrides: dict[str, Any], *, project=None,
             output: str | os.PathLike | None = None, force: bool = False) -> FitPlan:
    """``mlgraph fit``'s plan: FitConfig's defaults, then ``[fit]`` of ``project``, then ``overrides``
    (None = not given); see :func:`plan_fit`."""
    config = merge_config(FitConfig, project, "fit", overrides)
    return plan_fit(inputs, options, config, project=project, output=output, force=force)


def plan_fit(inputs: FitInputs, options: StageOptions, config: FitConfig, *, project=None,
             output: str | os.PathLike | None = None, force: bool = False) -> FitPlan:
    """Where a fit of ``inputs`` keeps its files, and its split step. ``project``: the folder's
    project; its ``[dataset]`` gives the inputs when no annotations are given."""
    in_project = inputs.annotations is None and project is not None
    if inputs.annotations is None and project is None:
        raise MlgraphError("give the training annotations, e.g. `mlgraph fit train.csv` (or run `mlgraph fit` in a "
                           "project folder made by `mlgraph init`)")
    fmt = None
    if in_project:
        given = {k: v for k, v in dataclasses.asdict(inputs).items() if v is not None}
        found = {f.name: project.dataset_path(f.name) for f in dataclasses.fields(FitInputs)}
        inputs = FitInputs(**{**found, **given})
        fmt = project.dataset.get("format") or None
        if inputs.annotations is None:
            raise MlgraphError(f"{project.file}: [dataset] names no annotations (add `annotations = ...`, or give "
                               "them: `mlgraph fit train.csv`)")
    paths = _paths(project if in_project and output is None else None, Path(output or config.folder))
    folder = paths["manifest"].parent
    data = {k: (os.fspath(Path(v).resolve()) if v is not None else None) for k, v in dataclasses.asdict(inputs).items()}
    manifest = Manifest.load(folder)
    if output is not None or not in_project:  # a project's artifacts are the project's to rewrite
        _check_folder(folder, manifest, data, force)
    split, shares, has_column = None, {}, False
    if not _is_dataset(inputs.annotations):
        shares = {"val": 0.0 if inputs.val_annotations else config.val,
                  "test": 0.0 if inputs.test_annotations else config.test}
        has_column = has_split_column(inputs.annotations, config.split_column)
        if has_column or any(shares.values()):
            argv = ["split", str(inputs.annotations), "--val", f"{shares['val']:g}", "--test", f"{shares['test']:g}",
                    "--seed", str(config.seed), "--split-column", config.split_column]
            split = Step("split", argv, [inputs.annotations], [paths["splits"] / f"{s}.csv" for s in SPLITS])
    return FitPlan(folder=folder, manifest=manifest, data=data, paths=paths, config=config, options=options,
                   inputs=inputs, split=split, shares=shares, has_column=has_column, format=fmt, force=force)


def _paths(project, folder: Path) -> dict[str, Path]:
    if project is not None:
        art = project.artifact("graph").parent
        return {"graph": project.artifact("graph"), "embeddings": project.artifact("embeddings"),
                "features": project.artifact("features"), "val_features": project.artifact("val_features"),
                "test_features": project.artifact("test_features"), "run": project.artifact("runs") / "fit",
                "metrics": project.artifact("test_features").parent / "test-metrics.json", "splits": art / "splits",
                "manifest": art / MANIFEST}
    return {"graph": folder / "graph.json", "embeddings": folder / "embeddings.h5", "features": folder / "features.h5",
            "val_features": folder / "val-features.h5", "test_features": folder / "test-features.h5",
            "run": folder / "run", "metrics": folder / "metrics.json", "splits": folder / "splits",
            "manifest": folder / MANIFEST}


def _check_folder(folder: Path, manifest: Manifest, data: dict[str, Any], force: bool) -> None:
    """A fit folder holds one dataset's fit: another dataset's, or a folder of other files, is not overwritten."""
    if folder.exists() and not folder.is_dir():
        raise MlgraphError(f"{folder}: exists and is not a folder (choose another -o)")
    if not manifest.exists:
        if folder.is_dir() and any(folder.iterdir()) and not force:
            raise MlgraphError(f"{folder}: the folder is not empty and holds no {MANIFEST}, so it is not a fit folder "
                               "(choose another -o, or pass --force to write into it)")
        return
    before = manifest.data or {}
    if before and before != data and not force:
        was = before.get("annotations")
        raise MlgraphError(f"{folder}: holds a fit of other data ({was}) (choose another -o, or pass --force to "
                           "replace it)")


def _is_dataset(path: Path) -> bool:
    return path.is_dir() or path.suffix.lower() in _DATASET_SUFFIXES


def _opt(flag: str, value: Any) -> list[str]:
    return [] if value is None else [flag, str(value)]


def _without(argv: list[str], flag: str) -> list[str]:
    """``argv`` without ``flag`` and its value."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == flag:
            skip = True
        else:
            out.append(a)
    return out
