"""Stage: a trained image run -> ``model.onnx`` and its ``model.json`` card.

The ONNX graph takes (N, 3, S, S) float32 RGB pixels 0-255 (decoded, EXIF-transposed, stretched to
S x S with PIL bilinear) and gives (N, C) probabilities; see core/inference/export.py. The card beside it
(``<name>.json`` for ``<name>.onnx``, schema ``mlgraph/onnx-model@1``) says what a runtime needs:
labels in output order, the image size, the run's threshold (and per-label thresholds when the run
has them), the preprocessing left to the caller and the one inside the graph, the mlgraph version
and the sha256 of the run's config.json and weights, so a deployed graph can be traced to its run.

Both files are written to temporary names and renamed into place; the run's own files are never
touched. Video runs are refused: their heads read frame features from ``mlgraph import-yt8m``,
not pixels, so there is no image graph to export.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlgraph_cli import __version__
from mlgraph_cli.core.io.outputs import check_output, write_output
from mlgraph_cli.core.io.artifacts import file_digest, provenance
from mlgraph_cli.core.io.jsonfile import read_json
from mlgraph_cli.errors import MlgraphError, input_error

COMMAND = "mlgraph export"
SCHEMA = "mlgraph/onnx-model@1"


@dataclass
class ExportConfig:
    """Options of ``mlgraph export``."""

    checkpoint: str = "best"  # "best" | "last"
    image_size: int | None = None  # input side in px; None = the run's
    opset: int | None = None  # ONNX opset; None = the exporter's default
    check: bool = True  # run the written graph with onnxruntime against torch

    def __post_init__(self) -> None:
        from mlgraph_cli.core.features.config import MAX_IMAGE_SIZE

        if self.image_size is not None and not 1 <= self.image_size <= MAX_IMAGE_SIZE:
            raise MlgraphError(f"--image-size {self.image_size}: must be a whole number of px from 1 to {MAX_IMAGE_SIZE}")


@dataclass
class ExportResult:
    onnx: Path
    card: Path
    labels: list[str]
    image_size: int
    opset: int
    size_bytes: int
    max_abs_diff: float | None  # onnxruntime vs torch on a random batch (None: not checked)


def card_path(onnx_path: str | os.PathLike) -> Path:
    """``model.onnx`` -> ``model.json`` (same folder, same stem)."""
    return Path(onnx_path).with_suffix(".json")


def check_destination(output: str | os.PathLike, inputs: list[Path] = ()) -> tuple[Path, Path]:
    """The .onnx and .json destinations, refusing names that could overwrite something else
    (``inputs``: the run's files)."""
    dest = Path(output)
    if os.fspath(output) == "-":
        raise MlgraphError("-o -: an ONNX graph is binary (pass a file name, e.g. -o model.onnx)")
    if dest.is_dir():
        raise input_error(dest, "is a folder", f"pass a file name, e.g. -o {dest / 'model.onnx'}")
    if dest.suffix.lower() != ".onnx":
        raise input_error(dest, "an ONNX file name must end in .onnx", f"pass e.g. -o {dest.with_suffix('.onnx')}")
    card = card_path(dest)
    if card.exists():
        found = None
        try:
            found = read_json(card).get("schema")
        except (MlgraphError, AttributeError):
            pass
        if found != SCHEMA:
            raise input_error(card, "exists and is not a card of an earlier `mlgraph export`, and the card of "
                                    f"{dest.name} would replace it", "pick another -o name")
    check_output(dest, inputs, stream_ok=False)
    check_output(card, inputs, stream_ok=False)
    return dest, card


def export(run_dir: str | os.PathLike, output: str | os.PathLike, config: ExportConfig) -> ExportResult:
    """Export ``run_dir``'s model (backbone + head, ``config.checkpoint`` weights) to ``output``."""
    from mlgraph_cli.core.inference import export as onnx_export
    from mlgraph_cli.core.training.checkpoint import CONFIG
    from mlgraph_cli.core.training.run_dir import run_files
    from mlgraph_cli.core.training.run_config import RunConfig
    from mlgraph_cli.core.inference.run import load_run

    run = Path(run_dir)
    if RunConfig.read(run).modality == "video":
        raise input_error(run / CONFIG, "a video run: its head reads frame features, not pixels, so it has no "
                                        "image graph to export", f"score clips with `mlgraph predict VIDEOS --model {run}`")
    inputs = run_files(run)
    dest, card = check_destination(output, inputs)
    onnx_export.require_onnx()
    loaded = load_run(run, config.checkpoint, device="cpu", with_backbone=True, image_size=config.image_size)
    backbone = loaded.model.backbone
    pre = backbone.preprocessor
    model = onnx_export.PixelsToProbabilities(loaded.model, scale=pre.scale, mean=pre.mean, std=pre.std).eval()
    size = int(pre.size)
    info = _card(run, loaded, config, size, pre.to_dict())
    with write_output(card, inputs, stream_ok=False) as card_tmp, \
            write_output(dest, inputs, stream_ok=False) as onnx_tmp:  # the graph is renamed first
        opset = onnx_export.export_onnx(model, onnx_tmp, image_size=size, opset=config.opset,
                                        metadata={"mlgraph": json.dumps(info, ensure_ascii=False)})
        diff = onnx_export.check_with_onnxruntime(model, onnx_tmp, image_size=size) if config.check else None
        if diff is not None and diff > onnx_export.TOLERANCE:  # a wrong graph is a bug, never a user's file
            raise RuntimeError(f"the exported graph differs from the torch model by {diff:.2e} (> "
                               f"{onnx_export.TOLERANCE}); please report it")
        info.update(opset=opset, model_file=dest.name, model_sha256=file_digest(onnx_tmp),
                    check={"onnxruntime_max_abs_diff": diff} if diff is not None else None)
        card_tmp.write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return ExportResult(onnx=dest, card=card, labels=list(loaded.label_names), image_size=size, opset=opset,
                        size_bytes=dest.stat().st_size, max_abs_diff=diff)


def _card(run: Path, loaded: Any, config: ExportConfig, size: int, preprocessing: dict[str, Any]) -> dict[str, Any]:
    from mlgraph_cli.core.inference import export as onnx_export
    from mlgraph_cli.core.training.checkpoint import CONFIG, weights_path

    labels = list(loaded.label_names)
    bcfg = loaded.config.get("backbone") or {}
    return {
        "schema": SCHEMA,
        "mlgraph_version": __version__,
        "labels": labels,
        "image_size": size,
        "threshold": loaded.threshold,
        "thresholds": onnx_export.per_label_thresholds(loaded.config, labels),
        "input": {"name": onnx_export.INPUT_NAME, "dtype": "float32", "shape": ["batch", 3, size, size],
                  "layout": "NCHW", "color": "RGB", "range": [0, 255]},
        "output": {"name": onnx_export.OUTPUT_NAME, "dtype": "float32", "shape": ["batch", len(labels)],
                   "meaning": "sigmoid probability of each label, in the order of `labels`"},
        "preprocessing": {
            "before_graph": {"exif_transpose": True, "color": "RGB", "resize": "stretch", "interpolation": "bilinear",
                             "library": "PIL", "size": size},
            "in_graph": {"formula": "(x * scale - mean) / std", "scale": preprocessing.get("scale"),
                         "mean": preprocessing.get("mean"), "std": preprocessing.get("std")},
        },
        "run": {"path": os.fspath(run.resolve()), "checkpoint": loaded.checkpoint, "epoch": loaded.epoch,
                "head": loaded.head_name, "backbone": bcfg.get("name"), "backbone_weights": bcfg.get("weights"),
                "config_sha256": file_digest(run / CONFIG),
                "weights_sha256": file_digest(weights_path(run, loaded.checkpoint))},
        "exporter": onnx_export.exporter_name(),
        "provenance": provenance(COMMAND, {"run": run, "checkpoint": config.checkpoint,
                                           "image_size": config.image_size, "opset": config.opset}),
    }
