"""Stage: YouTube-8M TFRecords (frame or video level, Segments ratings included) -> a video features file.

The records are a source of the one extraction loop (core/features/extraction.py), as images and
video files are for ``mlgraph extract``: the same resumable partial file, skipped-input report and
provenance. What the records source does (two passes; corrupt records skipped and reported; the
import only fails when no record at all can be read): core/features/records.py.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from mlgraph_cli.core.features.extraction import extract_rows
from mlgraph_cli.core.features.records import RecordSource
from mlgraph_cli.core.features.yt8m_config import ImportYt8mConfig
from mlgraph_cli.core.io.outputs import check_output
from mlgraph_cli.core.media.yt8m.files import expand_inputs
from mlgraph_cli.core.media.yt8m.tfrecord import BadRecord
from mlgraph_cli.core.progress import NULL_PROGRESS, ProgressHook
from mlgraph_cli.core.project import merge_config, resolve_output
from mlgraph_cli.errors import MlgraphError

COMMAND = "mlgraph import-yt8m"


@dataclass
class ImportYt8mResult:
    """What the command reports."""

    output: str
    kind: str  # "frame" or "video"
    videos: int
    frames: int  # T of the file
    num_labels: int
    segments: int  # rated (segment, label) rows kept
    bad_records: list[BadRecord] = field(default_factory=list)
    truncated: int = 0  # videos longer than max_frames
    dropped_labels: int = 0  # video labels outside the label columns
    dropped_segments: int = 0  # segment ratings outside the label columns
    resumed: bool = False
    config: ImportYt8mConfig | None = None  # the settings used (defaults, [import-yt8m], flags)


def run_import_yt8m(inputs: Sequence[str | os.PathLike], output: str | os.PathLike | None, overrides: dict[str, Any],
                    *, project=None, progress: ProgressHook = NULL_PROGRESS) -> ImportYt8mResult:
    """``mlgraph import-yt8m`` as one call. ``output`` None: the project's ``[artifacts] features``, or
    features.h5; ``overrides``: ImportYt8mConfig values from flags (None = not given), over
    ``[import-yt8m]`` of ``project`` (core.project, or None)."""
    config = merge_config(ImportYt8mConfig, project, "import-yt8m", overrides)
    dest = resolve_output(output, project, "features", "features.h5")
    return import_yt8m(inputs, dest, config, progress=progress)


def import_yt8m(inputs: Sequence[str | os.PathLike], output: str | os.PathLike, config: ImportYt8mConfig, *,
                progress: ProgressHook = NULL_PROGRESS) -> ImportYt8mResult:
    """Read the TFRecords named by ``inputs`` (paths, globs, folders) into the features file ``output``."""
    dest = Path(output)
    if dest.is_dir():
        raise MlgraphError(f"{dest}: is a folder (pass a file name, e.g. -o {dest / 'features.h5'})")
    check_output(dest, [*expand_inputs(inputs), config.vocabulary, config.segment_classes], stream_ok=False)
    source = RecordSource(inputs, config, progress)
    params = {"inputs": [str(f) for f in source.files], **asdict(config)}
    done = extract_rows(source, dest, command=COMMAND, params=params, progress=progress)
    counts = source.counts
    return ImportYt8mResult(output=str(dest), kind=source.kind, videos=done.rows, frames=source.frames,
                            num_labels=len(source.space), segments=counts.segments, bad_records=counts.bad_records,
                            truncated=counts.truncated, dropped_labels=counts.dropped_labels,
                            dropped_segments=counts.dropped_segments, resumed=done.resumed_from > 0, config=config)
