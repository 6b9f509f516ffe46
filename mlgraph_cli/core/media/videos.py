"""Video files: find them, probe them, and decode only the frames a sampling asks for (PyAV).

Sampling (times in seconds from the clip's first frame):

- ``fps`` f: one frame at the middle of every 1/f seconds, t_i = (i + 0.5) / f, i < ceil(duration * f);
- ``min_frames`` K, a floor under ``fps``: a clip that f would give fewer than K frames gets K
  spread over it, t_i = (i + 0.5) * duration / K, but never more than it has (a clip of n < K
  frames gives each of its n frames once). A 4-second clip gets K frames, not 4; a clip longer
  than K / f seconds is sampled at f, as without the floor;
- ``frames`` N: N frames spread over the whole clip, t_i = (i + 0.5) * duration / N (no floor);
- ``max_frames`` M caps all of them: when a sampling asks for more than M frames, M are spread over
  the whole clip instead (a two-hour clip is covered end to end, at a lower rate, rather than cut).

Decoding seeks to the key frame before a wanted time and decodes forward to it, so a long clip
costs what its sampled frames cost, not what the whole clip costs; targets less than
``SEEK_GAP`` seconds apart are reached by decoding on, which is cheaper than seeking back to the
same key frame. A frame is the first whose timestamp reaches the target, so a variable frame rate
gives the frame on screen at each time. A frame carrying a display rotation (phone videos) is
turned upright. Anything a file does wrong -- corrupt, truncated, no video stream, no frame
decodable -- is a :class:`~mlgraph_cli.core.media.images.SkippedImage` with a reason, never an exception.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from PIL import Image

from mlgraph_cli.core.media.images import SkippedImage, list_images
from mlgraph_cli.errors import MlgraphError

VIDEO_SUFFIXES = frozenset({".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v"})
INSTALL_FIX = 'pip install "mlgraph[video]"'
SEEK_GAP = 2.0  # seconds: a target further ahead than this is reached by a seek, a nearer one by decoding on
# The rule of Sampling.times in words, for a runtime that samples clips without mlgraph (the export card).
SAMPLING_RULE = ("seconds from the clip's start: with frames, n = min(frames, max_frames) and t_i = (i + 0.5) * "
                 "duration / n; else n = ceil(duration * fps) and t_i = (i + 0.5) / fps, except that when n < "
                 "min_frames the clip gets n = min(min_frames, its own frame count) and when n > max_frames it gets "
                 "n = max_frames, both spread as t_i = (i + 0.5) * duration / n; the frame taken for t is the one on "
                 "screen at t")


def require_av():
    """The ``av`` module, or a one-line error saying what to install."""
    try:
        # lazy: optional dependency (av, extra `video`)
        import av
    except ImportError:
        raise MlgraphError(f"reading video files needs PyAV, which is not installed (install it with `{INSTALL_FIX}`)") from None
    return av


@dataclass(frozen=True)
class Sampling:
    """Which frames of a clip are used: ``fps`` per second with a floor of ``min_frames``, or ``frames``
    spread over it; at most ``max_frames``. Defaults: those of ``mlgraph extract`` (ExtractConfig)."""

    fps: float = 1.0
    frames: int | None = None
    max_frames: int = 300
    min_frames: int = 32

    def __post_init__(self) -> None:
        if not (self.fps > 0 and math.isfinite(self.fps)):
            raise MlgraphError(f"--fps {self.fps}: must be a positive number of frames per second")
        if self.frames is not None and int(self.frames) < 1:
            raise MlgraphError(f"--frames {self.frames}: must be at least 1")
        if int(self.max_frames) < 1:
            raise MlgraphError(f"--max-frames {self.max_frames}: must be at least 1")
        if int(self.min_frames) < 0:
            raise MlgraphError(f"--min-frames {self.min_frames}: must be 0 (no floor) or more")

    @property
    def capacity(self) -> int:
        """The most frames one clip can get (the T of a features file when clips are long enough)."""
        return min(int(self.frames), int(self.max_frames)) if self.frames else int(self.max_frames)

    def count(self, duration: float, rate: float | None = None) -> tuple[int, bool]:
        """How many frames a clip of ``duration`` seconds (``rate`` frames per second, when its header
        says) gets, and whether they are spread over the clip (True) or one every 1/fps seconds."""
        duration = max(float(duration), 1e-6)
        if self.frames:
            return min(int(self.frames), int(self.max_frames)), True
        n = max(1, math.ceil(duration * self.fps - 1e-9))
        spread = False
        if n < int(self.min_frames):
            # The floor never asks for more frames than the clip has: above that it would only repeat them.
            has = max(1, round(duration * rate)) if rate and rate > 0 else int(self.min_frames)
            floor = min(int(self.min_frames), has)
            if floor > n:
                n, spread = floor, True
        if n > int(self.max_frames):
            n, spread = int(self.max_frames), True
        return n, spread

    def times(self, duration: float, rate: float | None = None) -> np.ndarray:
        """(n,) float64 seconds of the frames to take from a clip of ``duration`` seconds whose frame
        rate is ``rate`` (None: unknown, so the floor is not held to the clip's frame count)."""
        duration = max(float(duration), 1e-6)
        n, spread = self.count(duration, rate)
        if spread:
            return (np.arange(n) + 0.5) * duration / n
        return (np.arange(n) + 0.5) / self.fps

    def to_dict(self) -> dict[str, Any]:
        return {"fps": float(self.fps), "frames": self.frames, "max_frames": int(self.max_frames),
                "min_frames": int(self.min_frames)}

    @classmethod
    def from_dict(cls, stored: dict[str, Any]) -> "Sampling":
        """The sampling a features file's ``sampling`` attribute records; files written before the
        floor existed (no ``min_frames``) were sampled without one, and are read so."""
        frames = stored.get("frames")
        return cls(float(stored["fps"]), int(frames) if frames else None, int(stored["max_frames"]),
                   int(stored.get("min_frames", 0)))


@dataclass
class ClipInfo:
    """What a container's header says: seconds, frames per second (average), size, rotation."""

    path: str
    duration: float
    fps: float
    width: int
    height: int


def only_videos(inputs) -> bool:
    """Whether ``inputs`` name video files only (a folder: it holds videos and no images)."""
    videos = list_images(list(inputs), VIDEO_SUFFIXES)
    folders = [i for i in inputs if Path(i).is_dir()]
    return bool(videos) and all(is_video_path(p) for p in videos) and not (folders and list_images(folders))


def is_video_path(path: str | os.PathLike) -> bool:
    return os.path.splitext(os.fspath(path))[1].lower() in VIDEO_SUFFIXES


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    if isinstance(exc, FileNotFoundError):
        return "file not found"
    return f"corrupt or truncated ({type(exc).__name__}: {first[:160]})"


def probe(path: str | os.PathLike) -> ClipInfo | SkippedImage:
    """Open ``path`` and read its duration without decoding a picture (packets only when the header has none)."""
    av = require_av()
    name = os.fspath(path)
    try:
        with av.open(name, metadata_errors="ignore") as container:
            if not container.streams.video:
                return SkippedImage(name, "no video stream (an audio-only or data file)")
            stream = container.streams.video[0]
            duration = _duration(container, stream)
            if duration is None or duration <= 0:
                return SkippedImage(name, "no video frame in the file (empty or truncated)")
            rate = float(stream.average_rate) if stream.average_rate else 0.0
            return ClipInfo(name, duration, rate, int(stream.codec_context.width or 0),
                            int(stream.codec_context.height or 0))
    except Exception as exc:  # noqa: BLE001 -- any demuxer failure on an untrusted file is a skip, not a crash
        return SkippedImage(name, _reason(exc))


def _duration(container, stream) -> float | None:
    """Seconds from the header (stream, then container); else from the packets' timestamps."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / 1_000_000
    last, rate = None, float(stream.average_rate or 0) or None
    for packet in container.demux(stream):  # no decode: reads compressed packets only
        if packet.pts is not None and packet.time_base is not None:
            end = float((packet.pts + (packet.duration or 0)) * packet.time_base)
            last = end if last is None else max(last, end)
    if last is None and rate:
        return stream.frames / rate if stream.frames else None
    return last


def upright(array: np.ndarray, rotation: int) -> np.ndarray:
    """(H, W, 3) -> the picture as it is meant to be shown: ``rotation`` degrees counter-clockwise
    (PyAV's ``VideoFrame.rotation``, from the display matrix a phone writes)."""
    k = int(round(rotation / 90.0)) % 4
    return np.ascontiguousarray(np.rot90(array, k)) if k else array


def read_frames(path: str | os.PathLike, times: np.ndarray, *, size: tuple[int, int] | None = None
                ) -> tuple[np.ndarray, np.ndarray] | SkippedImage:
    """Decode the frames on screen at ``times`` (seconds): (n, H, W, 3) uint8 and their (n,) times.

    ``size`` (width, height) resizes in the decoder (stretch, as the backbones' preprocessing does);
    the rotation is applied after, so the output is upright. A clip that ends before a target
    (truncated, or shorter than its header said) gives fewer frames; none at all is a skip.
    """
    av = require_av()
    name = os.fspath(path)
    pictures: list[np.ndarray] = []
    stamps: list[float] = []
    try:
        with av.open(name, metadata_errors="ignore") as container:
            if not container.streams.video:
                return SkippedImage(name, "no video stream (an audio-only or data file)")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame, t in _frames_at(container, stream, [float(x) for x in times]):
                kwargs = {"format": "rgb24"}
                if size is not None:
                    kwargs.update(width=int(size[0]), height=int(size[1]))
                pictures.append(upright(frame.to_ndarray(**kwargs), getattr(frame, "rotation", 0) or 0))
                stamps.append(t)
    except Exception as exc:  # noqa: BLE001 -- a decoder failure: keep the frames decoded so far
        if not pictures:
            return SkippedImage(name, _reason(exc))
    if not pictures:
        return SkippedImage(name, "no frame could be decoded")
    shapes = {p.shape for p in pictures}
    if len(shapes) > 1:  # a mid-clip size change without ``size``: fit all to the first frame's
        h, w = pictures[0].shape[:2]
        pictures = [p if p.shape[:2] == (h, w) else np.asarray(Image.fromarray(p).resize((w, h))) for p in pictures]
    return np.stack(pictures), np.asarray(stamps)


def _frames_at(container, stream, targets: list[float]) -> Iterator[tuple[Any, float]]:
    """(frame, target) for each target: the frame on screen then (the last whose time is at or before
    it; the first frame for a target before it, the last one for a target past the end)."""
    tb = stream.time_base
    start = float(stream.start_time * tb) if stream.start_time is not None and tb else 0.0
    rate = float(stream.average_rate or 25)
    decoder = None
    shown = None  # (frame, time): the frame on screen at the last target
    ahead = None  # (frame, time): the next decoded frame, not yet on screen; None at the end
    ended = False

    def step(previous_time: float):
        frame = next(decoder, None)
        if frame is None:
            return None
        t = float(frame.time) - start if frame.time is not None else previous_time + 1.0 / rate
        return frame, t

    for target in targets:
        last = shown[1] if shown else -math.inf
        if decoder is None or (not ended and ahead is not None and target - ahead[1] > SEEK_GAP) or target < last:
            offset = int((start + target) / tb) if tb else int(target * 1_000_000)
            try:
                container.seek(offset, stream=stream, backward=True, any_frame=False)
            except Exception:  # noqa: BLE001 -- an unseekable file: decode on from where it is
                pass
            decoder = container.decode(stream)
            shown, ended = None, False
            ahead = step(-1.0 / rate)
        while ahead is not None and (shown is None or ahead[1] <= target):
            if shown is not None and ahead[1] > target:
                break
            shown = ahead
            ahead = step(shown[1])
            if ahead is not None and ahead[1] > target:
                break
        ended = ahead is None
        if shown is None:
            return  # nothing decodable
        yield shown[0], target
        if ended and shown[1] < target:
            return  # past the end: later targets would repeat the last frame
