"""Classification heads over cached backbone features, registered by name.

Every head maps a feature map x (B, D, H, W) (for ``ms-cma`` a list of maps, one per stage)
to logits (B, C), and exposes ``config`` (plain JSON), ``needs_embeddings``,
``needs_adjacency`` and ``multi_scale``. ``cma`` and ``ms-cma`` also have
``attention(x) -> (B, C, H, W)``.

    head = build_head("cma", in_channels=2048, num_labels=80, embeddings=e)   # e: (80, d)
    again = build_head(**head.config)        # embeddings come back with load_state_dict
    again.load_state_dict(head.state_dict())

Heads: ``cma`` and ``ms-cma`` (You et al., AAAI 2020; core/models/cma.py, core/models/ms_cma.py), ``gap``, ``gmp``
and ``mlgcn`` (Chen et al., CVPR 2019; core/models/baselines.py), ``query`` (label queries,
Query2Label / ML-Decoder; core/models/query.py) and ``probe`` (a linear probe fitted by logistic
regression; core/models/linear_probe.py) over image maps, and their temporal kin over video
frames, called as ``head(x, mask)``: ``video-cma``, ``video-gap``, ``video-gmp`` and the
frame-level reference ``video-frame-max`` (core/models/temporal.py), ``video-query`` and
``video-probe`` (beside their image forms: the same heads with frames as locations).

One registry holds them all; each head class says its ``modality`` ("image" or "video"), and
:func:`resolve_head` turns the name a user types (``--head cma``) into the entry for the data's
modality (``video-cma`` on video features), or a one-line error.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from mlgraph_cli.core.models.baselines import MLGCN, GlobalPoolHead, gap, gmp, mlgcn, normalize_adjacency
from mlgraph_cli.core.models.cma import CrossModalityAttention, CrossModalityTransform, cma
from mlgraph_cli.core.models.ms_cma import MultiScaleCMA, ms_cma
from mlgraph_cli.core.models.common import Head
from mlgraph_cli.core.models.linear_probe import LinearProbeHead, TemporalLinearProbe, probe, video_probe
from mlgraph_cli.core.models.query import QueryHead, TemporalQueryHead, query, video_query
from mlgraph_cli.core.models.temporal import (TemporalCMA, TemporalPoolHead, video_cma, video_frame_max, video_gap,
                                              video_gmp)
from mlgraph_cli.errors import InputError

HEADS: dict[str, Callable[..., nn.Module]] = {
    "cma": cma,
    "ms-cma": ms_cma,
    "gap": gap,
    "gmp": gmp,
    "mlgcn": mlgcn,
    "query": query,
    "probe": probe,
    "video-cma": video_cma,
    "video-gap": video_gap,
    "video-gmp": video_gmp,
    "video-frame-max": video_frame_max,
    "video-query": video_query,
    "video-probe": video_probe,
}
MODALITIES = ("image", "video")


def head_modality(name: str) -> str:
    """"image" or "video": what the registered head ``name`` reads."""
    return HEADS[name].head_class.modality


def heads_for(modality: str) -> list[str]:
    """The names a user may pass for data of ``modality`` (video heads without their prefix)."""
    names = [n for n in HEADS if head_modality(n) == modality]
    return [n.removeprefix("video-") for n in names] if modality == "video" else names


def resolve_head(name: str, modality: str, source: object = None) -> str:
    """The registry entry for ``--head name`` on data of ``modality``: ``cma`` on video is
    ``video-cma``. An unknown name, or a head of the other modality, is a one-line error naming
    ``source`` (the features file) when given."""
    for key in ((f"video-{name}", name) if modality == "video" else (name,)):
        if key in HEADS and head_modality(key) == modality:
            return key
    choices = ", ".join(heads_for(modality))
    if name not in HEADS and f"video-{name}" not in HEADS:
        raise InputError(f"--head {name}: unknown head (choose one of: {choices})")
    if modality == "video":
        where = f"{source} holds" if source is not None else "these are"
        raise InputError(f"--head {name}: not a head for video; {where} video features from `mlgraph import-yt8m` "
                         f"(choose one of: {choices})")
    where = f" ({source} holds image features)" if source is not None else ""
    raise InputError(f"--head {name}: a head for video features from `mlgraph import-yt8m`, not for images{where} "
                     f"(choose one of: {choices})")


# Options the benchmarks measured and did not keep (docs/benchmarks.md), removed from the heads:
# option -> the value that did nothing. A run saved before their removal carries them in its
# config.json at that value and still loads; any other value cannot be rebuilt.
RETIRED_OPTIONS: dict[str, Any] = {"sharpen": False, "tune_embeddings": False, "anchor": None, "norm": False,
                                   "delta": 0.0}


def _without_retired(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` less the retired ones at their no-op value; a retired option that did something
    is a one-line error."""
    for key, inert in RETIRED_OPTIONS.items():
        if key in options and inert is not None and options[key] != inert:
            raise InputError(f"head {name!r}: option {key} = {options[key]!r} was removed (the benchmarks did not keep "
                             f"it; train the run again without it with `mlgraph train`)")
    return {k: v for k, v in options.items() if k not in RETIRED_OPTIONS}


def build_head(name: str, *, in_channels: int | list[int], num_labels: int,
               embeddings: torch.Tensor | None = None, adjacency: torch.Tensor | None = None,
               **options: Any) -> nn.Module:
    """Build the head ``name`` (one of :data:`HEADS`).

    in_channels: D of the feature map (a list of D per stage for ``ms-cma``).
    num_labels: C. embeddings: (C, d) label embeddings, kept frozen (``cma``, ``ms-cma``,
    ``mlgcn``). adjacency: (C, C) label adjacency for ``mlgcn`` (``core.graph.adjacency(g,
    "mlgcn")``). options: the head's keyword options (see each class's docstring); an
    ``embedding_dim`` without ``embeddings`` builds zero buffers that ``load_state_dict`` fills,
    which is how ``build_head(**head.config)`` rebuilds a saved head.

    An unknown name or option raises :class:`~mlgraph_cli.errors.InputError` listing the choices.
    """
    try:
        factory = HEADS[name]
    except KeyError:
        raise InputError(f"unknown head {name!r} (choose one of: {', '.join(HEADS)})") from None
    options = _without_retired(name, options)
    allowed = factory.head_class.option_names()
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise InputError(f"head {name!r} has no option {', '.join(unknown)} "
                         f"(its options: {', '.join(allowed) or 'none'})")
    if factory.head_class.modality == "video":  # temporal heads take no adjacency
        return factory(in_channels=in_channels, num_labels=num_labels, embeddings=embeddings, **options)
    return factory(in_channels=in_channels, num_labels=num_labels, embeddings=embeddings,
                   adjacency=adjacency, **options)


__all__ = [
    "HEADS", "build_head", "Head", "CrossModalityAttention", "CrossModalityTransform", "MultiScaleCMA",
    "GlobalPoolHead", "MLGCN", "normalize_adjacency", "TemporalCMA", "TemporalPoolHead", "MODALITIES",
    "head_modality", "heads_for", "resolve_head", "QueryHead", "TemporalQueryHead",
    "LinearProbeHead", "TemporalLinearProbe",
]
