"""The command line as a whole: help, version, exit codes, import hygiene, generated docs."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import one_line_error

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "torchvision", "numpy", "h5py", "gensim", "scipy", "networkx", "sklearn")


def test_version(cli):
    from mlgraph_cli import __version__

    result = cli("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"mlgraph {__version__}"


def test_usage_error_exits_2(cli):
    result = cli("no-such-command")
    assert result.exit_code == 2
    result = cli("init", "--no-such-flag")
    assert result.exit_code == 2


def test_every_command_help_ends_with_a_runnable_example(cli):
    from mlgraph_cli.cli.docs import command_names

    names = command_names()
    assert {"init", "build-graph", "embed"} <= set(names)
    for name in names:
        result = cli(name, "--help")
        assert result.exit_code == 0, result.output
        # the epilog is what follows the last option box; rich may wrap it over lines
        tail = " ".join(result.stdout.rsplit("╰", 1)[-1].split()[1:])
        assert tail.startswith(f"Example: mlgraph {name}"), (name, tail)


def test_help_names_arguments_in_capitals_and_shows_no_type_beside_a_flag(cli):
    from mlgraph_cli.cli.docs import command_names

    assert "Usage: mlgraph [OPTIONS] COMMAND [ARGS]..." in cli("--help").stdout
    for name in command_names():
        text = cli(name, "--help").stdout
        assert "<bool>" not in text and "{" not in text.split("Usage:", 1)[1].splitlines()[0], (name, text)
    usage = {name: cli(name, "--help").stdout.split("Usage:", 1)[1].splitlines()[0].strip()
             for name in ("predict", "extract", "evaluate")}
    assert usage == {"predict": "mlgraph predict [OPTIONS] INPUTS...", "extract": "mlgraph extract [OPTIONS] [IMAGES...]",
                     "evaluate": "mlgraph evaluate [OPTIONS] [RUN_DIR]"}


def test_help_does_not_import_heavy_modules():
    """`mlgraph --help` and every `mlgraph CMD --help` answer without importing torch & co."""
    from mlgraph_cli.cli.docs import command_names

    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from mlgraph_cli.cli.app import app\n"
        f"for args in [[]] + [[n] for n in {command_names()!r}]:\n"
        "    r = CliRunner().invoke(app, args + ['--help'])\n"
        "    assert r.exit_code == 0, (args, r.output)\n"
        f"loaded = sorted(m for m in {HEAVY!r} if m in sys.modules)\n"
        "print(','.join(loaded))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "", f"--help imported: {out.stdout.strip()}"


def test_console_script_help_runs():
    exe = Path(sys.executable).with_name("mlgraph")
    if not exe.exists():
        pytest.skip("mlgraph console script not installed in this environment")
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    assert "build-graph" in out.stdout


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_core_and_stages_never_import_the_ui():
    offenders = []
    for folder in ("core", "stages"):
        for path in (ROOT / "mlgraph_cli" / folder).rglob("*.py"):
            bad = _imports(path) & {"typer", "rich", "click"}
            if bad:
                offenders.append(f"{path.relative_to(ROOT)}: {sorted(bad)}")
    assert not offenders, offenders


def test_nothing_imports_click_directly():
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "mlgraph_cli").rglob("*.py") if "click" in _imports(p)]
    assert not offenders


def test_cli_modules_import_heavy_modules_only_inside_functions():
    """Module-level imports of CLI modules stay light (heavy ones go inside command bodies)."""
    offenders = []
    for path in (ROOT / "mlgraph_cli" / "cli").glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            mods = []
            if isinstance(node, ast.Import):
                mods = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                mods = [node.module.split(".")[0]]
                if node.module.startswith("mlgraph_cli.core") or node.module.startswith("mlgraph_cli.stages"):
                    # core/<package>/config.py: plain config dataclasses, for the defaults shown in help
                    if node.module != "mlgraph_cli.core.progress" and not re.fullmatch(
                            r"mlgraph_cli\.core\.\w+\.(\w+_)?config", node.module):
                        offenders.append(f"{path.name}: {node.module}")
            offenders += [f"{path.name}: {m}" for m in mods if m in HEAVY]
    assert not offenders, offenders


def test_cli_reference_page_is_current():
    from mlgraph_cli.cli.docs import render

    page = ROOT / "docs" / "cli.md"
    assert page.exists(), "docs/cli.md is missing: run `make docs`"
    assert page.read_text(encoding="utf-8") == render(), "docs/cli.md is stale: run `make docs`"


def test_user_error_is_one_red_line_and_exit_1(cli, tmp_path):
    (tmp_path / "mlgraph.toml").write_text("[dataset]\n", encoding="utf-8")
    result = cli("init", str(tmp_path))
    line = one_line_error(result)
    assert "mlgraph.toml" in line and "--force" in line


def test_messages_to_a_pipe_are_never_wrapped(cli, tmp_path):
    """CliRunner's stderr is not a terminal: a long summary stays one line, paths and commands whole."""
    folder = tmp_path / ("a-long-project-folder-name-" * 4)
    result = cli("init", folder)
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [f"Wrote {folder / 'mlgraph.toml'}. Commands run in {folder} now need no paths, "
                     "e.g. `mlgraph build-graph`."]


