"""Image backbones: a CNN cut at one or two stages, its weights, and the preprocessing it needs.

- build.py: names, :func:`build_backbone`, :class:`Backbone`, rebuilding from a stored config;
- weights.py: local state dicts, torchvision weights (hub cache, download, offline mode), Lite0's;
- lite0.py: the EfficientNet-Lite0 body cut at named stages;
- timm_models.py: any timm CNN through ``features_only`` (optional extra);
- preprocess.py: :class:`Preprocess`, the stretch-resize and normalisation stored with features.
"""
