"""Every option of every command: the ``[default: ...]`` that ``mlgraph CMD --help`` shows (or its
absence) is what the command uses when the option is not given.

The help is rendered as a user sees it (wide, so each option is one row). What the command uses
is read from where the command takes it: the config dataclass the command fills (an option left
None is filled from it), the per-head and per-modality tables of core/training/config.py, or the
option's own typer default. An option whose default the help tells in words, because it is
resolved from the project, the data or the machine at run time, is listed in PROSE with why.
"""

from __future__ import annotations

import dataclasses
import re

import pytest
import typer.main
from typer.testing import CliRunner

from mlgraph_cli.cli.app import app
from mlgraph_cli.core.datasets.fashion_scenes import FashionScenesConfig
from mlgraph_cli.core.embeddings.config import DEFAULT_DIM, EmbedConfig, ReportConfig
from mlgraph_cli.core.evaluation.config import EvaluateConfig
from mlgraph_cli.core.features.config import ExtractConfig
from mlgraph_cli.core.features.yt8m_config import ImportYt8mConfig
from mlgraph_cli.core.graph.config import BuildGraphConfig
from mlgraph_cli.core.inference.config import PredictConfig
from mlgraph_cli.core.training.config import HEAD_CHOICES, MODALITY_DEFAULTS, TrainConfig
from mlgraph_cli.core.training.fit_config import FitConfig

# The config dataclass each command fills from its options (commands without one: their options'
# own defaults are what they use).
CONFIGS = {"build-graph": BuildGraphConfig, "embed": EmbedConfig, "inspect": ReportConfig,
           "import-yt8m": ImportYt8mConfig, "extract": ExtractConfig, "train": TrainConfig,
           "evaluate": EvaluateConfig, "predict": PredictConfig, "fit": FitConfig,
           "make-dataset": FashionScenesConfig}
# (command, flag) -> (config, field) where the field is not the flag's name in the command's own config.
FIELDS = {("train", "--layer"): (TrainConfig, "layers"), ("extract", "--layer"): (ExtractConfig, "layers"),
          ("evaluate", "--no-plots"): (EvaluateConfig, "plots"),
          ("evaluate", "--plots"): (None, None),  # a folder, not the [evaluate] plots switch
          # fit passes these on to the stage commands, whose defaults they keep
          ("fit", "--head"): (TrainConfig, "head"), ("fit", "--epochs"): (TrainConfig, "epochs"),
          ("fit", "--backbone"): (ExtractConfig, "backbone"), ("fit", "--weights"): (ExtractConfig, "weights"),
          ("fit", "--image-size"): (ExtractConfig, "image_size"), ("fit", "--device"): (ExtractConfig, "device")}
