"""What every classification head shares: the base class, input shapes, frozen label buffers.

A head maps cached backbone features to one logit per label. It never reads files: the
label embeddings and the adjacency arrive as tensors and are kept as buffers, so a saved
state dict carries them and ``head.config`` (plain JSON) is enough to rebuild the module.
"""

from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from mlgraph_cli.errors import InputError, MismatchError


class Head(nn.Module):
    """Base class of the heads: ``head(x) -> logits (B, C)`` and a rebuildable ``config``.

    Subclasses set the class flags and call :meth:`_remember` with the keyword arguments that
    :func:`mlgraph_cli.core.models.build_head` needs to rebuild them.
    """

    name: str = ""
    modality: str = "image"  # "image": maps (B, D, H, W); "video": frames (B, D, T) + a mask (B, T)
    needs_embeddings: bool = False
    needs_adjacency: bool = False
    multi_scale: bool = False
    fitted: bool = False  # solved in closed form by ``fit`` (core/training/fitting.py), not trained by SGD epochs

    def _remember(self, **config: Any) -> None:
        self._config = {"name": self.name, **config}

    def _linear_classifier(self, in_channels: int, num_labels: int, dropout: float) -> None:
        """What every pooling + linear head holds (image or video): its sizes, dropout, one
        ``nn.Linear(D, C)``, and the config that rebuilds it (the pool is told by its name)."""
        check_option(0.0 <= float(dropout) < 1.0, self.name, "dropout", dropout, "a probability in [0, 1)")
        self.in_channels, self.num_labels = int(in_channels), int(num_labels)
        self.dropout = nn.Dropout(float(dropout))
        self.fc = nn.Linear(in_channels, num_labels)
        self._remember(in_channels=self.in_channels, num_labels=self.num_labels, dropout=float(dropout))

    @classmethod
    def reads_embeddings(cls, options: dict[str, Any]) -> bool:
        """Whether a head built with ``options`` needs label embeddings (``needs_embeddings``, unless
        an option decides, as the query head's ``init``)."""
        return cls.needs_embeddings

    @property
    def config(self) -> dict[str, Any]:
        """A JSON-able dict: ``build_head(**head.config, embeddings=..., adjacency=...)`` rebuilds it."""
        return copy.deepcopy(self._config)

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        """The keyword options its constructor takes (what ``build_head(**options)`` may pass)."""
        params = inspect.signature(cls.__init__).parameters.values()
        return tuple(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self._config.items() if k != "name")


def makes(head_class: type[Head]) -> Callable[[Callable], Callable]:
    """Mark a factory function with the head class it builds (for option checking)."""

    def mark(factory: Callable) -> Callable:
        factory.head_class = head_class
        return factory

    return mark


def as_feature_map(x: torch.Tensor) -> torch.Tensor:
    """Accept (B, D, H, W) image maps, or (B, D, T) frame sequences as a (B, D, T, 1) map.

    For video the T frames play the role of the H x W locations (docs/method.md), so every head
    works on clips unchanged.
    """
    if x.dim() == 3:
        return x.unsqueeze(-1)  # (B, D, T) -> (B, D, T, 1)
    if x.dim() != 4:
        raise ValueError(f"expected features of shape (B, D, H, W) or (B, D, T), got {tuple(x.shape)}")
    return x


def check_channels(x: torch.Tensor, in_channels: int, head: str) -> None:
    if x.shape[1] != in_channels:
        raise MismatchError(
            f"head {head!r} was built for {in_channels}-channel features but got {x.shape[1]} channels "
            f"(train it on features from the same `mlgraph extract --backbone`)"
        )


def label_buffer(embeddings: torch.Tensor | None, num_labels: int, embedding_dim: int | None,
                 head: str) -> torch.Tensor:
    """The (C, d) float32 label embeddings a head keeps frozen as a buffer.

    With ``embeddings=None`` and an ``embedding_dim`` (rebuilding from ``head.config``) the
    buffer is zeros of that shape, to be filled by ``load_state_dict``.
    """
    if embeddings is None:
        if embedding_dim is None:
            raise InputError(f"head {head!r} needs label embeddings (make them with `mlgraph embed` "
                             f"and pass `--embeddings`)")
        return torch.zeros(num_labels, int(embedding_dim))
    e = torch.as_tensor(embeddings).detach().to(torch.float32).clone()
    if e.dim() != 2:
        raise MismatchError(f"label embeddings must be a (labels, dim) matrix, got shape {tuple(e.shape)}")
    if e.shape[0] != num_labels:
        raise MismatchError(
            f"the label embeddings have {e.shape[0]} rows for {num_labels} labels "
            f"(re-run `mlgraph embed` on this dataset's graph)"
        )
    if embedding_dim is not None and int(embedding_dim) != e.shape[1]:
        raise MismatchError(
            f"head {head!r} was built for {embedding_dim}-d label embeddings but got {e.shape[1]}-d ones "
            f"(use the embeddings file the model was trained with)"
        )
    return e


def check_option(ok: bool, head: str, option: str, value: Any, expected: str) -> None:
    """Raise a one-line :class:`InputError` for a bad head option (they come from config files)."""
    if not ok:
        raise InputError(f"head {head!r}: option {option} = {value!r} is not valid ({expected})")


# What a label does when none of the locations (or frames) has a positive cosine with it: attend
# to all alike ("uniform") or see nothing ("zero"). Shared by CMA and temporal CMA.
COLLAPSE_MODES = ("uniform", "zero")


