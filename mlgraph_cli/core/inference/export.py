"""A trained run as one ONNX graph: raw RGB pixels in, label probabilities out.

The graph holds everything after decoding and resizing, so a runtime without mlgraph only has
to do what ``mlgraph extract`` does to an image file before the network sees it:

1. decode, apply the EXIF orientation, convert to RGB;
2. stretch-resize the whole image to S x S with PIL's bilinear filter (no crop, aspect not kept);
3. stack as float32 (N, 3, S, S), values 0-255 (:func:`onnx_input` does 1-3 for one image).

Inside the graph: ``(x * scale - mean) / std`` with the run's recorded preprocessing (ImageNet
mean/std for torchvision backbones, TF-Lite's 0.5/0.5 for EfficientNet-Lite0), the backbone, the
head, and a sigmoid: the output is (N, C) probabilities in the run's label order. The batch
axis is dynamic.

A run trained on video files (``mlgraph extract CLIPS/``) is exported whole the same way
(:class:`ClipPixelsToProbabilities`): (N, T, 3, S, S) sampled frames, 0-255, and an (N, T) mask of
the real ones in; each frame normalised, through the backbone and averaged over its map, rounded
to float16 as the features file stores it, then the temporal head over the real frames and a
sigmoid. The caller samples and scales the frames as ``mlgraph extract`` did (:func:`clip_input`).
A YouTube-8M run has no backbone: its graph (:class:`FramesToProbabilities`) takes the (N, T, D)
dequantised frame features and the mask. Batch and frame axes are both dynamic.

Exporter: ``torch.onnx.export(..., dynamo=True)``, the torch.export-based exporter that torch
has made its default and maintains; the TorchScript exporter still runs but is deprecated and
warns on every call. Both work offline; the dynamo one needs ``onnxscript`` (part of the
``export`` extra) and takes a few seconds longer.
"""

from __future__ import annotations

import importlib
import os
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from mlgraph_cli.core.media.images import SkippedImage, load_image
from mlgraph_cli.core.media.videos import probe, read_frames
from mlgraph_cli.errors import MlgraphError

# What `pip install "mlgraph[export]"` brings: the graph format, the dynamo exporter's ONNX
# builder, and the runtime that checks the written graph.
REQUIRED = ("onnx", "onnxscript", "onnxruntime")
INPUT_NAME = "images"
OUTPUT_NAME = "probabilities"
FRAMES_NAME, FEATURES_NAME, MASK_NAME = "frames", "features", "mask"  # video graphs' inputs
# Largest |onnxruntime - torch| accepted on the check batch (probabilities; float32 graphs agree
# to about 1e-6, so anything near this bound is a wrong graph, not rounding).
TOLERANCE = 1e-3


def require_onnx() -> None:
    """Raise a one-line :class:`MlgraphError` unless every module of the ``export`` extra imports."""
    missing = []
    for name in REQUIRED:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise MlgraphError(f"exporting to ONNX needs {', '.join(missing)}, which is not installed "
                           f'(pip install "mlgraph[export]")')


class PixelsToProbabilities(nn.Module):
    """(N, 3, S, S) float32 RGB 0-255 -> (N, C) probabilities: normalise, backbone, head, sigmoid.

    ``model`` is a :class:`~mlgraph_cli.core.training.trainer.Classifier` with its backbone;
    ``scale`` / ``mean`` / ``std`` are the run's preprocessing (x * scale - mean) / std.
    """

    def __init__(self, model: nn.Module, *, scale: float, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.model = model
        # Folded into one multiply-add: x * (scale / std) - mean / std.
        std_t = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        self.register_buffer("gain", float(scale) / std_t)
        self.register_buffer("shift", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1) / std_t)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = pixels * self.gain - self.shift  # (N, 3, S, S), normalised
        return torch.sigmoid(self.model(x).float())  # (N, C)


