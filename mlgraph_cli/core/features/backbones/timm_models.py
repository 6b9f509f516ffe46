"""Any timm CNN as a backbone, through ``features_only=True`` (optional: ``pip install "mlgraph[timm]"``).

Spelled ``--backbone timm/<architecture>`` (``timm/convnext_tiny``, ``timm/resnet50``). Layers are
timm's feature stages, named by their module (``stages.3``, ``layer4``). Weights: ``none`` (seeded
random init), ``DEFAULT`` (timm's default pretrained tag) or a tag (``fb_in1k``), fetched from the
Hugging Face hub into its cache, or a local ``.safetensors``/``.pth`` file. A download first asks
the hub once, without retries, whether it can be reached: huggingface_hub retries a failed
download five times with back-off (a warning line each, about a minute) before it gives up, and
without a network that is all it can do. Preprocessing takes
the mean, std and input size from timm's pretrained config of that tag; the resize stays
mlgraph's whole-image stretch (see core/features/backbones/preprocess.py).
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from mlgraph_cli.core.features.backbones.weights import exception_line, looks_like_path, seeded
from mlgraph_cli.errors import InputError, MlgraphError, input_error

PREFIX = "timm/"
INSTALL = 'install timm with `pip install "mlgraph[timm]"`'
_PRETRAINED = ("DEFAULT", "IMAGENET", "IMAGENET1K", "PRETRAINED")
_FETCH = ("download model.safetensors (or pytorch_model.bin) from https://huggingface.co/{} and pass "
          "--weights PATH, or --weights none")


def _timm():
    try:
        # lazy: optional dependency (timm, extra `timm`)
        import timm
    except ImportError:
        raise MlgraphError(f"--backbone timm/...: timm is not installed ({INSTALL})") from None
    return timm


def canonical_timm_name(name: str) -> str:
    """``timm/<arch>`` with a known architecture, or a one-line error listing close names."""
    timm = _timm()
    arch = name.strip()[len(PREFIX):].strip().lower()
    if timm.is_model(arch):
        return PREFIX + arch
    close = difflib.get_close_matches(arch, timm.list_models(), n=5, cutoff=0.6)
    hint = f"did you mean {', '.join(PREFIX + c for c in close)}?" if close else "see timm.list_models()"
    raise MlgraphError(f"--backbone {name}: unknown timm model ({hint})")


class TimmBody(nn.Module):
    """timm's FeatureListNet, returning ``{stage module name: (B, D, H, W)}`` like the other bodies."""

    def __init__(self, net: nn.Module, layers: Sequence[str]) -> None:
        super().__init__()
        self.net, self.layers = net, list(layers)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return dict(zip(self.layers, self.net(x)))


