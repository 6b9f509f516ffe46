"""Stage: a trained run -> ``model.onnx`` and its ``model.json`` card.

An image run's graph takes (N, 3, S, S) float32 RGB pixels 0-255 (decoded, EXIF-transposed,
stretched to S x S with PIL bilinear) and gives (N, C) probabilities; a run trained on video files
takes (N, T, 3, S, S) sampled frames and an (N, T) mask of the real ones; a YouTube-8M run, which
has no backbone, (N, T, D) frame features and the mask (core/inference/export.py). The card beside
it (``<name>.json`` for ``<name>.onnx``, schema ``mlgraph/onnx-model@1``) says what a runtime
needs: labels in output order, the inputs, the run's threshold (and per-label thresholds when the
run has them), the preprocessing left to the caller (for clips: which frames to sample) and the one
inside the graph, the mlgraph version and the sha256 of the run's config.json and weights, so a
deployed graph can be traced to its run.

Before the files are kept, onnxruntime runs the written graph on an input of the run's kind and
its output is compared with torch's: random pixels for images, the frames of one of the run's own
training clips (random frames when none can be found), rows of the run's training features.
Both files are written to temporary names and renamed into place; the run's own files are never
touched.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from mlgraph_cli import __version__
from mlgraph_cli.core.features.config import MAX_IMAGE_SIZE
from mlgraph_cli.core.inference import export as onnx_export
from mlgraph_cli.core.inference.clips import run_sampling, training_clip, training_rows
from mlgraph_cli.core.inference.run import load_run
from mlgraph_cli.core.io.artifacts import file_digest, provenance
from mlgraph_cli.core.io.jsonfile import read_json
from mlgraph_cli.core.io.outputs import check_output, write_output
from mlgraph_cli.core.media.videos import SAMPLING_RULE
from mlgraph_cli.core.training.checkpoint import CONFIG, weights_path
from mlgraph_cli.core.training.run_config import RunConfig
from mlgraph_cli.core.training.run_dir import run_files
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
        if self.image_size is not None and not 1 <= self.image_size <= MAX_IMAGE_SIZE:
            raise MlgraphError(f"--image-size {self.image_size}: must be a whole number of px from 1 to {MAX_IMAGE_SIZE}")


@dataclass
class ExportResult:
    onnx: Path
    card: Path
    labels: list[str]
    image_size: int | None  # None: a YouTube-8M run (frame features in)
    opset: int
    size_bytes: int
    max_abs_diff: float | None  # onnxruntime vs torch on the check input (None: not checked)
    modality: str = "image"
    checked_on: str | None = None  # what the check ran on


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


@dataclass
class Graph:
    """What differs between the kinds of run: the module to export, its signature, the check input
    (made lazily: a clip is decoded only when the check runs) and the card's input description."""

    model: Any
    signature: Any
    check_input: Callable[[], tuple[dict[str, Any], str]]
    card: dict[str, Any]
    image_size: int | None
    extra: dict[str, Any] = field(default_factory=dict)