_PROJECT = "a path: the project's entry in mlgraph.toml, or a file name beside the input"
_RUN = "the trained run's own value, read from its config.json"
_NONE = "not a setting with a default: the command does without it unless given"
PROSE = {
    ("build-graph", "--output"): _PROJECT, ("build-graph", "--format"): "detected from the annotation file",
    ("build-graph", "--split"): "each annotation format's own default split (VOC trainval, NUS-WIDE train, YOLO train)",
    ("build-graph", "--delimiter"): "sniffed from the CSV file (',' or a tab)",
    ("build-graph", "--label-delimiter"): "the CSV reader's own (';'), beside the other format readers' defaults",
    ("embed", "--output"): _PROJECT, ("embed", "--init"): _PROJECT,
    ("inspect", "--graph"): "the graph recorded in the embeddings file, else the project's",
    ("inspect", "--reference"): "the adjacency the embeddings were fitted to (recorded in the file)",
    ("import-yt8m", "--output"): _PROJECT,
    ("extract", "--annotations"): _PROJECT, ("extract", "--output"): _PROJECT, ("extract", "--labels"): _PROJECT,
    ("extract", "--layer"): "the backbone's last stage (core/features/backbones)",
    ("extract", "--workers"): "from the machine's cores and whether a GPU is there",
    ("extract", "--threads"): "from the machine's cores less --workers",
    ("extract", "--format"): "detected from the annotation file",
    ("extract", "--image-set"): "each annotation format's own default split",
    ("extract", "--label-delimiter"): "the CSV reader's own (';')",
    ("train", "--features"): _PROJECT, ("train", "--val-features"): _PROJECT, ("train", "--embeddings"): _PROJECT,
    ("train", "--graph"): _PROJECT, ("train", "--labels"): _PROJECT, ("train", "--output"): "runs/train/exp, numbered",
    ("train", "--annotations"): _PROJECT,
    ("evaluate", "--features"): _PROJECT, ("evaluate", "--output"): "RUN/eval-<data>.json, named after the data",
    ("evaluate", "--threshold"): _RUN, ("evaluate", "--plots"): "beside -o",
    ("evaluate", "--top-k-segments"): "the Kaggle metric's K (core/evaluation), for ratings files only",
    ("predict", "--model"): "the most recent run under the project's runs folder",
    ("predict", "--topk"): "every label that passes --threshold", ("predict", "--threshold"): _RUN,
    ("predict", "--format"): "from -o's suffix",
    ("make-dataset", "--source"): "the photographs bundled with the package (core/datasets/fashion_mnist.py)", ("export", "--opset"): "the ONNX exporter's, recorded in the card",
    ("fit", "--images"): "the annotation file's folder", ("fit", "--val-annotations"): "drawn from the training file",
    ("fit", "--val-images"): "--images", ("fit", "--test-annotations"): "drawn from the training file",
    ("fit", "--test-images"): "--images", ("fit", "--output"): "runs/fit/exp, or the project's artifacts",
}
# Computed defaults whose text (the field's metadata) can not be compared with one value, and why.
COMPUTED = {
    ("train", "--amp"): "decided by the device the run lands on (core/training/trainer.py: on for CUDA)",
    ("evaluate", "--threshold"): "the run's own threshold, read from its config.json (0.5 unless trained with another)",
}


def _rows(command: str) -> list[str]:
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "1500"})
    assert result.exit_code == 0, result.output
    return [line for line in result.stdout.splitlines() if line.startswith("│")]


def _shown(rows: list[str], flag: str) -> str | None:
    """The ``[default: X]`` on the help row of ``flag``, or None."""
    pattern = re.compile(rf"^│\s+(\*\s+)?(-\w\s+)?{re.escape(flag)}(?![\w-])")
    row = next((r for r in rows if pattern.search(r) or re.search(rf"^│\s+--[\w-]+\s+{re.escape(flag)}\s", r)),
               None)
    assert row is not None, f"{flag}: no row in --help"
    match = re.search(r"\[default: (.*?)\]\s*│$", row)
    return match.group(1) if match else None


def _text(value) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _per_modality(field: str, shown: str) -> None:
    """``0 on images (20 for cma, ms-cma), 10 on video`` against what every head trains with."""
    from mlgraph_cli.core.models import HEADS, resolve_head

    said = {}
    for value, where, heads in re.findall(r"(\S+) on (images|video)(?: \(([^)]*)\))?", shown):
        modality = "image" if where == "images" else "video"
        said.update({(modality, h): float(value) for h in HEAD_CHOICES})
        for part in filter(None, (heads or "").split("; ")):
            other, names = part.split(" for ")
            said.update({(modality, h): float(other) for h in names.split(", ")})
    for modality in MODALITY_DEFAULTS:
        for head in HEAD_CHOICES:
            try:
                name = resolve_head(head, modality)
            except Exception:  # not a head of this modality (frame-max on images)
                continue
            assert name in HEADS
            used = getattr(TrainConfig(head=head).for_modality(modality, name), field)
            assert said[(modality, head)] == used, (field, modality, head, shown)


