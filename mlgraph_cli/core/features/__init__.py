"""Features: images, video frames or YouTube-8M records turned into the features file.

- backbones/: CNNs cut at named stages, their weights and preprocessing;
- config.py, yt8m_config.py: the settings of ``mlgraph extract`` and ``mlgraph import-yt8m``;
- plan.py: which inputs, in which order, with which labels;
- file.py, video_file.py: the resumable features file (images; video frames);
- checks.py: what a read checks (checksums, finite maps, labels);
- shards.py: a plan cut into shards and merged back.
"""