def export(run_dir: str | os.PathLike, output: str | os.PathLike, config: ExportConfig) -> ExportResult:
    """Export ``run_dir``'s model (backbone + head, ``config.checkpoint`` weights) to ``output``."""
    run = Path(run_dir)
    rc = RunConfig.read(run)
    if rc.modality == "video" and config.image_size is not None:
        raise MlgraphError(f"--image-size: for image runs only; {run} is a video run, whose frames keep the size they "
                           "were extracted at (drop --image-size)")
    inputs = run_files(run)
    dest, card = check_destination(output, inputs)
    onnx_export.require_onnx()
    with_backbone = rc.modality == "image" or bool(rc.backbone)
    loaded = load_run(run, config.checkpoint, device="cpu", with_backbone=with_backbone, image_size=config.image_size)
    graph = (_image_graph(loaded) if rc.modality == "image" else
             _clip_graph(loaded) if loaded.model.backbone is not None else _frames_graph(loaded))
    info = _card(run, loaded, config, graph)
    with write_output(card, inputs, stream_ok=False) as card_tmp, \
            write_output(dest, inputs, stream_ok=False) as onnx_tmp:  # the graph is renamed first
        opset = onnx_export.export_onnx(graph.model, onnx_tmp, graph.signature, opset=config.opset,
                                        metadata={"mlgraph": json.dumps(info, ensure_ascii=False)})
        diff, checked_on = None, None
        if config.check:
            check_inputs, checked_on = graph.check_input()
            diff = onnx_export.check_with_onnxruntime(graph.model, onnx_tmp, check_inputs)
        if diff is not None and diff > onnx_export.TOLERANCE:  # a wrong graph is a bug, never a user's file
            raise RuntimeError(f"the exported graph differs from the torch model by {diff:.2e} (> "
                               f"{onnx_export.TOLERANCE}); please report it")
        info.update(opset=opset, model_file=dest.name, model_sha256=file_digest(onnx_tmp),
                    check={"onnxruntime_max_abs_diff": diff, "input": checked_on} if diff is not None else None)
        card_tmp.write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return ExportResult(onnx=dest, card=card, labels=list(loaded.label_names), image_size=graph.image_size,
                        opset=opset, size_bytes=dest.stat().st_size, max_abs_diff=diff, modality=rc.modality,
                        checked_on=checked_on)


def _image_graph(loaded: Any) -> Graph:
    pre = loaded.model.backbone.preprocessor
    size = int(pre.size)
    model = onnx_export.PixelsToProbabilities(loaded.model, scale=pre.scale, mean=pre.mean, std=pre.std).eval()
    d = pre.to_dict()
    card = {
        "input": {"name": onnx_export.INPUT_NAME, "dtype": "float32", "shape": ["batch", 3, size, size],
                  "layout": "NCHW", "color": "RGB", "range": [0, 255]},
        "preprocessing": {
            "before_graph": {"exif_transpose": True, "color": "RGB", "resize": "stretch", "interpolation": "bilinear",
                             "library": "PIL", "size": size},
            "in_graph": {"formula": "(x * scale - mean) / std", "scale": d.get("scale"), "mean": d.get("mean"),
                         "std": d.get("std")},
        },
    }
    return Graph(model, onnx_export.image_signature(size), lambda: (onnx_export.random_pixels(size), "random pixels"),
                 card, size)


