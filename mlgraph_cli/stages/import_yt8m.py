"""Stage: YouTube-8M TFRecords (frame or video level, Segments ratings included) -> a video features file.

Two passes over the records. The first reads only each record's context (id, labels, kind) to
fix the label columns, the record kind and the total for the progress bar; the second decodes
the frames and appends them in batches to a resumable :class:`VideoFeatureWriter`. Records whose
checksum fails or that are not YouTube-8M messages are skipped, kept in the file's ``skipped``
dataset and reported; the import only fails when no record at all can be read.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mlgraph_cli.core.io.artifacts import provenance
from mlgraph_cli.core.features.file import plan_digest
from mlgraph_cli.core.features.yt8m_config import ImportYt8mConfig
from mlgraph_cli.core.progress import NULL_PROGRESS, ProgressHook
from mlgraph_cli.core.features.video_file import VideoFeatureWriter
from mlgraph_cli.core.media.yt8m.tfrecord import BadRecord
from mlgraph_cli.core.media.yt8m.records import FEATURE_DIM, QUANT_MAX, QUANT_MIN, SEGMENT_FRAMES, iter_videos
from mlgraph_cli.core.media.yt8m.files import RECORDS_FIX, expand_inputs
from mlgraph_cli.core.media.yt8m.labels import label_space, read_segment_classes, read_vocabulary
from mlgraph_cli.errors import MlgraphError, input_error

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


def _scan(files: list[Path], progress: ProgressHook) -> tuple[str, int, set[int]]:
    """First pass: the record kind, the number of records, the class indices seen."""
    kind: str | None = None
    kind_file = ""
    records = good = 0
    seen: set[int] = set()
    first_bad: BadRecord | None = None
    progress.start("Scanning records", total=len(files), unit="files")
    for path in files:
        for _, _, item in iter_videos([path], context_only=True):
            records += 1
            if isinstance(item, BadRecord):
                first_bad = first_bad or item
                continue
            good += 1
            if kind is None:
                kind, kind_file = item.kind, str(path)
            elif item.kind != kind:
                raise input_error(path, f"{item.kind}-level records, but {kind_file} holds {kind}-level ones",
                                  "import frame-level and video-level files separately")
            seen.update(int(c) for c in item.labels)
        progress.advance(1)
    progress.stop()
    if not good:
        where = first_bad.path if first_bad else files[0]
        reason = f" ({first_bad.reason})" if first_bad else " (the file has no records)"
        raise input_error(where, f"no readable YouTube-8M record{reason}", RECORDS_FIX)
    return kind or "frame", records, seen


def run_import_yt8m(inputs: Sequence[str | os.PathLike], output: str | os.PathLike | None, overrides: dict[str, Any],
                    *, project=None, progress: ProgressHook = NULL_PROGRESS) -> ImportYt8mResult:
    """``mlgraph import-yt8m`` as one call. ``output`` None: the project's ``[artifacts] features``, or
    features.h5; ``overrides``: ImportYt8mConfig values from flags (None = not given), over
    ``[import-yt8m]`` of ``project`` (core.project, or None)."""
    from mlgraph_cli.core.project import merge_config, resolve_output

    config = merge_config(ImportYt8mConfig, project, "import-yt8m", overrides)
    dest = resolve_output(output, project, "features", "features.h5")
    return import_yt8m(inputs, dest, config, progress=progress)


def import_yt8m(inputs: Sequence[str | os.PathLike], output: str | os.PathLike, config: ImportYt8mConfig, *,
                progress: ProgressHook = NULL_PROGRESS) -> ImportYt8mResult:
    """Read the TFRecords named by ``inputs`` (paths, globs, folders) into the features file ``output``."""
    dest = Path(output)
    if dest.is_dir():
        raise MlgraphError(f"{dest}: is a folder (pass a file name, e.g. -o {dest / 'features.h5'})")
    files = expand_inputs(inputs)
    vocab = read_vocabulary(config.vocabulary) if config.vocabulary else None
    seg_classes = read_segment_classes(config.segment_classes) if config.segment_classes else None
    kind, total, seen = _scan(files, progress)
    space = label_space(vocab, seg_classes, seen)
    frames = config.max_frames if kind == "frame" else 1
    params = {"inputs": [str(f) for f in files], **asdict(config)}
    attrs = {
        "record_kind": kind, "segment_frames": SEGMENT_FRAMES, "label_class_ids": space.class_ids,
        "feature_layout": "rgb 1024 | audio 128 per frame (YouTube-8M)",
        "dequantization": f"q * {QUANT_MAX - QUANT_MIN:g}/255 + {QUANT_MAX - QUANT_MIN:g}/512 + {QUANT_MIN:g}",
        "source": "youtube-8m", "provenance": provenance(COMMAND, params),
    }
    identity = [f"{f}\t{f.stat().st_size}" for f in files]
    plan = plan_digest(identity, {"max_frames": frames, "labels": space.class_ids, "kind": kind})
    writer = VideoFeatureWriter(dest, channels=FEATURE_DIM, frames=frames, plan=plan, attrs=attrs,
                                label_names=space.names)
    result = ImportYt8mResult(output=str(dest), kind=kind, videos=0, frames=frames, num_labels=len(space),
                              segments=0, resumed=writer.resumed, config=config)
    try:
        _convert(files, writer, space, frames, config.batch_size, total, result, progress)
        result.videos = writer.rows_done
        writer.finish({"bad_records": int(writer.file["skipped"].shape[0]), "truncated_videos": result.truncated})
    except BaseException:
        writer.close()  # the partial file stays, to be resumed by the same command
        raise
    return result


def _convert(files: list[Path], writer: VideoFeatureWriter, space, frames: int, batch_size: int, total: int,
             result: ImportYt8mResult, progress: ProgressHook) -> None:
    """Second pass: decode, pad, label and append every record after the ones already written."""
    done = writer.inputs_done
    c = len(space)
    batch: list = []
    skipped: list[str] = []
    consumed = 0

    def flush() -> None:
        nonlocal batch, skipped, consumed
        b = len(batch)
        x = np.zeros((b, FEATURE_DIM, frames, 1), dtype=np.float16)  # (B, D, T, 1), zero padding
        lengths = np.zeros(b, np.int32)
        y = np.zeros((b, c), np.int8)
        seg_rows = []
        for i, (rec, _) in enumerate(batch):
            t = min(len(rec.frames), frames)
            x[i, :, :t, 0] = rec.frames[:t].T  # (T, D) -> (D, T)
            lengths[i] = t
            for cls in rec.labels.tolist():
                j = space.column.get(int(cls))
                if j is None:
                    result.dropped_labels += 1
                else:
                    y[i, j] = 1
            for start, cls, score in rec.segments:
                j = space.column.get(int(cls))
                if j is None:
                    result.dropped_segments += 1
                else:
                    seg_rows.append((i, start, j, score))
        segs = np.asarray(seg_rows, dtype=np.float64).reshape(-1, 4)
        writer.append_videos(x, lengths, [rec.id for rec, _ in batch], [name for _, name in batch], y,
                             consumed, skipped, segs)
        result.segments += len(segs)
        batch, skipped, consumed = [], [], 0

    progress.start("Importing videos", total=total, unit="videos")
    progress.advance(done)
    position = 0
    for path, index, item in iter_videos(files):
        position += 1
        if position <= done:  # written by an earlier, interrupted run
            continue
        consumed += 1
        if isinstance(item, BadRecord):
            result.bad_records.append(item)
            skipped.append(f"{item.path}#{item.index}\t{item.reason}")
            progress.log(f"skipped {item}")
        else:
            if len(item.frames) > frames:
                result.truncated += 1
            batch.append((item, f"{path}#{index}"))
        if len(batch) >= batch_size:
            flush()
        progress.advance(1)
    if batch or skipped or consumed:
        flush()
    progress.stop()
