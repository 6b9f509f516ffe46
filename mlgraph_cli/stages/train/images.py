"""End-to-end training inputs: annotated images through a backbone that is fine-tuned too.

The backbone (``config.backbone`` / ``weights`` / ``image_size`` / ``layers``, the same names as
``mlgraph extract``) trains at ``lr * backbone_lr_scale``; its fine-tuned weights are saved with
the head's in ``best`` / ``last.safetensors``, so predict needs nothing else.
"""

from __future__ import annotations

import os
from pathlib import Path
from mlgraph_cli.core.features.backbones.build import backbone_config, build_backbone
from mlgraph_cli.core.io.artifacts import labels_digest
from mlgraph_cli.core.progress import ProgressHook
from mlgraph_cli.core.training.batches import ImageSet, split_rows
from mlgraph_cli.core.training.data import TrainingData, annotated_images, load_or_none
from mlgraph_cli.errors import MlgraphError


def prepare_images(inputs, config, *, multi_scale: bool, device, progress: ProgressHook,
                   labels: list[str] | None = None) -> TrainingData:
    files, targets, names = annotated_images(inputs.images, inputs.annotations, label_names=labels)
    backbone = build_backbone(config.backbone, config.weights, config.layers, config.image_size, device,
                              seed=config.seed)
    multi = multi_scale
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
    return TrainingData(
        label_names=names, train_set=train_set, val_set=val_set, in_channels=list(channels) if multi else channels[-1],
        modality="image", input_kind="images", source=Path(inputs.annotations),
        backbone_config=backbone_config(backbone), backbone=backbone, split=split,
        data_info={"images": os.fspath(Path(inputs.images).resolve()),
                   "annotations": os.fspath(Path(inputs.annotations).resolve()), "num_images": len(files),
                   "train_images": len(train_idx), "labels_digest": labels_digest(names), "val": val_info})
