"""Shared test helpers: every test makes its own tiny data in a temporary folder."""

from __future__ import annotations

import os

import pytest
from typer.testing import CliRunner

os.environ.setdefault("MLGRAPH_PROGRESS", "0")
os.environ["MLGRAPH_OFFLINE"] = "1"  # tests never download weights; the download tests unset it


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """One intra-op thread for the tiny tensors of the tests: on a shared 2-core machine spinning
    OpenMP threads slow small convolutions ~10x. torch is imported only once a test runs."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def cli():
    """Run ``mlgraph ARGS...`` in process; returns the click Result (stdout, stderr, exit_code)."""
    from mlgraph_cli.cli.app import app

    runner = CliRunner()

    def invoke(*args: str, input: str | None = None):
        return runner.invoke(app, [str(a) for a in args], input=input, env={"COLUMNS": "100", "TERMINAL_WIDTH": "100"})

    return invoke


def one_line_error(result) -> str:
    """Assert a result is a clean user error (exit 1, one line on stderr, no traceback); return it."""
    assert result.exit_code == 1, (result.exit_code, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    return lines[0]
