"""fashion-scenes: a multi-label colour image set made from real Fashion-MNIST photographs.

Each scene draws a label set from latent outfits (:mod:`.outfits`), picks one photograph per
label from its split's pool, and composes them over clutter (:mod:`.scenes`). Written per split:
``images/<split>/NNNNNN.jpg`` and ``annotations/<split>.json`` (COCO instances: one annotation
per item with its box), plus ``fashion-scenes.json`` (what was made, how) and the Fashion-MNIST
licence. Every scene has its own random stream seeded by (seed, split, index), so the same seed
gives the same bytes, and changing ``--train`` leaves the val and test scenes as they were.

Photographs never cross splits: training scenes use the release's train part; validation and
test scenes split its t10k part in two halves per class.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mlgraph_cli.core.datasets.fashion_mnist import BUNDLED_LICENSE, LABELS, FashionSource
from mlgraph_cli.core.datasets.outfits import LabelSetConfig, check_outfits, sample_label_set
from mlgraph_cli.core.datasets.scenes import SceneConfig, compose, render_background
from mlgraph_cli.core.io.outputs import write_text
from mlgraph_cli.core.progress import NULL_PROGRESS, ProgressHook
from mlgraph_cli.errors import MlgraphError

SPLITS = ("train", "val", "test")
CARD = "fashion-scenes.json"  # marks a folder this generator made (and may replace with --force)
CARD_SCHEMA = "mlgraph/fashion-scenes@1"
LICENSE_NAME = "LICENSE-fashion-mnist.txt"

# Supercategories in the COCO sense: what kind of item each label is.
SUPERCATEGORY = {"sandal": "footwear", "sneaker": "footwear", "ankle boot": "footwear", "bag": "accessory"}


@dataclass
class FashionScenesConfig:
    """Everything that decides the dataset's bytes (the output folder aside).

    ``train``/``val``/``test``: scenes per split; ``size``: canvas side in px; ``quality``: JPEG
    quality (1-95).
    """

    train: int = 600
    val: int = 200
    test: int = 200
    size: int = 224
    seed: int = 0
    quality: int = 90
    label_sets: LabelSetConfig = field(default_factory=LabelSetConfig)
    scene: SceneConfig = field(default_factory=SceneConfig)

    def counts(self) -> dict[str, int]:
        return {"train": self.train, "val": self.val, "test": self.test}


def split_pools(source: FashionSource) -> dict[str, list[np.ndarray]]:
    """Per split, per label: indices into ``source`` of the photographs that split may use."""
    pools: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
    for cls in range(len(LABELS)):
        train = np.flatnonzero((source.labels == cls) & (source.part == 0))
        held_out = np.flatnonzero((source.labels == cls) & (source.part == 1))
        half = len(held_out) // 2
        for name, pool in (("train", train), ("val", held_out[:half]), ("test", held_out[half:])):
            if len(pool) == 0:
                raise MlgraphError(f"{source.description}: no {LABELS[cls]!r} photographs for {name} scenes "
                                   "(pass --source a complete Fashion-MNIST, or leave it out for the bundled subset)")
            pools[name].append(pool)
    return pools


def scene_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The random stream of one scene, independent of every other scene's."""
    return np.random.default_rng([seed, SPLITS.index(split), index])


