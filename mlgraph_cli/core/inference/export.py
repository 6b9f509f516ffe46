"""A trained image run as one ONNX graph: raw RGB pixels in, label probabilities out.

The graph holds everything after decoding and resizing, so a runtime without mlgraph only has
to do what ``mlgraph extract`` does to an image file before the network sees it:

1. decode, apply the EXIF orientation, convert to RGB;
2. stretch-resize the whole image to S x S with PIL's bilinear filter (no crop, aspect not kept);
3. stack as float32 (N, 3, S, S), values 0-255 (:func:`onnx_input` does 1-3 for one image).

Inside the graph: ``(x * scale - mean) / std`` with the run's recorded preprocessing (ImageNet
mean/std for torchvision backbones, TF-Lite's 0.5/0.5 for EfficientNet-Lite0), the backbone, the
head, and a sigmoid: the output is (N, C) probabilities in the run's label order. The batch
axis is dynamic.

Exporter: ``torch.onnx.export(..., dynamo=True)``, the torch.export-based exporter that torch
has made its default and maintains; the TorchScript exporter still runs but is deprecated and
warns on every call. Both work offline; the dynamo one needs ``onnxscript`` (part of the
``export`` extra) and takes a few seconds longer.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

import numpy as np
import torch
from torch import nn

from mlgraph_cli.errors import MlgraphError

# What `pip install "mlgraph[export]"` brings: the graph format, the dynamo exporter's ONNX
# builder, and the runtime that checks the written graph.
REQUIRED = ("onnx", "onnxscript", "onnxruntime")
INPUT_NAME = "images"
OUTPUT_NAME = "probabilities"
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


def export_onnx(model: nn.Module, dest: str | os.PathLike, *, image_size: int, opset: int | None = None,
                metadata: dict[str, str] | None = None) -> int:
    """Write ``model`` (a :class:`PixelsToProbabilities` in eval mode, on the CPU) to ``dest`` as
    one self-contained ONNX file with a dynamic batch axis. ``metadata`` goes into the graph's
    ``metadata_props``. Returns the opset written."""
    import warnings

    example = torch.rand(2, 3, image_size, image_size) * 255  # batch 2: a batch of 1 may be specialised
    batch = torch.export.Dim("batch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's FutureWarnings and tracing notes, not the user's
        program = torch.onnx.export(model, (example,), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                    dynamic_shapes={"pixels": {0: batch}}, opset_version=opset, dynamo=True,
                                    verbose=False, external_data=False)
    program.model.metadata_props.update(metadata or {})
    program.save(os.fspath(dest), external_data=False)
    return int(program.model.opset_imports.get("", 0))


def check_with_onnxruntime(model: nn.Module, path: str | os.PathLike, *, image_size: int, batch: int = 3,
                           seed: int = 0) -> float:
    """Run random pixels through the written graph and through ``model``; return max |difference|.

    Uses a batch other than the export's to exercise the dynamic axis."""
    import onnxruntime as ort

    pixels = torch.from_numpy(np.random.default_rng(seed).uniform(0, 255, (batch, 3, image_size, image_size))
                              .astype(np.float32))
    with torch.no_grad():
        expected = model(pixels).numpy()
    session = ort.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
    got = session.run([OUTPUT_NAME], {INPUT_NAME: pixels.numpy()})[0]
    return float(np.abs(got - expected).max())


def onnx_input(image: Any, size: int) -> np.ndarray:
    """The graph's input for one image: a path or PIL image -> (3, S, S) float32 RGB 0-255.

    EXIF orientation applied, whole image stretched to ``size`` x ``size`` with PIL bilinear,
    exactly as ``mlgraph extract`` and ``mlgraph predict`` resize. Stack several along axis 0."""
    from PIL import Image

    from mlgraph_cli.core.media.images import SkippedImage, load_image

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
