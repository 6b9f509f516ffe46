"""Label embeddings: the file, ASGE and its baselines, and how well they rank graph neighbours.

- files.py: :class:`LabelEmbeddings` and the ``mlgraph/embeddings@1`` HDF5 file;
- asge.py: :func:`asge_embeddings`, cosine similarity fitted to an adjacency;
- baselines.py: one-hot, spectral and DeepWalk embeddings;
- quality.py: neighbour-ranking AP and correlations of an embedding with a graph.
"""
