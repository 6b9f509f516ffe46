"""The project folder: ``mlgraph.toml`` names the dataset and where each artifact goes.

Inside a project every command runs with no paths at all; an explicit path always wins. The
file is looked for in the current folder and its parents (like git). Relative paths in it are
relative to the folder that holds it.

``[artifacts]`` paths must stay inside the project folder: a project file travels with a
dataset, and one that names ``../../somewhere`` would have every command write there without a
word. The check is on the path as written (``..`` and absolute paths), not through symbolic
links, so ``artifacts/`` may be a link to a bigger disk; ``allow_outside = true`` in
``[artifacts]`` allows other places on purpose.
"""

from __future__ import annotations

import dataclasses
import os
try:  # Python 3.11+; tomli is the same parser, packaged for 3.10
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlgraph_cli.core.io.inputs import check_input_file
from mlgraph_cli.errors import MlgraphError, input_error

PROJECT_FILE = "mlgraph.toml"

# artifact key -> default path inside a project folder
DEFAULT_ARTIFACTS: dict[str, str] = {
    "graph": "artifacts/graph.json",
    "embeddings": "artifacts/embeddings.h5",
    "features": "artifacts/features.h5",
    "val_features": "artifacts/val-features.h5",
    "test_features": "artifacts/test-features.h5",
    "runs": "runs/train",
}
# [artifacts] key that lets artifact paths leave the project folder on purpose.
ALLOW_OUTSIDE = "allow_outside"

# dataset keys a project may set
DATASET_KEYS = (
    "annotations", "format", "images",
    "val_annotations", "val_images",
    "test_annotations", "test_images",
    "vectors",
)


@dataclass
class Project:
    """A parsed ``mlgraph.toml``."""

    root: Path
    dataset: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def file(self) -> Path:
        return self.root / PROJECT_FILE

    def dataset_path(self, key: str) -> Path | None:
        value = self.dataset.get(key)
        return (self.root / value) if value else None

    def artifact(self, key: str) -> Path:
        return self.root / self.artifacts.get(key, DEFAULT_ARTIFACTS[key])

    def section(self, name: str) -> dict[str, Any]:
        """Stage defaults from a ``[name]`` table (``[embed]``, ``[train]``, ...)."""
        return dict(self.sections.get(name, {}))


def find_project(start: str | os.PathLike | None = None) -> Project | None:
    """The project whose ``mlgraph.toml`` is in ``start`` (default: cwd) or a parent folder; None
    also when the current folder was deleted (absolute paths still work there)."""
    try:
        here = Path(start or Path.cwd()).resolve()
    except FileNotFoundError:
        return None
    for folder in (here, *here.parents):
        candidate = folder / PROJECT_FILE
        if candidate.is_file():
            return load_project(candidate)
    return None


def load_project(path: str | os.PathLike) -> Project:
    """Read ``mlgraph.toml`` through one check: a regular file of UTF-8 TOML; ``[dataset]`` and
    ``[artifacts]`` tables of known keys whose values are paths in quotes (``format`` one of the
    formats); stage tables as tables. Each failure is one line naming the file and the key."""
    fix = "fix the file or rewrite it with `mlgraph init --force`"
    p = check_input_file(path, fix=fix)
    raw = p.read_bytes()
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise input_error(p, "not UTF-8 text", fix, line=raw.count(b"\n", 0, exc.start) + 1) from None
    except tomllib.TOMLDecodeError as exc:
        raise input_error(p, f"malformed TOML: {exc}", fix) from None
    except RecursionError:
        raise input_error(p, "nested too deeply to read", fix) from None
    for name in ("dataset", "artifacts"):
        if not isinstance(data.get(name, {}), dict):
            raise input_error(p, f"{name} must be a [{name}] table", fix)
    dataset = data.pop("dataset", {}) or {}
    unknown = sorted(set(dataset) - set(DATASET_KEYS))
    if unknown:
        raise input_error(p, f"unknown key(s) in [dataset]: {', '.join(unknown)}",
                          f"known keys: {', '.join(DATASET_KEYS)}")
    for key, value in dataset.items():
        if not isinstance(value, str):
            raise input_error(p, f"[dataset] {key} must be a path in quotes, not {value!r}",
                              f"e.g. {key} = {_toml_str('data/train.json')}")
    artifacts = dict(data.pop("artifacts", {}) or {})
    allow_outside = artifacts.pop(ALLOW_OUTSIDE, False)
    unknown = sorted(set(artifacts) - set(DEFAULT_ARTIFACTS))
    if unknown:
        raise input_error(p, f"unknown key(s) in [artifacts]: {', '.join(unknown)}",
                          f"known keys: {', '.join(DEFAULT_ARTIFACTS)}, {ALLOW_OUTSIDE}")
    root = p.parent.resolve()
    _check_artifacts(p, root, artifacts, allow_outside)
    sections = {k: v for k, v in data.items() if isinstance(v, dict)}
    return Project(root=root, dataset=dataset, artifacts=artifacts, sections=sections)


