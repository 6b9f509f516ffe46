"""Imports: no circle between the package's modules, imports at module level, a light CLI start-up.

- The import graph of ``mlgraph_cli`` (every ``import`` in every module, inside functions too) has no
  cycle. Importing ``a.b.c`` runs ``a/__init__.py`` and ``a/b/__init__.py`` first, so an edge to a
  module also leads to the packages above it, except those the importer sits in (they are already
  being imported when it runs): a submodule that imports its own package's re-exports is no cycle,
  a package whose ``__init__`` imports a module that imports that package from outside is.
- An import inside a function under core/ or stages/ says why it is there: a ``# lazy: <reason>``
  comment on its line or on the line just above it (or above the run of imports it opens).
  cli/ modules keep their heavy imports inside the command bodies by rule (docs/architecture.md).
- Importing the CLI loads none of torch, h5py, gensim, numpy: ``mlgraph --help`` and tab completion
  stay fast.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAZY_CHECKED = ("mlgraph_cli.core", "mlgraph_cli.stages")
NOT_AT_START_UP = ("torch", "torchvision", "h5py", "gensim", "numpy", "networkx", "sklearn", "matplotlib")


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_files(root: Path) -> dict[str, Path]:
    return {module_name(p, root): p for p in sorted((root / "mlgraph_cli").rglob("*.py"))}


def function_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """The import statements inside a function (at any depth) of ``tree``."""
    found: list[ast.Import | ast.ImportFrom] = []

    def walk(node: ast.AST, inside: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if inside and isinstance(child, (ast.Import, ast.ImportFrom)):
                found.append(child)
            walk(child, inside or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    walk(tree, False)
    return found


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """module -> the package's modules it imports (anywhere in the file), with the packages above
    each target that the importer is not inside of (their ``__init__`` runs first)."""
    files = package_files(root)
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                # ``from pkg import name``: the submodule pkg.name when there is one, else pkg itself
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
            else:
                continue
            for target in targets:
                parts = target.split(".")
                for i in range(1, len(parts) + 1):
                    step = ".".join(parts[:i])
                    inside = (name + ".").startswith(step + ".")
                    if step in files and step != name and (i == len(parts) or not inside):
                        edges.add(step)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path [a, b, ..., a], or None (depth-first search, no recursion)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in sorted(graph):
        if start in state:
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph.get(nxt, ()))))
    return None


def unexplained_lazy_imports(root: Path = ROOT) -> list[str]:
    """``file:line`` of every function-level import under core/ and stages/ without a ``lazy:`` reason
    on its line, on the line above, or above the run of import lines it belongs to."""
    bad: list[str] = []
    for name, path in package_files(root).items():
        if not name.startswith(LAZY_CHECKED):
            continue
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        tree = ast.parse(text)
        starts = {n.lineno for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))}
        ends = {n.end_lineno: n.lineno for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))}
        for node in function_imports(tree):
            line = node.lineno
            if "lazy:" in lines[line - 1]:
                continue
            above = line - 1
            while above in ends and ends[above] in starts:  # climb over the imports just above
                above = ends[above] - 1
            if above >= 1 and lines[above - 1].strip().startswith("#") and "lazy:" in lines[above - 1]:
                continue
            bad.append(f"{path.relative_to(root).as_posix()}:{line}: {ast.unparse(node)}")
    return bad


def test_no_cycle_of_imports_between_modules():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle (imports inside functions count): " + " -> ".join(cycle or [])


def test_function_level_imports_say_why():
    bad = unexplained_lazy_imports()
    assert not bad, ("imports inside functions under core/ and stages/ without a `# lazy: <reason>` comment "
                     "(move them to the top of the module, or say why they must wait): " + "; ".join(bad))


def test_importing_the_cli_stays_light():
    code = ("import sys, mlgraph_cli.cli.app\n"
            f"print(','.join(m for m in {NOT_AT_START_UP!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "", f"importing the CLI loaded: {out.stdout.strip()}"


def test_the_checks_catch_what_they_must(tmp_path):
    """The checkers themselves, on a made-up package."""
    files = {
        "__init__.py": "",
        "core/__init__.py": "from mlgraph_cli.core.a import f\n",  # a re-export: no cycle by itself
        "core/a.py": "from mlgraph_cli.core import b\n\ndef f():\n    from mlgraph_cli.core.c import g\n",
        "core/b.py": "from . import a  # lazy: not a function-level import, no matter\n",
        "core/c.py": "def g():\n    # lazy: start-up\n    import json\n    import os\n\n    import re\n",
        "stages/__init__.py": "",
        "stages/s.py": "def h():\n    from mlgraph_cli.core.a import f  # lazy: a reason\n",
    }
    for name, text in files.items():
        (tmp_path / "mlgraph_cli" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "mlgraph_cli" / name).write_text(text)
    graph = import_graph(tmp_path)
    assert graph["mlgraph_cli.stages.s"] == {"mlgraph_cli.core", "mlgraph_cli.core.a"}
    assert graph["mlgraph_cli.core.a"] == {"mlgraph_cli.core.b", "mlgraph_cli.core.c"}  # not its own package
    assert find_cycle(graph) == ["mlgraph_cli.core.a", "mlgraph_cli.core.b", "mlgraph_cli.core.a"]
    assert unexplained_lazy_imports(tmp_path) == ["mlgraph_cli/core/a.py:4: from mlgraph_cli.core.c import g",
                                                  "mlgraph_cli/core/c.py:6: import re"]
    (tmp_path / "mlgraph_cli" / "core" / "b.py").write_text("")
    assert find_cycle(import_graph(tmp_path)) is None
    (tmp_path / "mlgraph_cli" / "core" / "c.py").write_text("import mlgraph_cli.stages.s\n")  # c -> s -> core -> a -> c
    assert find_cycle(import_graph(tmp_path)) == ["mlgraph_cli.core", "mlgraph_cli.core.a", "mlgraph_cli.core.c",
                                                  "mlgraph_cli.stages.s", "mlgraph_cli.core"]
