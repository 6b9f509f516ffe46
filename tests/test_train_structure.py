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


def test_train_help_takes_its_defaults_from_the_dataclasses():
    from mlgraph_cli.cli.train import _d, _dm

    assert _d("batch_size") == "\\[default: 32]"
    assert _dm("epochs") == "\\[default: 20 on images, 40 on video]"
    assert _dm("lr") == "\\[default: 0.001 on images, 0.01 on video]"


def test_cli_train_imports_only_its_stage_and_common_helpers():
    names = {n for n in _imports(PACKAGE / "cli" / "train.py") if n.startswith("mlgraph_cli.")}
    allowed = ("mlgraph_cli.cli._common", "mlgraph_cli.stages.train", "mlgraph_cli.errors",
               "mlgraph_cli.core.training.distributed", "mlgraph_cli.core.training.config")  # stages.train also covers stages.train.inputs (TrainInputs)
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
