"""Where tensors live: the one place a ``--device`` string becomes a ``torch.device``.

Library code never calls ``.cuda()``; it receives the device resolved here.
"""

from __future__ import annotations

import re

import torch

from mlgraph_cli.errors import MlgraphError

_SPEC = re.compile(r"^(auto|cpu|mps|cuda)(?::(\d+))?$")


def resolve_device(spec: str | None = "auto"):
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``; ``cpu``, ``cuda``, ``cuda:1``, ``mps`` as given.

    A device this machine does not have is a user error (one line naming ``--device``).
    """
    text = (spec or "auto").strip().lower()
    m = _SPEC.match(text)
    if not m or (m.group(2) is not None and m.group(1) != "cuda"):
        raise MlgraphError(f"--device {spec}: not a device (use auto, cpu, cuda, cuda:N or mps)")
    kind, index = m.group(1), m.group(2)
    if kind == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if kind == "cpu":
        return torch.device("cpu")
    if kind == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise MlgraphError(f"--device {spec}: MPS is not available on this machine (use --device cpu or auto)")
        return torch.device("mps")
    if not torch.cuda.is_available():
        raise MlgraphError(f"--device {spec}: CUDA is not available on this machine (use --device cpu or auto)")
    count = torch.cuda.device_count()
    if index is not None and int(index) >= count:
        raise MlgraphError(f"--device {spec}: this machine has {count} CUDA device(s), numbered 0 to {count - 1}")
    return torch.device(text)
