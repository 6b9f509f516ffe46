"""The one extraction loop: a source's rows into a resumable features file.

Every way of making a features file runs through :func:`extract_rows`:

- images through a backbone (``mlgraph extract photos/``: :class:`~.sources.ImageSource`);
- the sampled frames of video files through a backbone (``mlgraph extract clips/``:
  :class:`~.sources.ClipSource`);
- YouTube-8M records, which already hold frame features (``mlgraph import-yt8m``:
  :class:`~.records.RecordSource`).

The loop opens the writer for the source's plan (a partial file of the same plan is resumed, one
of another plan is discarded), asks the source for rows from the first input not yet consumed,
appends them, and once every input is consumed records provenance, marks the file complete and
renames it into place. What differs between the three is only the source: how it plans, what
its file says it is (:meth:`Source.layout`, :meth:`Source.attrs`), and how it decodes rows
(:meth:`Source.rows`). A stopped run (Ctrl-C, a kill, a full disk) keeps its partial file; the
same command resumes it.
"""

from __future__ import annotations

import errno
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Protocol

import numpy as np

from mlgraph_cli.core.features.file import FeatureWriter, partial_path, plan_digest
from mlgraph_cli.core.features.plan import unique_skipped, write_skipped_report
from mlgraph_cli.core.features.video_file import VideoFeatureWriter
from mlgraph_cli.core.io.artifacts import provenance
from mlgraph_cli.core.io.hdf5 import h5_read_strings
from mlgraph_cli.core.media.images import SkippedImage
from mlgraph_cli.core.progress import ProgressHook
from mlgraph_cli.errors import MlgraphError

# Test hook (tests/test_extract.py): after this many rows are on disk, touch the file named by
# the second variable and wait to be killed, so a kill lands at a known point.
PAUSE_ROWS_ENV = "MLGRAPH_EXTRACT_PAUSE_AFTER_ROWS"
PAUSE_FILE_ENV = "MLGRAPH_EXTRACT_PAUSE_FILE"


@dataclass
class Rows:
    """One batch for the features file, in input order.

    ``maps``: dataset name -> (B, D, H, W) (video: (B, D, T, 1)); ``ids``, ``files``: (B,);
    ``labels``: (B, C) int8 or None; ``consumed``: inputs this batch used up, skipped ones included
    (``skipped``: ``file<TAB>reason`` lines); video only: ``lengths`` (B,) real frames per row and
    ``segments`` (S, 4) rating rows (batch row, first frame, label column, score).
    """

    maps: dict[str, np.ndarray]
    ids: list[str]
    files: list[str]
    labels: np.ndarray | None
    consumed: int
    skipped: list[str] = field(default_factory=list)
    lengths: np.ndarray | None = None
    segments: np.ndarray | None = None


@dataclass(frozen=True)
class Layout:
    """What a file's rows hold: image maps per dataset (``shapes``), or video frames (``channels``
    x ``frames`` per row, with lengths)."""

    shapes: dict[str, tuple[int, int, int]] | None = None
    channels: int = 0
    frames: int = 0

    @property
    def video(self) -> bool:
        return self.shapes is None


class Source(Protocol):
    """What :func:`extract_rows` needs from a source."""

    noun: str  # one input, for messages: "image", "clip", "record"
    unit: str  # the progress bar's unit
    description: str  # the progress bar's title
    total: int  # inputs planned
    label_names: list[str] | None
    where: Path | str  # where the inputs are, for "none could be read"

    def layout(self) -> Layout: ...

    def attrs(self) -> dict[str, Any]:
        """The file's attributes (what it is, how it was made)."""

    def identity(self) -> tuple[list[str], dict[str, Any]]:
        """(one line per input, the settings that change a number): the plan digest's input."""

    def rows(self, start: int) -> Iterator[Rows]:
        """Rows of the inputs from ``start`` (inputs before it are on disk already), in order."""

    def finish_attrs(self) -> dict[str, Any]:
        """Attributes known only at the end (counts of what was cut or skipped)."""


@dataclass
class Extracted:
    """What one run of the loop did."""

    output: Path
    rows: int  # rows in the file
    inputs: int  # inputs consumed (rows + skipped)
    skipped: list[SkippedImage]
    skipped_report: Path | None
    resumed_from: int  # inputs already done by an interrupted run (0 = fresh)
    seconds: float  # this run's time in the loop (building the model excluded)
    provenance: Any = None
    complete: bool = True  # False: a shard already complete, nothing was run

    @property
    def per_second(self) -> float:
        """Inputs consumed per second by this run."""
        done = self.inputs - self.resumed_from
        return done / self.seconds if self.seconds > 0 else 0.0


