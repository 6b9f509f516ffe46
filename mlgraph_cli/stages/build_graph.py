"""Stage: annotations (or pre-computed label statistics) -> label co-occurrence graph file.

docs/method.md ("The label graph") and docs/formats.md: count n_i and M_ij from the training annotations, keep the raw counts,
record where they came from. ``--min-count`` drops rare labels after counting; every other
choice (label order, split, delimiters) is recorded in the graph's meta.

YouTube-8M (``yt8m``): the video labels of TFRecord shards (files, quoted globs, folders), read by
``load_yt8m_annotations`` from each record's context alone; ``vocabulary`` / ``segment_classes``
give the same label columns as ``mlgraph import-yt8m`` with the same files.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlgraph_cli.core.annotations import detect_format, load_annotations, load_label_stats
from mlgraph_cli.core.graph.config import BuildGraphConfig
from mlgraph_cli.core.graph.counts import LabelGraph, build_label_graph
from mlgraph_cli.core.graph.files import write_graph
from mlgraph_cli.core.io.artifacts import provenance
from mlgraph_cli.core.io.outputs import check_output
from mlgraph_cli.core.media.yt8m.files import expand_inputs
from mlgraph_cli.core.media.yt8m.labels import load_yt8m_annotations
from mlgraph_cli.core.progress import NULL_PROGRESS, ProgressHook
from mlgraph_cli.core.project import merge_config, resolve_input, resolve_output
from mlgraph_cli.errors import MlgraphError, input_error

COMMAND = "mlgraph build-graph"
# A co-occurrence graph needs at least one possible pair of labels.
MIN_LABELS = 2


@dataclass
class BuildGraphResult:
    """What the command reports: the written graph and the counts behind it."""

    output: str
    graph: LabelGraph
    format: str
    unlabeled: int | None  # images without any label (None for label statistics)
    dropped: dict[str, int] = field(default_factory=dict)  # label -> image count, dropped by min_count
    notes: list[str] = field(default_factory=list)

    @property
    def num_labels(self) -> int:
        return self.graph.num_labels

    @property
    def num_images(self) -> int:
        return self.graph.num_images

    @property
    def num_edges(self) -> int:
        return self.graph.num_edges


def run_build_graph(annotations: str | os.PathLike | None, output: str | os.PathLike | None,
                    overrides: dict[str, Any], *, project=None,
                    progress: ProgressHook = NULL_PROGRESS) -> BuildGraphResult:
    """``mlgraph build-graph`` as one call. ``annotations`` / ``output``: the paths given (None = not
    given: the project's ``[dataset] annotations`` and ``[artifacts] graph``, or graph.json);
    ``overrides``: BuildGraphConfig values from flags (None = not given); ``project``: the folder's
    project (core.project) or None. Defaults, then ``[build-graph]``, then the flags."""
    source = resolve_input(annotations, project, dataset="annotations", what="annotations",
                           fix="e.g. `mlgraph build-graph train.json`")
    overrides = dict(overrides)
    if annotations is None and project is not None and overrides.get("format") is None \
            and "format" not in project.section("build-graph"):
        # The project's [dataset] format describes its own annotations, not a file given on the command line.
        overrides["format"] = project.dataset.get("format") or None
    config = merge_config(BuildGraphConfig, project, "build-graph", overrides)
    dest = resolve_output(output, project, "graph", "graph.json")
    return build_graph(source, dest, config, progress=progress)


def build_graph(annotations: str | os.PathLike, output: str | os.PathLike, config: BuildGraphConfig, *,
                progress: ProgressHook = NULL_PROGRESS) -> BuildGraphResult:
    """Read ``annotations``, count the label graph, write it to ``output`` (``-``: JSON on stdout)."""
    src = Path(annotations)
    out = os.fspath(output)
    # Files read besides the annotations (class lists, vocabularies) are inputs as much as they are.
    inputs = [src, config.classes, config.vocabulary, config.segment_classes]
    if out != "-" and Path(out).is_dir():
        raise MlgraphError(f"{out}: is a folder (pass a file name, e.g. -o {Path(out) / 'graph.json'})")
    if out != "-":
        check_output(out, inputs)
    fmt = config.format or detect_format(src)
    notes: list[str] = []
    if (config.vocabulary or config.segment_classes) and fmt != "yt8m":
        flag = "--vocabulary" if config.vocabulary else "--segment-classes"
        raise MlgraphError(f"{src}: {flag} is for YouTube-8M TFRecords, but this is {fmt} (drop {flag}, or pass "
                           "--format yt8m for TFRecords)")
    if fmt == "stats":
        graph = load_label_stats(src, label_order=config.label_order)
        unlabeled = None
    else:
        if fmt == "yt8m":
            ann = _yt8m_annotations(src, config, progress)
        else:
            ann = load_annotations(src, fmt, label_order=config.label_order, delimiter=config.delimiter,
                                   label_delimiter=config.label_delimiter, split=config.split,
                                   classes=config.classes, progress=progress)
        notes += ann.notes
        progress.start("Counting co-occurrences", total=None, unit="labels")
        graph = build_label_graph(ann.positives, ann.labels)
        progress.stop()
        unlabeled = int(ann.meta.get("unlabeled_images", 0))
        graph.meta.update({k: ann.meta[k] for k in ("split", "verified_negatives", "difficult") if k in ann.meta})
    if graph.num_labels < MIN_LABELS:
        found = f"only one label ({graph.labels[0]!r})" if graph.labels else "no labels"
        hint = "check --label-delimiter and --format" if fmt in ("csv", "jsonl") else "check the annotations"
        raise input_error(src, f"found {found}; a graph needs at least {MIN_LABELS} labels", hint)
    dropped: dict[str, int] = {}
    if config.min_count > 0:
        keep = graph.image_counts >= config.min_count
        if int(keep.sum()) < MIN_LABELS:
            raise input_error(src, f"--min-count {config.min_count} leaves {int(keep.sum())} of {graph.num_labels} "
                                   f"labels; a graph needs at least {MIN_LABELS}", "lower --min-count")
        dropped = {name: int(c) for name, c, k in zip(graph.labels, graph.image_counts.tolist(), keep) if not k}
        if dropped:
            graph = graph.subset(keep)
    graph.meta.update({
        "source": os.fspath(src),
        "format": fmt,
        "label_order_by": config.label_order,
        "unlabeled_images": unlabeled,
        "min_count": config.min_count,
        "dropped_labels": dropped,
        "notes": notes,
        "provenance": provenance(COMMAND, {"annotations": src, "output": out, **asdict(config), "format": fmt}),
    })
    progress.start("Writing graph", total=None, unit="edges")
    write_graph(graph, out, inputs)
    progress.stop()
    return BuildGraphResult(output=out, graph=graph, format=fmt, unlabeled=unlabeled, dropped=dropped, notes=notes)


def _yt8m_annotations(src: Path, config: BuildGraphConfig, progress: ProgressHook):
    """The video labels of YouTube-8M shards, columns in ``config.label_order`` (name or class index)."""
    files = expand_inputs([src])
    progress.start("Reading video labels", total=None, unit="videos")
    ann = load_yt8m_annotations(files, config.vocabulary, segment_classes=config.segment_classes)
    progress.stop()
    if config.label_order == "name":  # "id" is the YouTube-8M class-index order the reader returns
        ann = ann.reorder(sorted(ann.labels))
    ann.meta["label_order"] = config.label_order
    ann.meta["unlabeled_images"] = int(np.sum(np.diff(ann.positives.indptr) == 0))
    return ann