class ClipPixelsToProbabilities(nn.Module):
    """(N, T, 3, S, S) float32 RGB 0-255 frames + (N, T) bool mask -> (N, C) probabilities.

    Each frame as ``mlgraph extract`` turns it into a feature vector (normalised, the backbone's
    last map averaged over its locations, rounded to float16 as the features file stores it),
    then the run's temporal head over the real frames (mask True) and a sigmoid. Frames under a
    False mask go through the backbone but never reach the output.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module, *, scale: float, mean: tuple[float, ...],
                 std: tuple[float, ...]) -> None:
        super().__init__()
        self.backbone, self.head = backbone, head
        std_t = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        self.register_buffer("gain", float(scale) / std_t)
        self.register_buffer("shift", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1) / std_t)

    def forward(self, frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = frames.flatten(0, 1) * self.gain - self.shift  # (N*T, 3, S, S), normalised
        vectors = self.backbone(x)["features"].float().mean(dim=(2, 3))  # (N*T, D)
        vectors = vectors.to(torch.float16).float()  # the precision the features file stores
        x = vectors.unflatten(0, (frames.shape[0], frames.shape[1])).transpose(1, 2)  # (N, D, T)
        return torch.sigmoid(self.head(x, mask).float())  # (N, C)


class FramesToProbabilities(nn.Module):
    """(N, T, D) float32 frame features + (N, T) bool mask -> (N, C): a YouTube-8M run's head alone.

    Features are rounded to float16 as ``mlgraph import-yt8m`` stores them."""

    def __init__(self, head: nn.Module) -> None:
        super().__init__()
        self.head = head

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = features.to(torch.float16).float().transpose(1, 2)  # (N, T, D) -> (N, D, T)
        return torch.sigmoid(self.head(x, mask).float())  # (N, C)


@dataclass
class Signature:
    """What a graph takes: inputs to trace with, their ONNX names, and its free axes (per forward argument)."""

    example: tuple[torch.Tensor, ...]
    names: list[str]
    dynamic: dict[str, dict[int, Any]]


def image_signature(size: int) -> Signature:
    """(N, 3, S, S) pixels; batch 2 to trace (a batch of 1 may be specialised)."""
    return Signature((torch.rand(2, 3, size, size) * 255,), [INPUT_NAME], {"pixels": {0: torch.export.Dim("batch")}})


def clip_signature(size: int | None = None, channels: int | None = None) -> Signature:
    """(N, T, 3, S, S) frames (``size``) or (N, T, D) features (``channels``), and an (N, T) mask;
    2 clips of 3 frames to trace, the second with a padded frame."""
    batch, frames = torch.export.Dim("batch"), torch.export.Dim("frames")
    mask = torch.tensor([[True, True, True], [True, True, False]])
    if size is not None:
        x, first = torch.rand(2, 3, 3, size, size) * 255, (FRAMES_NAME, "frames")
    else:
        x, first = torch.randn(2, 3, int(channels)), (FEATURES_NAME, "features")
    return Signature((x, mask), [first[0], MASK_NAME], {first[1]: {0: batch, 1: frames}, "mask": {0: batch, 1: frames}})


def export_onnx(model: nn.Module, dest: str | os.PathLike, signature: Signature, *, opset: int | None = None,
                metadata: dict[str, str] | None = None) -> int:
    """Write ``model`` (in eval mode, on the CPU) to ``dest`` as one self-contained ONNX file with the
    free axes of ``signature``. ``metadata`` goes into the graph's ``metadata_props``. Returns the opset written."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's FutureWarnings and tracing notes, not the user's
        program = torch.onnx.export(model, signature.example, input_names=signature.names, output_names=[OUTPUT_NAME],
                                    dynamic_shapes=signature.dynamic, opset_version=opset, dynamo=True,
                                    verbose=False, external_data=False)
    program.model.metadata_props.update(metadata or {})
    program.save(os.fspath(dest), external_data=False)
    return int(program.model.opset_imports.get("", 0))


def check_with_onnxruntime(model: nn.Module, path: str | os.PathLike, inputs: dict[str, np.ndarray]) -> float:
    """Run ``inputs`` (ONNX name -> array, in the graph's input order) through the written graph and
    through ``model``; return the largest |difference| of the probabilities."""
    # lazy: optional dependency (onnxruntime, extra `export`)
    import onnxruntime as ort

    with torch.no_grad():
        expected = model(*(torch.from_numpy(v) for v in inputs.values())).numpy()
    session = ort.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
    got = session.run([OUTPUT_NAME], inputs)[0]
    return float(np.abs(got - expected).max())


def random_pixels(size: int, batch: int = 3, seed: int = 0) -> dict[str, np.ndarray]:
    """The image check's input: a batch other than the export's, to exercise the free axis."""
    rng = np.random.default_rng(seed)
    return {INPUT_NAME: rng.uniform(0, 255, (batch, 3, size, size)).astype(np.float32)}


def padded_batch(rows: list[np.ndarray], name: str) -> dict[str, np.ndarray]:
    """Clips of (T_i, ...) frames -> {name: (N, T, ...) zero-padded, "mask": (N, T) bool}."""
    t = max(len(r) for r in rows)
    x = np.zeros((len(rows), t, *rows[0].shape[1:]), np.float32)
    mask = np.zeros((len(rows), t), bool)
    for i, r in enumerate(rows):
        x[i, :len(r)], mask[i, :len(r)] = r, True
    return {name: x, MASK_NAME: mask}


def clip_input(path: str | os.PathLike, size: int, sampling) -> tuple[np.ndarray, np.ndarray]:
    """The video graph's input for one clip: (T, 3, S, S) float32 RGB 0-255 and its (T,) times (s).

    Frames at the times ``sampling`` (a ``core.media.videos.Sampling``, the run's) gives the clip,
    converted to RGB and stretched to S x S by FFmpeg's scaler (bilinear) in the decoder, turned
    upright, exactly as ``mlgraph extract`` and ``mlgraph predict`` read them."""
    info = probe(path)
    got = info if isinstance(info, SkippedImage) else read_frames(path, sampling.times(info.duration, info.fps),
                                                                   size=(size, size))
    if isinstance(got, SkippedImage):
        raise MlgraphError(f"{got.path}: {got.reason}")
    pictures, times = got  # (T, S, S, 3) uint8
    return np.ascontiguousarray(pictures.transpose(0, 3, 1, 2).astype(np.float32)), times  # (T, 3, S, S)


def onnx_input(image: Any, size: int) -> np.ndarray:
    """The graph's input for one image: a path or PIL image -> (3, S, S) float32 RGB 0-255.

    EXIF orientation applied, whole image stretched to ``size`` x ``size`` with PIL bilinear,
    exactly as ``mlgraph extract`` and ``mlgraph predict`` resize. Stack several along axis 0."""
    if not isinstance(image, Image.Image):
        loaded = load_image(image)
        if isinstance(loaded, SkippedImage):
            raise MlgraphError(f"{loaded.path}: {loaded.reason}")
        image = loaded
    image = image.convert("RGB")
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    return np.ascontiguousarray(np.asarray(image, dtype=np.float32).transpose(2, 0, 1))  # (S, S, 3) -> (3, S, S)


def per_label_thresholds(config: dict[str, Any], labels: list[str]) -> dict[str, float] | None:
    """The run's per-label thresholds as label -> value (``thresholds`` in config.json, a list in
    label order checked by RunConfig), or None when the run has none."""
    found = config.get("thresholds")
    return None if found is None else {name: float(t) for name, t in zip(labels, found)}


def exporter_name() -> str:
    return f"torch.onnx dynamo (torch {torch.__version__})"
