"""``mlgraph import-yt8m``: YouTube-8M TFRecords -> a video features file."""

from __future__ import annotations

from typing import Annotated, List, Optional

import typer

from mlgraph_cli.cli._common import progress_bar, handle_errors, load_project, summary
from mlgraph_cli.cli._options import config_option, plain_option
from mlgraph_cli.core.features.yt8m_config import ImportYt8mConfig  # a plain dataclass: no numpy

EPILOG = ("Example: mlgraph import-yt8m 'frame/train*.tfrecord' -o features.h5 "
          "--vocabulary vocabulary.csv --max-frames 300")





def import_yt8m(
    records: Annotated[List[str], typer.Argument(
        help="TFRecord files, quoted globs ('train*.tfrecord') or folders; frame level (SequenceExample: rgb, "
             "audio per second) or video level (Example: mean_rgb, mean_audio), plain or gzip.",
        show_default=False)],
    *,
    output: Annotated[Optional[str], plain_option(
        "-o", "--output", help="Features file (HDF5). Default: \\[artifacts] features, or features.h5.")] = None,
    vocabulary: Annotated[Optional[str], plain_option(
        "--vocabulary", help="YouTube-8M vocabulary.csv: label names; its classes become the label columns "
                             "(without it: the class indices seen, named by number).")] = None,
    segment_classes: Annotated[Optional[str], plain_option(
        "--segment-classes", help="segment_label_ids.csv: keep only these classes (the 1,000 of YouTube-8M "
                                  "Segments) as label columns.")] = None,
    max_frames: Annotated[Optional[int], config_option(ImportYt8mConfig, "max_frames",
        "--max-frames", min=1, help="Frames kept per video (T); shorter videos are padded and masked.")] = None,
    batch_size: Annotated[Optional[int], config_option(ImportYt8mConfig, "batch_size",
        "--batch-size", min=1, help="Videos written per batch.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no per-record notes.")] = False,
) -> None:
    """Read YouTube-8M TFRecords (checksums verified; corrupt records reported and skipped) into a
    features file: frames dequantised to (N, 1152, T, 1) float16 with per-video lengths, labels, and
    Segments ratings when present."""
    from mlgraph_cli.stages.import_yt8m import run_import_yt8m

    overrides = dict(vocabulary=vocabulary, segment_classes=segment_classes, max_frames=max_frames,
                     batch_size=batch_size)
    progress = progress_bar(quiet=quiet)
    try:
        result = run_import_yt8m(records, output, overrides, project=load_project(), progress=progress)
    finally:
        progress.stop()
    config = result.config
    notes = []
    if result.bad_records:
        first = result.bad_records[0]
        notes.append(f"{len(result.bad_records)} corrupt record(s) skipped (first: {first})")
    if result.truncated:
        notes.append(f"{result.truncated} video(s) cut to {result.frames} frames")
    if result.dropped_labels or result.dropped_segments:
        notes.append(f"{result.dropped_labels} label(s) and {result.dropped_segments} segment rating(s) outside "
                     "the label columns dropped")
    if config.vocabulary is None and config.segment_classes is None:
        notes.append("no --vocabulary: labels are the class indices seen here; pass it so other imports share "
                     "the same label columns")
    if result.resumed:
        notes.append("resumed an interrupted import")
    segs = f", {result.segments:,} rated segments" if result.segments else ""
    tail = ("; " + "; ".join(notes)) if notes else ""
    summary(f"Imported {result.videos:,} {result.kind}-level videos ({result.frames} frames max, "
            f"{result.num_labels:,} labels{segs}) -> {result.output}{tail}")


def register(app: typer.Typer) -> None:
    app.command("import-yt8m", epilog=EPILOG)(handle_errors(import_yt8m))
