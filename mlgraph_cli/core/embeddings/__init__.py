"""Label embeddings: the file, ASGE and its baselines, and how well they rank graph neighbours.

- files.py: :class:`LabelEmbeddings` and the ``mlgraph/embeddings@1`` HDF5 file;
- asge.py: :func:`asge_embeddings`, cosine similarity fitted to an adjacency;
- baselines.py: one-hot, spectral and DeepWalk embeddings;
- quality.py: neighbour-ranking AP and correlations of an embedding with a graph.
"""

from mlgraph_cli.core.embeddings.asge import WEIGHTINGS, asge_embeddings, asge_loss, pair_weights, standardise_init
from mlgraph_cli.core.embeddings.baselines import (
    deepwalk_embeddings, onehot_embeddings, random_walks, spectral_embeddings,
)
from mlgraph_cli.core.embeddings.files import LabelEmbeddings, read_embeddings, write_embeddings
from mlgraph_cli.core.embeddings.quality import average_precision, cosine_matrix, neighbour_ranking

__all__ = [
    "WEIGHTINGS", "LabelEmbeddings", "asge_embeddings", "asge_loss", "average_precision", "cosine_matrix",
    "deepwalk_embeddings", "neighbour_ranking", "onehot_embeddings", "pair_weights", "random_walks",
    "read_embeddings", "spectral_embeddings", "standardise_init", "write_embeddings",
]
