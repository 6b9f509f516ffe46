"""Settings of ``mlgraph build-graph``: a plain dataclass (no numpy at import), so the command's
help can show its defaults without loading the readers."""

from __future__ import annotations

from dataclasses import dataclass

# The annotation formats core/annotations reads, here so that the CLI can list them without numpy.
FORMATS = ("coco", "voc", "nuswide", "openimages", "csv", "jsonl", "yolo", "stats")
EXTRA_FORMATS = ("yt8m",)  # beyond the annotation formats: YouTube-8M TFRecords (core/media/yt8m/files.py)
GRAPH_FORMATS = (*FORMATS, *EXTRA_FORMATS)  # what build-graph (and init, fit) read
LABEL_ORDERS = ("name", "id")  # "name": sorted; "id": the dataset's own order
# The adjacencies derived from a graph (core/graph/adjacency.py ADJACENCIES, which holds their functions).
ADJACENCY_KINDS = ("cond-mean", "binary", "mlgcn", "jaccard", "npmi")


@dataclass
class BuildGraphConfig:
    """Options of ``mlgraph build-graph`` (and the project's ``[build-graph]`` table)."""

    format: str | None = None  # one of GRAPH_FORMATS; None = detect
    label_order: str = "name"  # "name" (sorted) | "id" (the dataset's own order)
    split: str | None = None  # VOC image set (default trainval) / NUS-WIDE all|train|test / YOLO split
    min_count: int = 0  # drop labels carried by fewer images
    delimiter: str | None = None  # CSV column delimiter (default: sniffed , or tab)
    label_delimiter: str | None = None  # CSV label delimiter (default ;)
    classes: str | None = None  # Open Images class descriptions / NUS-WIDE concept list
    vocabulary: str | None = None  # yt8m: vocabulary.csv (label names; its classes are the columns)
    segment_classes: str | None = None  # yt8m: segment_label_ids.csv (only these classes)

    def __post_init__(self) -> None:
        if self.format is not None and self.format not in GRAPH_FORMATS:
            raise ValueError(f"format must be one of {', '.join(GRAPH_FORMATS)}, not {self.format!r}")
        if self.label_order not in LABEL_ORDERS:
            raise ValueError(f"label_order must be one of {', '.join(LABEL_ORDERS)}, not {self.label_order!r}")
        if not isinstance(self.min_count, int) or self.min_count < 0:
            raise ValueError(f"min_count must be a whole number >= 0, not {self.min_count!r}")
