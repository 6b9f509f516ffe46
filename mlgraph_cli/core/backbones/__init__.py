"""Image backbones: a CNN cut at one or two stages, its weights, and the preprocessing it needs.

- build.py: names, :func:`build_backbone`, :class:`Backbone`, rebuilding from a stored config;
- weights.py: local state dicts, torchvision weights (hub cache, download, offline mode), Lite0's;
- lite0.py: the EfficientNet-Lite0 body cut at named stages;
- timm_models.py: any timm CNN through ``features_only`` (optional extra);
- preprocess.py: :class:`Preprocess`, the stretch-resize and normalisation stored with features.
"""

from mlgraph_cli.core.backbones.build import (
    DEFAULT_IMAGE_SIZE,
    Backbone,
    backbone_config,
    backbone_from_config,
    build_backbone,
    canonical_name,
    list_backbones,
)
from mlgraph_cli.core.backbones.lite0 import LITE0, LITE0_MEAN_STD, lite0_layer_names
from mlgraph_cli.core.backbones.preprocess import Preprocess
from mlgraph_cli.core.backbones.weights import load_state_file, offline_from_env

__all__ = [
    "DEFAULT_IMAGE_SIZE", "LITE0", "LITE0_MEAN_STD", "Backbone", "Preprocess", "backbone_config",
    "backbone_from_config", "build_backbone", "canonical_name", "list_backbones", "lite0_layer_names",
    "load_state_file", "offline_from_env",
]