def _create(arch: str, weights: str, seed: int, offline: bool, out_indices: tuple[int, ...] | None):
    """(FeatureListNet, resolved weights string)."""
    timm = _timm()
    kwargs = dict(features_only=True, **({"out_indices": out_indices} if out_indices is not None else {}))
    spec = weights.strip()
    if spec.lower() == "none":
        return seeded(seed, lambda: timm.create_model(arch, pretrained=False, **kwargs)), "none"
    path = Path(spec).expanduser()
    if path.is_file() or looks_like_path(spec):
        if not path.is_file():
            raise input_error(path, "no such weights file", "pass a state-dict file, a timm tag, DEFAULT, or --weights none")
        try:
            net = seeded(seed, lambda: timm.create_model(arch, pretrained=True, pretrained_cfg_overlay={"file": os.fspath(path)},
                                                         **kwargs))
        except Exception as exc:  # noqa: BLE001 -- a file that does not fit is the user's to replace
            raise input_error(path, f"does not fit timm/{arch} ({exception_line(exc)})",
                              "pass weights saved from the same architecture, or pick the matching --backbone") from None
        return net, os.fspath(path.resolve())
    tag = "" if spec.upper() in _PRETRAINED else spec
    full = f"{arch}.{tag}" if tag else arch
    if tag and full not in timm.list_pretrained(f"{arch}.*"):
        tags = [n.split(".", 1)[1] for n in timm.list_pretrained(f"{arch}.*")][:8]
        raise MlgraphError(f"--weights {spec}: no such pretrained tag for timm/{arch} (choose from DEFAULT, "
                           f"{', '.join(tags)}, a state-dict file, or none)")
    cfg = timm.models.get_pretrained_cfg(full) if hasattr(timm.models, "get_pretrained_cfg") else None
    hub_id = getattr(cfg, "hf_hub_id", None) or f"timm/{full}"
    overlay = {}
    cached = _cached(hub_id)
    if offline:
        if cached is None:
            raise InputError(f"{hub_id}: timm weights are not in the Hugging Face cache and offline mode forbids "
                             f"downloading (--offline, MLGRAPH_OFFLINE or HF_HUB_OFFLINE) ({_FETCH.format(hub_id)})")
        overlay = {"pretrained_cfg_overlay": {"file": cached}}
    elif cached is None and getattr(cfg, "hf_hub_id", None):  # (weights at a plain URL go through torch's download)
        _check_hub_reachable(hub_id)
    try:
        net = timm.create_model(full, pretrained=True, **overlay, **kwargs)
    except Exception as exc:  # noqa: BLE001 -- no network, a proxy, a missing file: the same advice
        raise InputError(f"{hub_id}: cannot fetch timm weights ({exception_line(exc)}) "
                         f"({_FETCH.format(hub_id)})") from None
    return net, str(net.pretrained_cfg.get("tag") or tag or "DEFAULT")


def _cached(hub_id: str) -> str | None:
    """The weights file of ``hub_id`` in the Hugging Face cache, or None."""
    # lazy: optional dependency (huggingface_hub comes with timm)
    from huggingface_hub import try_to_load_from_cache

    found = [try_to_load_from_cache(hub_id, f) for f in ("model.safetensors", "pytorch_model.bin")]
    return next((f for f in found if isinstance(f, str)), None)


def _check_hub_reachable(hub_id: str) -> None:
    """One request for the weights' metadata, without retries; a hub that cannot be reached is a
    one-line :class:`InputError` at once. A hub that answers (even "no such file") lets timm go on."""
    # lazy: optional dependency (huggingface_hub comes with timm)
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url
    from huggingface_hub.utils import HfHubHTTPError

    try:
        get_hf_file_metadata(hf_hub_url(hub_id, "model.safetensors"), timeout=constants.HF_HUB_ETAG_TIMEOUT)
    except HfHubHTTPError:
        return  # the hub answered: a missing file or a gated repository is timm's to report
    except Exception as exc:  # noqa: BLE001 -- no network, a proxy, DNS, a timeout: the same advice
        raise InputError(f"{hub_id}: cannot reach the Hugging Face hub at {constants.ENDPOINT} ({exception_line(exc)}) "
                         f"({_FETCH.format(hub_id)}; or put it in the Hugging Face cache and pass --offline)") from None


def timm_model(name: str, weights: str, layers: Sequence[str], seed: int, *, offline: bool
               ) -> tuple[TimmBody, str, list[str], list[str], tuple, tuple, int]:
    """(body, resolved weights, stages, layers in forward order, mean, std, default image size).

    Raises :class:`MlgraphError` for an unknown layer, listing timm's feature stages.
    """
    arch = name[len(PREFIX):]
    probe, resolved = _create(arch, "none", seed, offline, None)  # every stage, to learn their names
    stages = list(probe.feature_info.module_name())
    layers = list(layers) or [stages[-1]]
    for layer in layers:
        if layer not in stages:
            raise MlgraphError(f"--layer {layer}: not a layer of {name} (choose from {', '.join(stages)})")
    layers.sort(key=stages.index)
    net, resolved = _create(arch, weights, seed, offline, tuple(stages.index(layer) for layer in layers))
    cfg = net.pretrained_cfg
    mean, std = tuple(cfg.get("mean", (0.485, 0.456, 0.406))), tuple(cfg.get("std", (0.229, 0.224, 0.225)))
    size = int(cfg.get("input_size", (3, 224, 224))[-1])
    return TimmBody(net, layers), resolved, stages, layers, mean, std, size