def _check_artifacts(p: Path, root: Path, artifacts: dict[str, Any], allow_outside: Any) -> None:
    """Artifact paths are non-empty strings inside ``root`` (as written: ``..`` counts, links do not)."""
    if not isinstance(allow_outside, bool):
        raise input_error(p, f"[artifacts] {ALLOW_OUTSIDE} must be true or false, not {allow_outside!r}")
    for key, value in artifacts.items():
        if not isinstance(value, str) or not value.strip():
            raise input_error(p, f"[artifacts] {key} must be a path in quotes, not {value!r}",
                              f"e.g. {key} = {_toml_str(DEFAULT_ARTIFACTS[key])}")
        if allow_outside:
            continue
        where = Path(os.path.normpath(root / value))
        if where != root and root not in where.parents:
            raise input_error(p, f"[artifacts] {key} = {value!r} leaves the project folder {root}",
                              f"keep artifacts inside it, or add `{ALLOW_OUTSIDE} = true` to [artifacts] to "
                              "write there on purpose")


def render_project_file(dataset: dict[str, str]) -> str:
    """The text of a new ``mlgraph.toml``; unset dataset keys are written as comments."""
    lines = [
        "# mlgraph project file: every command run in this folder (or below it) reads it.",
        "# Paths are relative to this file. Explicit paths on the command line always win.",
        "",
        "[dataset]",
    ]
    hints = {
        "annotations": "training annotations (COCO JSON, VOC folder, NUS-WIDE folder, Open Images CSV, CSV/JSONL, YOLO data.yaml)",
        "format": "coco | voc | nuswide | openimages | csv | jsonl | yolo | stats (auto-detected when left out)",
        "images": "folder of training images",
        "val_annotations": "validation annotations",
        "val_images": "folder of validation images",
        "test_annotations": "test annotations",
        "test_images": "folder of test images",
        "vectors": "word vectors for `mlgraph embed --init` (word2vec text/binary, GloVe, gensim .kv)",
    }
    for key in DATASET_KEYS:
        value = dataset.get(key)
        if value:
            lines.append(f"{key} = {_toml_str(value)}  # {hints[key]}")
        else:
            lines.append(f"# {key} = \"\"  # {hints[key]}")
    lines += ["", "[artifacts]", "# Paths inside this folder; `allow_outside = true` lets them point elsewhere."]
    for key, value in DEFAULT_ARTIFACTS.items():
        lines.append(f"{key} = {_toml_str(value)}")
    lines += [
        "",
        "# Stage defaults, for example:",
        "# [embed]",
        "# method = \"asge\"",
        "# [train]",
        "# head = \"cma\"",
        "# epochs = 20",
        "",
    ]
    return "\n".join(lines)


def _toml_str(value: str) -> str:
    """A TOML basic string: backslash, quote and every control character (a line break in a path)
    escaped, so the file reads back as the same text (TOML 1.0, "Strings")."""
    out = []
    for ch in str(value):
        if ch in '"\\':
            out.append("\\" + ch)
        elif 0xD800 <= ord(ch) <= 0xDFFF:  # a file name byte that is not UTF-8: TOML holds Unicode only
            out.append("\uFFFD")
        elif ord(ch) < 0x20 or ch == "\x7f":
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def merge_config(cls: type, project: Project | None, section: str, overrides: dict[str, Any]):
    """Build a config dataclass: its defaults, then ``[section]`` of the project, then flags.

    ``overrides`` holds the command-line values; entries that are ``None`` were not given.
    """
    names = {f.name for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    if project is not None:
        from_file = project.section(section)
        unknown = sorted(set(from_file) - names)
        if unknown:
            raise input_error(project.file, f"unknown key(s) in [{section}]: {', '.join(unknown)}",
                              f"known keys: {', '.join(sorted(names))}")
        values.update(from_file)
    flags = {k: v for k, v in overrides.items() if v is not None and k in names}
    try:
        return cls(**{**values, **flags})
    except (TypeError, ValueError) as exc:
        if project is not None and values:
            try:  # the project's values alone: is the fault theirs, or a flag's?
                cls(**values)
            except (TypeError, ValueError) as own:
                raise MlgraphError(f"{project.file}: bad [{section}] setting: {own}") from None
        raise MlgraphError(str(exc)) from None


def resolve_input(explicit: str | os.PathLike | None, project: Project | None, *, artifact: str | None = None,
                  dataset: str | None = None, what: str, fix: str) -> Path:
    """An input path: the explicit one, else the project's, else a one-line error.

    ``fix`` names the command that makes the input (``mlgraph build-graph``).
    """
    if explicit is not None:
        return Path(explicit)
    if project is not None:
        path = project.artifact(artifact) if artifact else project.dataset_path(dataset or "")
        if path is not None:
            return path
        raise MlgraphError(f"{project.file}: no {what} set in [dataset] (add `{dataset} = ...` or pass the path)")
    raise MlgraphError(f"no {what} given and no {PROJECT_FILE} here (pass the path, or run `mlgraph init` to make a project; {fix})")


def resolve_output(explicit: str | os.PathLike | None, project: Project | None, artifact: str, default_name: str) -> Path:
    """An output path: the explicit one, else the project's artifact path, else ``default_name`` in cwd."""
    if explicit is not None:
        return Path(explicit)
    if project is not None:
        return project.artifact(artifact)
    return Path(default_name)