def _clip_graph(loaded: Any) -> Graph:
    """A run trained on video files: per-frame backbone + average pooling + the temporal head."""
    backbone = loaded.model.backbone
    pre = backbone.preprocessor
    size = int(pre.size)
    sampling = run_sampling(loaded.config)
    model = onnx_export.ClipPixelsToProbabilities(backbone, loaded.model.head, scale=pre.scale, mean=pre.mean,
                                                  std=pre.std).eval()

    def check_input() -> tuple[dict[str, Any], str]:
        clip = training_clip(loaded.config)
        if clip is None:  # the training clips moved: random frames still check the graph
            rng = np.random.default_rng(0)
            frames = rng.uniform(0, 255, (4, 3, size, size)).astype(np.float32)
            what = "random frames (no training clip of the run was found)"
        else:
            frames, _ = onnx_export.clip_input(clip, size, sampling)
            what = f"{clip} ({len(frames)} frames)"
        half = max(1, len(frames) // 2)  # 3 clips: whole, first half and second half padded
        return onnx_export.padded_batch([frames, frames[:half], frames[half:] if len(frames) > 1 else frames],
                                        onnx_export.FRAMES_NAME), what

    d = pre.to_dict()
    card = {
        "input": {"name": onnx_export.FRAMES_NAME, "dtype": "float32", "shape": ["batch", "frames", 3, size, size],
                  "layout": "NTCHW", "color": "RGB", "range": [0, 255]},
        "mask": _mask_card(),
        "sampling": dict(sampling.to_dict(), times=SAMPLING_RULE),
        "preprocessing": {
            "before_graph": {"frames": "the frame on screen at each sampled time (by timestamp), display rotation "
                                       "applied", "color": "RGB", "resize": "stretch", "interpolation": "bilinear",
                             "library": "FFmpeg swscale (PyAV VideoFrame.to_ndarray(width=S, height=S, "
                                        "format='rgb24'))", "size": size},
            "in_graph": {"formula": "(x * scale - mean) / std", "scale": d.get("scale"), "mean": d.get("mean"),
                         "std": d.get("std"), "pooling": "each frame's backbone map averaged over its locations",
                         "storage": "each frame vector rounded to float16, as the features file stores it"},
        },
    }
    return Graph(model, onnx_export.clip_signature(size=size), check_input, card, size)


def _frames_graph(loaded: Any) -> Graph:
    """A YouTube-8M run: its temporal head alone, on dequantised frame features."""
    channels = int(loaded.config["head"]["in_channels"])
    frames = int((loaded.config.get("data") or {}).get("frames") or 300)
    model = onnx_export.FramesToProbabilities(loaded.model.head).eval()

    def check_input() -> tuple[dict[str, Any], str]:
        rows, what = training_rows(loaded.config, 3)
        if rows is None:
            rng = np.random.default_rng(0)
            rows, what = [rng.normal(size=(t, channels)).astype(np.float32) for t in (4, 2, 3)], "random features"
        return onnx_export.padded_batch(rows, onnx_export.FEATURES_NAME), what

    card = {
        "input": {"name": onnx_export.FEATURES_NAME, "dtype": "float32", "shape": ["batch", "frames", channels],
                  "layout": "NTD", "meaning": "YouTube-8M frame features, one frame a second: the 1024 rgb then the "
                                              "128 audio values, dequantised"},
        "mask": _mask_card(),
        "sampling": {"frames_per_second": 1, "max_frames": frames, "times": "YouTube-8M's own: one frame a second; "
                                                                            f"the run saw at most {frames}"},
        "preprocessing": {"before_graph": {"dequantization": "q * 4/255 + 4/512 - 2 for each uint8 byte q "
                                                             "(YouTube-8M's starter code)"},
                          "in_graph": {"storage": "each frame vector rounded to float16, as the features file "
                                                  "stores it"}},
    }
    return Graph(model, onnx_export.clip_signature(channels=channels), check_input, card, None)


def _mask_card() -> dict[str, Any]:
    return {"name": onnx_export.MASK_NAME, "dtype": "bool", "shape": ["batch", "frames"],
            "meaning": "True for a real frame; pad shorter clips of a batch with frames under False"}


def _card(run: Path, loaded: Any, config: ExportConfig, graph: Graph) -> dict[str, Any]:
    labels = list(loaded.label_names)
    bcfg = loaded.config.get("backbone") or {}
    return {
        "schema": SCHEMA,
        "mlgraph_version": __version__,
        "modality": loaded.modality,
        "labels": labels,
        "image_size": graph.image_size,
        "threshold": loaded.threshold,
        "thresholds": onnx_export.per_label_thresholds(loaded.config, labels),
        **graph.card,
        "output": {"name": onnx_export.OUTPUT_NAME, "dtype": "float32", "shape": ["batch", len(labels)],
                   "meaning": "sigmoid probability of each label, in the order of `labels`"},
        "run": {"path": os.fspath(run.resolve()), "checkpoint": loaded.checkpoint, "epoch": loaded.epoch,
                "head": loaded.head_name, "backbone": bcfg.get("name"), "backbone_weights": bcfg.get("weights"),
                "config_sha256": file_digest(run / CONFIG),
                "weights_sha256": file_digest(weights_path(run, loaded.checkpoint))},
        "exporter": onnx_export.exporter_name(),
        "provenance": provenance(COMMAND, {"run": run, "checkpoint": config.checkpoint,
                                           "image_size": config.image_size, "opset": config.opset}),
    }
