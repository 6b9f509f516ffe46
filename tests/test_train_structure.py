"""The shape of the training path: one trainer, one head registry, modules of a readable size,
a CLI module that only reads options and calls (the stage layering itself: tests/test_structure.py)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "mlgraph_cli"
TRAINING_MODULES = [
    "core/training/trainer.py", "core/models/classifier.py", "core/training/optim.py", "core/training/config.py", "core/training/data.py",
    "core/training/run_config.py", "core/training/checkpoint.py", "core/training/batches.py", "core/inference/frames.py",
    "core/models/__init__.py", "core/models/temporal.py", "core/models/cma.py", "core/models/baselines.py",
    "stages/train/__init__.py", "stages/train/inputs.py", "stages/train/images.py", "cli/train.py",
]

def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("module", TRAINING_MODULES)
def test_training_modules_stay_under_300_lines(module):
    lines = len((PACKAGE / module).read_text(encoding="utf-8").splitlines())
    assert lines <= 300, f"{module}: {lines} lines"


def test_per_modality_defaults_read_as_help_from_the_tables():
    from mlgraph_cli.core.training.config import modality_default_text

    assert modality_default_text("epochs") == "20 on images, 40 on video"
    assert modality_default_text("probe_epochs") == "0 on images (20 for cma, ms-cma), 10 on video"
    assert modality_default_text("weight_decay") == "0.0001 on images, 0.0001 on video (1 for gap, gmp, frame-max)"


def test_head_choices_and_per_head_defaults_name_registered_heads():
    from mlgraph_cli.core.models import HEADS, heads_for
    from mlgraph_cli.core.training.config import HEAD_CHOICES, HEAD_TRAINING_DEFAULTS, MODALITY_DEFAULTS

    assert set(HEAD_CHOICES) == {*heads_for("image"), *heads_for("video")} and len(set(HEAD_CHOICES)) == len(HEAD_CHOICES)
    assert set(HEAD_TRAINING_DEFAULTS) <= set(HEADS)
    assert all(set(d) <= set(MODALITY_DEFAULTS["image"]) for d in HEAD_TRAINING_DEFAULTS.values())


def test_cli_train_imports_only_its_stage_and_common_helpers():
    names = {n for n in _imports(PACKAGE / "cli" / "train.py") if n.startswith("mlgraph_cli.")}
    allowed = ("mlgraph_cli.cli._common", "mlgraph_cli.cli._options", "mlgraph_cli.stages.train", "mlgraph_cli.errors",
               "mlgraph_cli.core.training.distributed", "mlgraph_cli.core.training.config",
               "mlgraph_cli.core.graph.config")  # stages.train also covers stages.train.inputs (TrainInputs)
    assert all(n.startswith(allowed) for n in names), sorted(names)
    assert "mlgraph_cli.core.models" not in names and "mlgraph_cli.core.project" not in names


def test_one_trainer_no_second_loop():
    """Heads are trained by the Trainer alone: no other module of the package, and no benchmark,
    runs a backward pass (ASGE fits label embeddings, not a head, with its own small loop)."""
    own_loops = {"core/training/trainer.py", "core/embeddings/asge.py"}
    sources = {str(p.relative_to(PACKAGE)): p for p in PACKAGE.rglob("*.py")}
    sources.update({f"benchmarks/{p.name}": p for p in (PACKAGE.parent / "benchmarks").glob("*.py")})
    loops = {name for name, p in sources.items() if ".backward(" in p.read_text(encoding="utf-8")}
    assert loops == own_loops, sorted(loops ^ own_loops)