def _computed(command: str, flag: str, field: str, shown: str | None) -> None:
    """A default the help tells in words (the field's metadata): checked against where it is computed."""
    if field in MODALITY_DEFAULTS["image"]:
        return _per_modality(field, shown)
    if field == "image_size":
        from mlgraph_cli.core.features.backbones.build import DEFAULT_IMAGE_SIZE, LITE0

        assert shown == f"{DEFAULT_IMAGE_SIZE['torchvision']} torchvision, {DEFAULT_IMAGE_SIZE[LITE0]} {LITE0}"
    elif field == "top_k_segments":
        from mlgraph_cli.core.evaluation.video_metrics import SEGMENT_TOP_K

        assert shown.startswith(f"{SEGMENT_TOP_K}, "), shown
    elif field == "dim":
        assert shown == str(DEFAULT_DIM)
    elif field == "head":  # picked by what the features hold (core/training/config.py default_head)
        from mlgraph_cli.core.training.config import default_head

        picks = (default_head("image", True), default_head("image", False), default_head("video", False))
        assert picks == ("ms-cma", "cma", "cma")
        assert shown == f"{picks[0]} on image features with two maps (extract's default), {picks[1]} on one map and on video"
    elif field == "tensorboard":
        from mlgraph_cli.core.training.eventlog import tensorboard_installed, wants_log

        assert shown == "on when tensorboard is installed" and wants_log(None) == tensorboard_installed()
    else:
        assert (command, flag) in COMPUTED, f"{command} {flag}: a computed default nobody checks"


def _commands():
    group = typer.main.get_command(app)
    return [(name, cmd) for name, cmd in group.commands.items()]


@pytest.mark.parametrize("command,click_command", _commands(), ids=[n for n, _ in _commands()])
def test_every_option_shows_the_default_the_command_uses(command, click_command, monkeypatch):
    import typer.rich_utils

    # typer reads TERMINAL_WIDTH once, when it is first imported (other tests render at 100
    # columns): a wide help puts each option on one row
    monkeypatch.setattr(typer.rich_utils, "MAX_WIDTH", 1500)
    rows = _rows(command)
    config = CONFIGS.get(command)
    for param in click_command.params:
        if param.param_type_name != "option" or param.name == "help":
            continue
        flag = max(param.opts, key=len)
        shown = _shown(rows, flag)
        cls, field = FIELDS.get((command, flag), (config, param.name))
        fields = {f.name: f for f in dataclasses.fields(cls)} if cls is not None else {}
        where = f"{command} {flag}"
        if param.is_flag and param.default is False and not param.secondary_opts:
            assert shown is None, f"{where}: an off switch shows no default"
            if field in fields and (command, flag) != ("evaluate", "--no-plots"):
                assert fields[field].default in (False, None), f"{where}: the config turns it on"
            continue
        if param.default is not None:  # the option's own default is what the command uses
            assert shown is not None, f"{where}: uses {param.default!r} but shows no default"
            own = param.default
            if param.is_flag and param.secondary_opts:
                own = (param.opts if own else param.secondary_opts)[0].lstrip("-")
            assert shown == _text(own if not hasattr(own, "name") else own), where
            if field in fields:
                assert param.default == fields[field].default, f"{where}: differs from {cls.__name__}.{field}"
            continue
        if field not in fields:  # nothing to fill from: no default, or one told in words
            told = shown is not None or "Default:" in (param.help or "")
            assert told == ((command, flag) in PROSE), f"{where}: a default in words needs a reason in PROSE"
            continue
        f = fields[field]
        if "default" in f.metadata:
            assert shown == f.metadata["default"], where
            _computed(command, flag, field, shown)
        elif f.default is None or f.default is dataclasses.MISSING:
            assert shown is None, f"{where}: {cls.__name__}.{field} has no default, the help shows {shown!r}"
            assert "Default:" not in (param.help or "") or (command, flag) in PROSE, f"{where}: say in PROSE why"
        else:
            assert shown == _text(f.default), f"{where}: shows {shown!r}, {cls.__name__}.{field} is {f.default!r}"