def make_scene(source: FashionSource, pools: list[np.ndarray], config: FashionScenesConfig,
               split: str, index: int) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Scene ``index`` of ``split``: the image (S x S x 3 uint8) and its items
    (``label`` index, ``box`` (x, y, w, h) px, ``area`` px, ``photo`` index into the source)."""
    rng = scene_rng(config.seed, split, index)
    labels, _outfit = sample_label_set(rng, LABELS, config.label_sets)
    photos = [int(rng.choice(pools[cls])) for cls in labels]
    background = render_background(rng, config.size, config.scene)
    image, placed = compose(rng, background, [source.images[p] for p in photos], config.scene)
    items = [{"label": cls, "box": p.box, "area": p.area, "photo": photo}
             for cls, p, photo in zip(labels, placed, photos)]
    return image, items


def coco_document(split: str, images: list[dict], annotations: list[dict], params: dict[str, Any]) -> dict:
    """A COCO instances document; category ids are Fashion-MNIST class index + 1."""
    return {
        "info": {
            "description": f"fashion-scenes {split}: Fashion-MNIST items composed into multi-label scenes",
            "version": "1",
            "contributor": "mlgraph make-dataset; photographs: Fashion-MNIST (Zalando SE, MIT)",
            "mlgraph": params,
        },
        "licenses": [{"id": 1, "name": "MIT (Fashion-MNIST, Zalando SE)",
                      "url": "https://github.com/zalandoresearch/fashion-mnist/blob/master/LICENSE"}],
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i + 1, "name": name, "supercategory": SUPERCATEGORY.get(name, "clothing")}
                       for i, name in enumerate(LABELS)],
    }


def write_fashion_scenes(folder: str | os.PathLike, source: FashionSource, config: FashionScenesConfig,
                         params: dict[str, Any], progress: ProgressHook = NULL_PROGRESS) -> dict[str, Any]:
    """Write every split into ``folder`` (which should be new and empty); return the card.

    ``params`` is the provenance stored in every JSON file; keep it free of timestamps and of
    the output path so the same seed gives the same bytes.
    """
    check_outfits(LABELS, config.label_sets.outfits)
    root = Path(folder)
    pools = split_pools(source)
    counts = config.counts()
    stats: dict[str, Any] = {}
    progress.start("Rendering scenes", total=sum(counts.values()), unit="images")
    try:
        for split in SPLITS:
            if counts[split] == 0:  # a split left out: no folder, no annotations
                stats[split] = {"images": 0, "items": 0, "per_label": {}}
                continue
            image_dir = root / "images" / split
            image_dir.mkdir(parents=True, exist_ok=True)
            images, annotations = [], []
            per_label = np.zeros(len(LABELS), dtype=np.int64)
            for index in range(counts[split]):
                image, items = make_scene(source, pools[split], config, split, index)
                name = f"{index + 1:06d}.jpg"
                Image.fromarray(image, "RGB").save(image_dir / name, "JPEG", quality=config.quality)
                images.append({"id": index + 1, "file_name": name, "width": config.size,
                               "height": config.size, "license": 1})
                for item in items:
                    x, y, w, h = item["box"]
                    annotations.append({
                        "id": len(annotations) + 1, "image_id": index + 1, "category_id": item["label"] + 1,
                        "bbox": [x, y, w, h], "area": item["area"], "iscrowd": 0,
                        "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]],
                        "fashion_mnist": {"part": ("train", "t10k")[int(source.part[item["photo"]])],
                                          "index": int(source.origin[item["photo"]])},
                    })
                    per_label[item["label"]] += 1
                progress.advance(1)
            _write_json(root / "annotations" / f"{split}.json", coco_document(split, images, annotations, params))
            stats[split] = {"images": counts[split], "items": len(annotations),
                            "per_label": dict(zip(LABELS, per_label.tolist()))}
    finally:
        progress.stop()
    card = {
        "schema": CARD_SCHEMA,
        "name": "fashion-scenes",
        "labels": list(LABELS),
        "splits": stats,
        "source": source.description,
        "config": _config_dict(config),
        "provenance": params,
    }
    write_text(root / CARD, json.dumps(card, indent=2, ensure_ascii=False) + "\n")
    shutil.copyfile(BUNDLED_LICENSE, root / LICENSE_NAME)
    return card


def _config_dict(config: FashionScenesConfig) -> dict[str, Any]:
    data = dataclasses.asdict(config)
    data["label_sets"]["outfits"] = [dataclasses.asdict(o) for o in config.label_sets.outfits]
    return json.loads(json.dumps(data))  # tuples -> lists


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """One key per line at the top, one record per line inside lists: compact like COCO's own
    files, yet readable and diffable."""
    def dump(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False)

    parts = []
    for key, value in data.items():
        if isinstance(value, list) and value:
            body = ",\n".join(f"  {dump(v)}" for v in value)
            parts.append(f" {dump(key)}: [\n{body}\n ]")
        else:
            parts.append(f" {dump(key)}: {dump(value)}")
    write_text(path, "{\n" + ",\n".join(parts) + "\n}\n")
