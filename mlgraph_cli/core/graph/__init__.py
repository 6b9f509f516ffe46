"""The label co-occurrence graph (docs/method.md, "The label graph").

A :class:`LabelGraph` keeps the raw statistics only: the number of images N, the image count
n_i of every label and the co-occurrence counts M_ij (symmetric, zero diagonal). Adjacencies
are derived from them by name (:func:`adjacency`), so the parameters that shape a graph are
chosen by the consumer and recorded there.

Layout: ``counts`` (the graph and how it is counted), ``adjacency`` (the adjacencies derived
from the counts), ``files`` (node-link JSON and GraphML, and the checks a file read from disk
must pass).
"""
