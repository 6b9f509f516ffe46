"""Tiny training data for the train / evaluate / predict tests, made in a temporary folder.

Features carry a planted signal: an image with label k has the label's prototype vector added
at one random location of its map, on top of Gaussian noise, so a head that learns anything
separates the labels (val mAP far above the chance level of about the label frequency).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

LABELS = ["bird", "cat", "dog", "fish"]


def planted(n: int, *, labels: list[str] = LABELS, channels: int = 8, size: int = 4, seed: int = 0,
            strength: float = 3.0, aux: bool = False, ignore: bool = False) -> dict[str, Any]:
    """Maps (N, D, S, S) float32, targets (N, C) int8 (a few -1 when ``ignore``), ids."""
    rng = np.random.default_rng(seed)
    c = len(labels)
    protos = np.random.default_rng(1234).normal(size=(c, channels)).astype(np.float32)
    y = (rng.random((n, c)) < 0.4).astype(np.int8)
    x = rng.normal(scale=0.5, size=(n, channels, size, size)).astype(np.float32)
    for i in range(n):
        for k in np.flatnonzero(y[i]):
            h, w = rng.integers(0, size, 2)
            x[i, :, h, w] += strength * protos[k]
    if ignore:
        y[rng.random((n, c)) < 0.05] = -1
    out = {"x": x, "y": y, "ids": [f"img{i:04d}" for i in range(n)]}
    if aux:  # an "earlier stage": twice the resolution, same signal upsampled, other channels
        big = np.repeat(np.repeat(x, 2, axis=2), 2, axis=3)
        out["aux"] = np.concatenate([big, big[:, :2]], axis=1)  # (N, D + 2, 2S, 2S)
    return out


def write_features(path: Path, data: dict[str, Any], *, labels: list[str] = LABELS, with_labels: bool = True,
                   backbone_config: dict[str, Any] | None = None, **attrs: Any) -> Path:
    """A complete ``mlgraph/features@1`` file through the lead's FeatureWriter."""
    from mlgraph_cli.core.features.file import FeatureWriter

    shapes = {"features": tuple(data["x"].shape[1:])}
    maps = {"features": data["x"]}
    if "aux" in data:
        shapes["features_aux"] = tuple(data["aux"].shape[1:])
        maps["features_aux"] = data["aux"]
    bcfg = backbone_config if backbone_config is not None else {
        "name": "toy", "weights": "IMAGENET1K", "image_size": 32, "layers": ["layer4"], "init_seed": 0}
    base = {"backbone": bcfg.get("name"), "weights": bcfg.get("weights"), "image_size": bcfg.get("image_size"),
            "layers": bcfg.get("layers"), "backbone_config": bcfg, **attrs}
    writer = FeatureWriter(path, shapes=shapes, plan=f"test-{path.name}", attrs=base,
                           label_names=labels if with_labels else None)
    n = len(data["ids"])
    if n:
        writer.append(maps, data["ids"], [f"{i}.png" for i in data["ids"]],
                      data["y"] if with_labels else None, inputs_consumed=n)
    return writer.finish()


def write_embeddings(path: Path, labels: list[str] = LABELS, dim: int = 6, seed: int = 0) -> Path:
    from mlgraph_cli.core.embeddings.files import LabelEmbeddings, write_embeddings as write

    vectors = np.random.default_rng(seed).normal(size=(len(labels), dim)).astype(np.float32)
    write(path, LabelEmbeddings(labels=list(labels), vectors=vectors, attrs={"method": "test"}))
    return path


def write_graph(path: Path, labels: list[str] = LABELS, seed: int = 0) -> Path:
    from mlgraph_cli.core.graph.counts import build_label_graph
    from mlgraph_cli.core.graph.files import write_graph as write

    y = (np.random.default_rng(seed).random((40, len(labels))) < 0.4).astype(np.int8)
    write(build_label_graph(y, labels, source="test"), path)
    return path


def toy_dataset(tmp: Path, *, n_train: int = 64, n_val: int = 32, **kw) -> dict[str, Path]:
    """Train / val features and embeddings in ``tmp``."""
    tmp.mkdir(parents=True, exist_ok=True)
    return {
        "features": write_features(tmp / "train.h5", planted(n_train, seed=0, **kw)),
        "val": write_features(tmp / "val.h5", planted(n_val, seed=1, **kw)),
        "embeddings": write_embeddings(tmp / "emb.h5"),
    }


SHAPES = {"red-square": (220, 40, 40), "green-circle": (40, 180, 60), "blue-triangle": (50, 70, 220)}


def make_images(folder: Path, n: int = 24, *, size: int = 64, seed: int = 0) -> Path:
    """``n`` PNGs of coloured shapes on grey (each shape = one label, present with p = 0.5, at
    least one per image) and a COCO instances JSON beside the folder; returns the JSON path."""
    import json

    from PIL import Image, ImageDraw

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = list(SHAPES)
    coco = {"images": [], "annotations": [],
            "categories": [{"id": i + 1, "name": name, "supercategory": "shape"} for i, name in enumerate(names)]}
    for i in range(n):
        present = rng.random(len(names)) < 0.5
        if not present.any():
            present[rng.integers(len(names))] = True
        img = Image.new("RGB", (size, size), (128, 128, 128))
        draw = ImageDraw.Draw(img)
        for k in np.flatnonzero(present):
            s = size // 3
            x, y = (int(v) for v in rng.integers(0, size - s, 2))
            box = (x, y, x + s, y + s)
            colour = SHAPES[names[k]]
            if k == 0:
                draw.rectangle(box, fill=colour)
            elif k == 1:
                draw.ellipse(box, fill=colour)
            else:
                draw.polygon([(x, y + s), (x + s // 2, y), (x + s, y + s)], fill=colour)
            coco["annotations"].append({"id": len(coco["annotations"]) + 1, "image_id": i + 1,
                                        "category_id": int(k) + 1, "bbox": [x, y, s, s], "area": s * s, "iscrowd": 0})
        name = f"scene{i:03d}.png"
        img.save(folder / name)
        coco["images"].append({"id": i + 1, "file_name": name, "width": size, "height": size})
    ann = folder.parent / f"{folder.name}.json"
    ann.write_text(json.dumps(coco))
    return ann


def interrupt_the_probe(monkeypatch):
    """Make a run raise KeyboardInterrupt (Ctrl-C) when its probe start reports its first epoch;
    returns the call that lets runs go on normally again."""
    from mlgraph_cli.core.training import trainer as training

    real = training._epoch_line

    def interrupt_in_probe(row, epochs, label="epoch"):
        if label == "probe":
            raise KeyboardInterrupt
        return real(row, epochs, label)

    monkeypatch.setattr(training, "_epoch_line", interrupt_in_probe)
    return lambda: monkeypatch.setattr(training, "_epoch_line", real)
