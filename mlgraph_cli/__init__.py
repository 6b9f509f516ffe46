"""mlgraph: multi-label classification with cross-modality attention guided by semantic graph
embeddings (You et al., AAAI 2020), as composable command-line stages."""

__version__ = "0.1.0"