def open_writer(source: Source, dest: Path, digest: str) -> FeatureWriter:
    """The writer of ``source``'s layout for ``dest`` (resuming a partial file of the same ``digest``)."""
    layout = source.layout()
    if layout.video:
        return VideoFeatureWriter(dest, channels=layout.channels, frames=layout.frames, plan=digest,
                                  attrs=source.attrs(), label_names=source.label_names)
    return FeatureWriter(dest, shapes=layout.shapes, plan=digest, attrs=source.attrs(),
                         label_names=source.label_names)


def source_digest(source: Source) -> str:
    lines, settings = source.identity()
    return plan_digest(lines, settings)


def extract_rows(source: Source, dest: str | os.PathLike, *, command: str, params: dict[str, Any],
                 progress: ProgressHook, digest: str | None = None, allow_empty: bool = False) -> Extracted:
    """Write every input of ``source`` into ``dest``; resumable (see the module docstring).

    ``params``: the resolved settings recorded in the file's provenance as ``command`` ran them.
    ``digest``: the plan's identity (default: :func:`source_digest`). ``allow_empty``: a file of
    no rows is kept (a shard may be all skipped; its merge decides) instead of refused.
    """
    dest = Path(dest)
    writer = open_writer(source, dest, digest or source_digest(source))
    start = writer.inputs_done
    noun = source.noun
    if writer.discarded:
        progress.log(f"{writer.path}: an interrupted run with other {noun}s or settings was found; starting over")
    if writer.resumed:
        again = (f"; {writer.dropped:,} row(s) were not on disk as counted and are extracted again"
                 if writer.dropped else "")
        progress.log(f"Resuming {dest}: {start:,} of {source.total:,} {noun}s were done by an interrupted run{again}")
    pause_at = int(os.environ.get(PAUSE_ROWS_ENV, "0") or 0)
    t0 = time.perf_counter()
    try:
        progress.start(source.description, total=source.total - start, unit=source.unit)
        for rows in source.rows(start):
            extra = {} if rows.lengths is None else {"lengths": rows.lengths, "segments": rows.segments}
            writer.append(rows.maps, rows.ids, rows.files, rows.labels, rows.consumed, rows.skipped, **extra)
            progress.advance(rows.consumed)
            if pause_at and writer.rows_done >= pause_at:
                _pause_for_test()
        progress.stop()
        seconds = time.perf_counter() - t0
        skipped = unique_skipped(h5_read_strings(writer.file["skipped"]))
        done, inputs = writer.rows_done, writer.inputs_done
        if done == 0 and not allow_empty:  # a file of no rows would only fail later, in train
            writer.close()
            partial_path(writer.dest).unlink(missing_ok=True)
            report = write_skipped_report(writer.dest, skipped)
            raise MlgraphError(f"{source.where}: none of the {inputs:,} {noun}s could be read (reasons in {report}; "
                               f"check the {noun}s, or pass the right folder)")
        prov = provenance(command, params)
        writer.finish({"provenance": prov, "skipped_count": len(skipped), **source.finish_attrs()})
    except KeyboardInterrupt:
        progress.stop()
        progress.log("Stopped; run the same command again to resume where it stopped")
        raise
    except OSError as exc:  # the disk filled up, went read-only, failed: what is written is kept
        progress.stop()
        raise write_failed(exc, writer, source.total, noun) from None
    finally:
        writer.close()
    return Extracted(output=writer.dest, rows=done, inputs=inputs, skipped=skipped,
                     skipped_report=write_skipped_report(writer.dest, skipped), resumed_from=start, seconds=seconds,
                     provenance=prov)


def write_failed(exc: OSError, writer: FeatureWriter, total: int, noun: str) -> MlgraphError:
    """One line for a write that failed mid-run, naming the resumable partial file."""
    text = str(exc.strerror or exc)
    if "error message = '" in text:
        text = text.split("error message = '", 1)[1].split("'", 1)[0]
    fix = ("free some space" if exc.errno in (errno.ENOSPC, errno.EDQUOT) or "space" in text.lower()
           else "fix the disk")
    return MlgraphError(f"{writer.path}: {text}; {writer.rows_done:,} of {total:,} {noun}s are written and kept "
                        f"({fix} and run the same command again to resume, or delete {writer.path} to start over)")


def _pause_for_test() -> None:
    marker = os.environ.get(PAUSE_FILE_ENV)
    if marker:
        Path(marker).touch()
    while True:  # wait for the test to kill this process
        time.sleep(1)