def test_warnings_to_a_pipe_are_never_wrapped(cli, tmp_path):
    """A warning through the progress hook's log (yellow, on stderr) is one line too."""
    folder = tmp_path / ("another-long-folder-name-" * 4)
    folder.mkdir()
    rows = "".join(f"img{k}.jpg,new york city;los angeles county\n" for k in range(3))
    (folder / "a.csv").write_text(rows + "img9.jpg,san francisco bay;los angeles county\n")
    result = cli("build-graph", folder / "a.csv", "-o", folder / "g.json")
    assert result.exit_code == 0, result.output
    notes = [line for line in result.stderr.splitlines() if line.startswith("note:")]
    assert notes == ["note: every label name contains a space and none a ';': if labels are space separated, "
                     "pass --label-delimiter ' '"], result.stderr
    assert any(line.endswith(f"-> {folder / 'g.json'}") for line in result.stderr.splitlines())


def test_shell_completion_is_offered(cli):
    said = cli("--help").output
    assert "--install-completion" in said and "--show-completion" in said


def test_a_long_error_to_a_pipe_stays_one_line(cli, tmp_path):
    deep = tmp_path / ("a-folder-with-a-long-name-" * 5) / "train.json"
    result = cli("build-graph", deep, "-o", tmp_path / "g.json")
    line = one_line_error(result)
    assert str(deep) in line and len(line) > 200


def test_shell_completion_script_is_printed(cli, monkeypatch):
    # typer asks shellingham which shell runs it; a test run with no shell above it (CI, nohup) has
    # none, so the test names it
    import typer.completion

    monkeypatch.setattr(typer.completion, "_get_shell_name", lambda: "bash")
    result = cli("--show-completion", "bash")
    assert result.exit_code == 0, result.output
    assert "_mlgraph_completion" in result.stdout and "_MLGRAPH_COMPLETE" in result.stdout


def test_progress_in_a_log_file_is_plain_periodic_lines(monkeypatch, capsys):
    """Off a terminal (a cluster job's log), progress is one plain line per interval with count,
    rate and time left (tqdm's meter), and a last line when the phase ends."""
    from mlgraph_cli.cli import _common

    progress = _common.LogProgress(interval=0.0)
    progress.start("Extracting", total=4, unit="img")
    for _ in range(4):
        progress.advance(1)
    progress.stop()
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 5 and all(line.startswith("Extracting:") for line in lines), lines
    assert "4/4" in lines[-1] and "img/s" in lines[-1] and "\r" not in "".join(lines)
    quiet = _common.LogProgress(interval=3600.0)  # a short phase prints nothing at all
    quiet.start("Extracting", total=4, unit="img")
    quiet.advance(4)
    quiet.stop()
    assert capsys.readouterr().err == ""


def test_commands_pick_the_progress_for_where_stderr_goes(monkeypatch):
    from mlgraph_cli.cli import _common

    monkeypatch.delenv("MLGRAPH_PROGRESS", raising=False)
    assert isinstance(_common.progress_bar(), _common.LogProgress)  # tests: stderr is not a terminal
    assert isinstance(_common.progress_bar(quiet=True), _common.RichProgress)
    monkeypatch.setenv("MLGRAPH_PROGRESS", "0")
    assert not _common.progress_bar().bar
    monkeypatch.setenv("MLGRAPH_PROGRESS", "1")
    assert _common.progress_bar().bar
