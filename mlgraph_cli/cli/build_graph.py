"""``mlgraph build-graph``: count the label co-occurrence graph of a training set."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from mlgraph_cli.cli._common import progress_bar, handle_errors, is_stdout, load_project, summary
from mlgraph_cli.cli._options import config_option, given, plain_option
from mlgraph_cli.core.graph.config import GRAPH_FORMATS, LABEL_ORDERS, BuildGraphConfig  # plain data: no numpy

EPILOG = "Example: mlgraph build-graph annotations/instances_train2014.json -o graph.json --format coco"


def build_graph(
    annotations: Annotated[Optional[Path], typer.Argument(
        help="COCO instances JSON, VOC or NUS-WIDE folder, Open Images CSV, CSV/JSONL, an ultralytics YOLO data.yaml "
             "(or its folder), label statistics JSON, or "
             "YouTube-8M TFRecords (a file, a quoted glob such as 'train*.tfrecord', or a folder of shards). "
             "Default: \\[dataset] annotations of mlgraph.toml.", show_default=False)] = None,
    *,
    output: Annotated[Optional[str], plain_option(
        "-o", "--output", help="Graph file: .json (node-link) or .graphml; '-' writes JSON to stdout. "
                               "Default: \\[artifacts] graph, or graph.json.")] = None,
    format: Annotated[Optional[Literal[GRAPH_FORMATS]], plain_option(
        "--format", help="Annotation format (auto-detected when left out; yt8m for names with .tfrecord).")] = None,
    label_order: Annotated[Optional[Literal[LABEL_ORDERS]], config_option(BuildGraphConfig, "label_order",
        "--label-order", help="name: sorted by name; id: the dataset's own order (COCO category ids, "
                              "first appearance in CSV/JSONL).")] = None,
    split: Annotated[Optional[str], plain_option(
        "--split", help="VOC image set (default trainval); NUS-WIDE all|train|test (default train when "
                        "TrainTestLabels exists); YOLO train|val|test (default train).")] = None,
    min_count: Annotated[Optional[int], config_option(BuildGraphConfig, "min_count",
        "--min-count", min=0, help="Drop labels carried by fewer than N images.")] = None,
    delimiter: Annotated[Optional[str], plain_option(
        "--delimiter", help="CSV column delimiter (default: ',' or tab for .tsv).")] = None,
    label_delimiter: Annotated[Optional[str], plain_option(
        "--label-delimiter", help="CSV delimiter between labels within a row (default ';').")] = None,
    classes: Annotated[Optional[str], plain_option(
        "--classes", help="Open Images class-descriptions CSV (MID -> name) or NUS-WIDE concept list.")] = None,
    vocabulary: Annotated[Optional[str], plain_option(
        "--vocabulary", help="yt8m: YouTube-8M vocabulary.csv (label names; its classes are the labels). Pass the "
                             "one `mlgraph import-yt8m` used, so graph and features share their labels.")] = None,
    segment_classes: Annotated[Optional[str], plain_option(
        "--segment-classes", help="yt8m: segment_label_ids.csv, keep only these classes (as in "
                                  "`mlgraph import-yt8m`).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no notes.")] = False,
) -> None:
    """Count label co-occurrences (n_i, M_ij) in training annotations and write the label graph."""
    from mlgraph_cli.stages.build_graph import run_build_graph

    overrides = given(format=format, label_order=label_order, split=split, min_count=min_count, delimiter=delimiter,
                      label_delimiter=label_delimiter, classes=classes, vocabulary=vocabulary,
                      segment_classes=segment_classes)
    progress = progress_bar(quiet=quiet)
    try:
        result = run_build_graph(annotations, output, overrides, project=load_project(), progress=progress)
    finally:
        progress.stop()
    if not quiet:
        for note in result.notes:
            progress.log(f"note: {note}")
    names = list(result.dropped)
    dropped = (f"dropped {len(names)} label(s) under --min-count {result.graph.meta['min_count']}: " + ", ".join(names[:10])
               + (", ..." if len(names) > 10 else "")) if names else "no labels dropped"
    item = "video" if result.format == "yt8m" else "image"
    unlabeled = "" if result.unlabeled is None else f"{_count(result.unlabeled, 'unlabeled ' + item)}; "
    where = "stdout" if is_stdout(result.output) else result.output
    summary(f"Label graph ({result.format}): {_count(result.num_labels, 'label')}, "
            f"{_count(result.num_images, item)}, {_count(result.num_edges, 'edge')}; {unlabeled}{dropped} "
            f"-> {where}")


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def register(app: typer.Typer) -> None:
    app.command("build-graph", epilog=EPILOG)(handle_errors(build_graph))
