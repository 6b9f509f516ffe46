"""The library: everything mlgraph computes. Never imports typer or rich.

Packages in the order data flows through them:

- ``io``: the contracts every stage shares (what an artifact says it is, how an output is written,
  how HDF5 artifacts are read);
- ``annotations``, ``media``: what a user brings (annotation files; images, video files,
  YouTube-8M records);
- ``graph``: the label co-occurrence graph; ``embeddings``: label embeddings from it;
- ``features``: backbones, the extraction plan, the features file and its shards;
- ``models``: the heads (CMA and its baselines, image and video) and the classifier around them;
- ``training``: data, batches, the Trainer, the run folder it writes;
- ``evaluation``: metrics, thresholds, plots;
- ``inference``: a trained run applied to images, records or video files; explanations; ONNX export;
- ``datasets``: the fashion-scenes set ``mlgraph make-dataset`` builds.

Each package keeps its settings beside it (``<package>/config.py``: plain dataclasses, so a
command's help can show their defaults without importing torch). Modules at this level are
shared by every package: ``progress`` (the hook library code reports through), ``device``
(``--device`` resolved in one place), ``project`` (mlgraph.toml).
"""
