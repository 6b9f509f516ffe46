"""The extraction loop's source for YouTube-8M records (``mlgraph import-yt8m``).

Records already hold frame features (rgb 1024 + audio 128 per second, dequantised here), so no
backbone runs: a row is one record's frames, zero-padded to T = ``max_frames`` (1 for video-level
records), its labels in the import's label columns and, for YouTube-8M Segments, its rated
segments. Made in two passes over the records: this source's constructor reads only each
record's context (id, labels, kind) to fix the label columns, the record kind and the total for
the progress bar; :meth:`RecordSource.rows` decodes the frames. Records whose checksum fails or
that are not YouTube-8M messages are skipped rows with their reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from mlgraph_cli.core.features.extraction import Layout, Rows
from mlgraph_cli.core.features.yt8m_config import ImportYt8mConfig
from mlgraph_cli.core.media.yt8m.files import RECORDS_FIX, expand_inputs
from mlgraph_cli.core.media.yt8m.labels import label_space, read_segment_classes, read_vocabulary
from mlgraph_cli.core.media.yt8m.records import FEATURE_DIM, QUANT_MAX, QUANT_MIN, SEGMENT_FRAMES, iter_videos
from mlgraph_cli.core.media.yt8m.tfrecord import BadRecord
from mlgraph_cli.core.progress import NULL_PROGRESS, ProgressHook
from mlgraph_cli.errors import input_error


@dataclass
class RecordCounts:
    """What an import cut or dropped (reported by the command)."""

    bad_records: list[BadRecord] = field(default_factory=list)
    truncated: int = 0  # videos longer than max_frames
    dropped_labels: int = 0  # video labels outside the label columns
    dropped_segments: int = 0  # segment ratings outside the label columns
    segments: int = 0  # rated (segment, label) rows kept


class RecordSource:
    """YouTube-8M TFRecords (frame or video level) as rows of a video features file."""

    noun, unit, description = "record", "videos", "Importing videos"

    def __init__(self, inputs, config: ImportYt8mConfig, progress: ProgressHook = NULL_PROGRESS) -> None:
        self.config, self.progress = config, progress
        self.files = expand_inputs(inputs)
        vocab = read_vocabulary(config.vocabulary) if config.vocabulary else None
        seg_classes = read_segment_classes(config.segment_classes) if config.segment_classes else None
        self.kind, self.total, seen = _scan(self.files, progress)
        self.space = label_space(vocab, seg_classes, seen)
        self.frames = config.max_frames if self.kind == "frame" else 1
        self.counts = RecordCounts()

    @property
    def label_names(self) -> list[str]:
        return list(self.space.names)

    @property
    def where(self) -> str:
        return ", ".join(str(f) for f in self.files[:3]) + (" ..." if len(self.files) > 3 else "")

    def layout(self) -> Layout:
        return Layout(channels=FEATURE_DIM, frames=self.frames)

    def attrs(self) -> dict[str, Any]:
        span = QUANT_MAX - QUANT_MIN
        return {"record_kind": self.kind, "segment_frames": SEGMENT_FRAMES, "label_class_ids": self.space.class_ids,
                "feature_layout": "rgb 1024 | audio 128 per frame (YouTube-8M)",
                "dequantization": f"q * {span:g}/255 + {span:g}/512 + {QUANT_MIN:g}", "source": "youtube-8m"}

    def identity(self) -> tuple[list[str], dict[str, Any]]:
        return ([f"{f}\t{f.stat().st_size}" for f in self.files],
                {"max_frames": self.frames, "labels": self.space.class_ids, "kind": self.kind})

    def finish_attrs(self) -> dict[str, Any]:
        return {"bad_records": len(self.counts.bad_records), "truncated_videos": self.counts.truncated}

    def rows(self, start: int) -> Iterator[Rows]:
        """Decode, pad, label every record after the first ``start`` (written by an earlier run)."""
        batch: list[tuple[Any, str]] = []
        skipped: list[str] = []
        consumed = position = 0
        for path, index, item in iter_videos(self.files):
            position += 1
            if position <= start:
                continue
            consumed += 1
            if isinstance(item, BadRecord):
                self.counts.bad_records.append(item)
                skipped.append(f"{item.path}#{item.index}\t{item.reason}")
                self.progress.log(f"skipped {item}")
            else:
                if len(item.frames) > self.frames:
                    self.counts.truncated += 1
                batch.append((item, f"{path}#{index}"))
            if len(batch) >= self.config.batch_size:
                yield self._rows(batch, skipped, consumed)
                batch, skipped, consumed = [], [], 0
        if batch or skipped or consumed:
            yield self._rows(batch, skipped, consumed)

    def _rows(self, batch: list[tuple[Any, str]], skipped: list[str], consumed: int) -> Rows:
        b, t, c = len(batch), self.frames, len(self.space)
        x = np.zeros((b, FEATURE_DIM, t, 1), dtype=np.float16)  # (B, D, T, 1), zero padding
        lengths = np.zeros(b, np.int32)
        y = np.zeros((b, c), np.int8)
        segments = []
        for i, (rec, _) in enumerate(batch):
            n = min(len(rec.frames), t)
            x[i, :, :n, 0] = rec.frames[:n].T  # (T, D) -> (D, T)
            lengths[i] = n
            for cls in rec.labels.tolist():
                j = self.space.column.get(int(cls))
                if j is None:
                    self.counts.dropped_labels += 1
                else:
                    y[i, j] = 1
            for first, cls, score in rec.segments:
                j = self.space.column.get(int(cls))
                if j is None:
                    self.counts.dropped_segments += 1
                else:
                    segments.append((i, first, j, score))
        self.counts.segments += len(segments)
        return Rows({"features": x}, [rec.id for rec, _ in batch], [name for _, name in batch], y, consumed=consumed,
                    skipped=skipped, lengths=lengths, segments=np.asarray(segments, dtype=np.float64).reshape(-1, 4))


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