# Singular values of the unit label embeddings below this share of the largest count as zero in
# the probe start: inverting them would stretch phi by more than 1 / PROBE_RANK_RTOL along a
# direction the labels barely span, and a location's cosine, which divides by |phi(x)|, would then
# follow that one direction instead of the labels' evidence.
PROBE_RANK_RTOL = 1e-4


@dataclass(frozen=True)
class ProbeFit:
    """How exactly a probe start reproduces the probe: rank of E among ``labels`` rows of width
    ``dim``, and ``residual`` = |E phi - V|_F / |V|_F (0 when rank = labels)."""

    rank: int
    labels: int
    dim: int
    residual: float

    @property
    def exact(self) -> bool:
        return self.rank == self.labels

    def note(self) -> str:
        """The line the probe start logs when it is not exact."""
        why = f"more labels than its width {self.dim}" if self.labels > self.dim else "rank-deficient"
        return (f"probe start: the label embeddings have rank {self.rank} for {self.labels} labels ({why}), so "
                f"no phi gives E phi = V; phi is the least-squares fit, relative residual {self.residual:.3f}: "
                f"each label's attention reads the probe's evidence only approximately at the start "
                f"(embeddings of rank {self.labels}, e.g. `mlgraph embed --dim {self.labels}` or wider, start "
                f"it exactly)")


def probe_transform(embeddings: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, ProbeFit]:
    """phi (d, D) minimising |E phi - V|_F, E the unit ``embeddings`` (C, d), V = ``weight`` (C, D).

    With rank(E) = C the minimum is 0 and phi = E^+ V gives <e_k, phi(x)> = <v_k, x> exactly.
    Otherwise (C > d, or embeddings that are linearly dependent) no phi does: the least-squares
    phi is the best one can do for every x at once (the error <e_k, phi x> - <v_k, x> is at most
    |E phi - V| |x|), and the classifiers still start as the probe's, so only where each label
    looks is approximate, not what it concludes from what it sees. Computed in float64 by an SVD
    truncated at :data:`PROBE_RANK_RTOL` (the minimum-norm solution among the least-squares ones).
    """
    e = torch.nn.functional.normalize(embeddings.double(), dim=1)  # (C, d)
    w = weight.double()  # (C, D)
    u, s, vh = torch.linalg.svd(e, full_matrices=False)  # (C, r0), (r0,), (r0, d)
    rank = int((s > PROBE_RANK_RTOL * s[0]).sum()) if s.numel() else 0
    u, s, vh = u[:, :rank], s[:rank], vh[:rank]
    phi = vh.T @ ((u.T @ w) / s[:, None])  # (d, r) @ ((r, C) @ (C, D) / (r, 1)) -> (d, D)
    residual = float(torch.linalg.norm(e @ phi - w) / torch.linalg.norm(w).clamp_min(1e-30))
    return phi.float(), ProbeFit(rank=rank, labels=int(e.shape[0]), dim=int(e.shape[1]), residual=residual)


@torch.no_grad()
def start_from_probe(head: Head, transform: nn.Module | None, embeddings: torch.Tensor, weight: torch.Tensor,
                     bias: torch.Tensor, branch: nn.Linear | None) -> ProbeFit:
    """Start an attention head (CMA, temporal CMA) from a linear probe on pooled features.

    weight (C, D), bias (C,): the probe's logit_k = <v_k, x> + b_k. ``transform`` is the head's
    one linear map phi (a 1x1 convolution; None when phi is deeper): it becomes the least-squares
    solution of E phi = V (:func:`probe_transform`; E^+ V when rank(E) = C), so <e_k, phi(x)> =
    <v_k, x> at every location or frame, and labels whose embeddings are close because they
    co-occur do not borrow each other's evidence. The head's classifiers (``head.weight``,
    ``head.bias``) become the probe's and its pooled ``branch`` starts at zero, so the first
    logits are the probe's, pooled by the attention. Returns how exact the start is.
    """
    if transform is None:
        raise ValueError("init_from_probe needs a linear cross-modality transform (cmt_layers = 1)")
    w = torch.as_tensor(weight, dtype=torch.float32, device=head.weight.device)
    b = torch.as_tensor(bias, dtype=torch.float32, device=head.weight.device)
    if tuple(w.shape) != tuple(head.weight.shape) or tuple(b.shape) != tuple(head.bias.shape):
        raise ValueError(f"probe of shape {tuple(w.shape)}, {tuple(b.shape)} for a head of "
                         f"{tuple(head.weight.shape)}, {tuple(head.bias.shape)}")
    phi, fit = probe_transform(embeddings, w)  # (d, D)
    transform.weight.copy_(phi.reshape(transform.weight.shape))  # (d, D) -> (d, D, 1) or (d, D, 1, 1)
    transform.bias.zero_()
    head.weight.copy_(w)
    head.bias.copy_(b)
    if branch is not None:
        branch.weight.zero_()
        branch.bias.zero_()
    return fit


def check_attention_options(head: str, *, hidden: Any, dropout: Any, eps: Any, collapse: Any) -> None:
    """The options CMA and temporal CMA share, each checked with a one-line error naming ``head``."""
    check_option(isinstance(hidden, int) and hidden >= 1, head, "hidden", hidden, "a positive width")
    check_option(0.0 <= float(dropout) < 1.0, head, "dropout", dropout, "a probability in [0, 1)")
    check_option(float(eps) > 0, head, "eps", eps, "a small positive number")
    check_option(collapse in COLLAPSE_MODES, head, "collapse", collapse, " or ".join(COLLAPSE_MODES))
