"""End-to-end training inputs: annotated images through a backbone that is fine-tuned too.

The backbone (``config.backbone`` / ``weights`` / ``image_size`` / ``layers``, the same names as
``mlgraph extract``) trains at ``lr * backbone_lr_scale``; its fine-tuned weights are saved with
the head's in ``best`` / ``last.safetensors``, so predict needs nothing else.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mlgraph_cli.core.artifacts import labels_digest
from mlgraph_cli.core.progress import ProgressHook
from mlgraph_cli.errors import MlgraphError, input_error


def load_or_none(path: str):
    """A PIL RGB image, or None for a file that cannot be used (module level: picklable for workers)."""
    from mlgraph_cli.core.images import SkippedImage, load_image

    image = load_image(path)
    return None if isinstance(image, SkippedImage) else image


def annotated_images(images: Path | None, annotations: Path | None, role: str = "",
                     label_names: list[str] | None = None, purpose: str = "end-to-end training"):
    """(file paths, targets (N, C) int8, label names) of an annotation file over an image folder.

    role: the flag prefix (``val-``); label_names: reorder the columns to these.
    """
    from mlgraph_cli.core.annotations import load_annotations

    if images is None or annotations is None:
        raise MlgraphError(f"{purpose} needs both --{role}images and --{role}annotations")
    ann = load_annotations(annotations)
    if label_names is not None:
        ann = ann.reorder(label_names)
    if ann.num_images == 0:
        raise input_error(annotations, "no images in the annotations", "point at a non-empty annotation file")
    missing = [i for i, f in enumerate(ann.files) if f is None]
    if missing:
        raise input_error(annotations,
                          f"{len(missing)} image(s) have no file name (e.g. id {ann.image_ids[missing[0]]})",
                          "use annotations that name each image's file")
    root = Path(images)
    if not root.is_dir():
        raise input_error(root, "no such image folder", f"pass the folder the files of {annotations} are in")
    return [os.fspath(root / f) for f in ann.files], ann.dense(), list(ann.labels)


def prepare_images(inputs, config, *, device, progress: ProgressHook) -> dict[str, Any]:
    from mlgraph_cli.core.backbones import backbone_config, build_backbone
    from mlgraph_cli.core.batches import ImageSet, split_rows

    files, targets, names = annotated_images(inputs.images, inputs.annotations)
    backbone = build_backbone(config.backbone, config.weights, config.layers, config.image_size, device,
                              seed=config.seed)
    multi = config.head == "ms-cma"
    if multi and len(backbone.layers) != 2:
        raise MlgraphError(f"head ms-cma needs two backbone stages (pass --layer twice, e.g. the last two stages of "
                           f"{backbone.name})")
    split = None
    if inputs.val_annotations is not None:
        val_files, val_targets, _ = annotated_images(inputs.val_images or inputs.images, inputs.val_annotations,
                                                    "val-", names)
        val_info = {"source": "file", "path": os.fspath(Path(inputs.val_annotations).resolve()),
                    "num_images": len(val_files)}
        train_idx = list(range(len(files)))
    else:
        train_rows, val_rows = split_rows(len(files), config.val_fraction if len(files) >= 2 else 0.0, config.seed)
        train_idx = train_rows.tolist()
        val_files, val_targets = [files[i] for i in val_rows], targets[val_rows]
        val_info = {"source": "split", "fraction": config.val_fraction, "seed": config.seed,
                    "num_images": len(val_files)} if len(val_rows) else {"source": "none"}
        if len(val_rows):
            split = {"fraction": config.val_fraction, "seed": config.seed, "val_files": val_files}
    pre = backbone.preprocessor
    train_set = ImageSet([files[i] for i in train_idx], targets[train_idx], load=load_or_none, preprocess=pre,
                         flip=config.flip)
    val_set = ImageSet(val_files, val_targets, load=load_or_none, preprocess=pre) if val_files else None
    channels = backbone.out_channels  # aligned with backbone.layers, earliest first
    return {
        "label_names": names, "train_set": train_set, "val_set": val_set,
        "in_channels": list(channels) if multi else channels[-1],
        "input_kind": "images", "backbone_config": backbone_config(backbone), "backbone": backbone,
        "backbone_state": None, "split": split, "source": Path(inputs.annotations),
        "data_info": {"images": os.fspath(Path(inputs.images).resolve()),
                      "annotations": os.fspath(Path(inputs.annotations).resolve()), "num_images": len(files),
                      "train_images": len(train_idx), "labels_digest": labels_digest(names), "val": val_info},
    }
