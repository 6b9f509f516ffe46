"""A declared label set: the labels of a dataset, whatever one split of it happens to hold.

A few validation images rarely carry every label, so the labels read from one split's
annotations may lack some. Declaring the set (``--labels FILE``: one label per line, or the graph
``mlgraph build-graph`` wrote, whose label order is kept) gives every split the same columns in
the same order: a declared label that no image of a split carries is an all-zero column there.
A label of the annotations that is not declared is an error, except the ones the graph itself
left out on purpose (``build-graph --min-count``), which are dropped with a note.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from mlgraph_cli.core.annotations.common import Annotations, first_duplicate, read_text
from mlgraph_cli.core.graph.files import read_graph
from mlgraph_cli.core.io.inputs import check_input_file
from mlgraph_cli.core.progress import NULL_PROGRESS
from mlgraph_cli.errors import MismatchError, input_error

LABELS_FIX = "a label file has one label per line; or pass the graph from `mlgraph build-graph`"


@dataclass
class LabelSet:
    """Declared labels in order; ``graph``: read from a graph file, whose ``--min-count`` left out
    the labels in ``dropped``."""

    labels: list[str]
    source: Path
    graph: bool = False
    dropped: list[str] = field(default_factory=list)

    @property
    def fix(self) -> str:
        """How to declare a label this set lacks."""
        if self.graph:
            return (f"build {self.source} from annotations that hold every label with `mlgraph build-graph`, or "
                    "pass --labels FILE listing them")
        return f"add them to {self.source}"


def read_label_set(path: str | os.PathLike) -> LabelSet:
    """The labels of a text file (one per line; blank lines skipped) or of a graph file (.json
    from ``mlgraph build-graph``, or .graphml), in their order."""
    p = check_input_file(path, fix=LABELS_FIX)
    with open(p, "rb") as fh:
        head = fh.read(1 << 12).lstrip()
    if p.suffix.lower() in (".json", ".graphml") or head.startswith((b"{", b"<")):
        graph = read_graph(p)
        return LabelSet(list(graph.labels), p, graph=True, dropped=sorted(graph.meta.get("dropped_labels") or {}))
    labels = [line.strip() for line in read_text(p, NULL_PROGRESS).splitlines() if line.strip()]
    if len(set(labels)) != len(labels):
        raise input_error(p, f"label {first_duplicate(labels)!r} is listed twice", "list each label once")
    return LabelSet(labels, p)


def declare_labels(ann: Annotations, declared: LabelSet) -> tuple[Annotations, list[str]]:
    """``ann`` with the declared columns, in the declared order, and the notes that say what changed.

    A declared label no image carries becomes an all-zero column (a note, not an error); a label
    of ``ann`` that is not declared raises :class:`MismatchError` naming the fix, unless the
    graph dropped it (``--min-count``), in which case its column is dropped with a note.
    """
    wanted = set(declared.labels)
    extra = [name for name in ann.labels if name not in wanted]
    undeclared = [name for name in extra if name not in set(declared.dropped)]
    if undeclared:
        raise MismatchError(f"{ann.source}: {len(undeclared)} label(s) are not in the declared label set of "
                            f"{declared.source}: {_shown(undeclared)} ({declared.fix})")
    notes = []
    if extra:
        notes.append(f"{len(extra)} label(s) that {declared.source} dropped under --min-count are left out: "
                     f"{_shown(extra)}")
    absent = [name for name in declared.labels if name not in set(ann.labels)]
    if absent:
        notes.append(f"{len(absent)} declared label(s) of {declared.source} are on no image of {ann.source} and "
                     f"are stored as all-zero columns: {_shown(absent)}")
    return ann.reorder(declared.labels, drop=extra), notes


def _shown(names: list[str], limit: int = 5) -> str:
    return ", ".join(repr(x) for x in names[:limit]) + (", ..." if len(names) > limit else "")
