"""README's "Your own data" runs as written: its commands, taken from README.md, on the tiny data
they name (photos/, train/val/test CSVs in the README's own shape, new-photos/), with every
default as a reader gets it (EfficientNet-Lite0 at 224 px, default epochs)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def own_data_section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return text.split("## Your own data", 1)[1].split("\n## ", 1)[0]


def fenced(section: str, language: str) -> str:
    return re.search(rf"```{language}\n(.*?)```", section, re.S).group(1)


def write_photos(folder: Path, names: list[str], seed: int) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        pixels = (rng.random((48, 64, 3)) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / name)


def test_readme_own_data_runs_as_written(cli, tmp_path, monkeypatch):
    section = own_data_section()
    example = fenced(section, "text")  # the README's CSV: its header and rows start train.csv
    header, *rows = example.strip().splitlines()
    assert header == "path,labels"
    more = ["0003.jpg,cat", "0004.jpg,person;dog", "0005.jpg,cat;person", "0006.jpg,dog",
            "0007.jpg,cat;dog;person", "0008.jpg,person"]
    val = ["0009.jpg,cat;dog", "0010.jpg,dog"]  # no 'person': declared by --labels, stored as zeros
    test = ["0011.jpg,person;cat", "0012.jpg,dog"]
    monkeypatch.chdir(tmp_path)
    Path("train.csv").write_text("\n".join([header, *rows, *more]) + "\n")
    Path("val.csv").write_text("\n".join([header, *val]) + "\n")
    Path("test.csv").write_text("\n".join([header, *test]) + "\n")
    write_photos(Path("photos"), [r.split(",")[0] for r in rows + more + val + test], seed=0)
    write_photos(Path("new-photos"), ["a.jpg", "b.png"], seed=1)

    commands = [shlex.split(line, comments=True) for line in fenced(section, "bash").splitlines()]
    commands = [c for c in commands if c]
    assert [c[1] for c in commands] == ["build-graph", "embed", "extract", "extract", "extract", "train",
                                        "evaluate", "predict", "export"]
    for command in commands:
        assert command[0] == "mlgraph"
        result = cli(*command[1:])
        assert result.exit_code == 0, (command, result.output)
    for made in ("graph.json", "embeddings.h5", "features.h5", "val-features.h5", "test-features.h5",
                 "runs/mine/best.safetensors", "runs/mine/eval-test-features.json", "model.onnx"):
        assert Path(made).is_file(), made
    assert sorted(p.name for p in Path("explain").glob("*.png")) == ["a.jpg.png", "b.png.png"]
