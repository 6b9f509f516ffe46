"""``mlgraph predict CLIP.mp4``: labels of video files with a run trained on clips' frame vectors.

A clip is sampled and turned into frame vectors exactly as ``mlgraph extract`` did for the run's
training file (the sampling stored in that file's attrs when it can still be read; else the default
sampling of ``mlgraph extract``, at most the run's T frames), then scored by the run's temporal
head. ``segments``: the clip is cut into fixed-length windows [k L, (k + 1) L) seconds and the head
scores each window's frames alone (the others masked), as YouTube-8M Segments are scored. Rows:
``{"video": path, "labels": [...], "segments": [{"start": s, "end": e, "labels": [...]}]}``, times
in seconds. Files that cannot be read are skipped with their reason.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image

from mlgraph_cli.core.features.config import ExtractConfig
from mlgraph_cli.core.inference.run import load_run
from mlgraph_cli.core.media.images import SkippedImage, list_images
from mlgraph_cli.core.media.videos import (VIDEO_SUFFIXES, Sampling, is_video_path, only_videos, probe, read_frames,
                                           require_av)
from mlgraph_cli.core.training.run_config import RunConfig
from mlgraph_cli.errors import MismatchError, MlgraphError


@dataclass
class ClipScores:
    """One clip: (C,) probabilities, its frame times (T,), and per segment (start, end, (C,) scores)."""

    path: str
    scores: np.ndarray
    times: np.ndarray
    segments: list[tuple[float, float, np.ndarray]] = field(default_factory=list)
    attention: np.ndarray | None = None  # (C, T) per-label weight of each frame (for --explain)
    thumbnails: np.ndarray | None = None  # (T, h, w, 3) uint8


def clip_inputs(inputs: Sequence[str | os.PathLike]) -> list[Path] | None:
    """The video files named by ``inputs`` when every input is a video file or holds only videos; else None."""
    if not inputs or not all(is_video_path(i) or Path(i).is_dir() or any(c in os.fspath(i) for c in "*?[")
                             for i in inputs):
        return None
    try:
        if not only_videos(inputs):
            return None
        videos = list_images(list(inputs), VIDEO_SUFFIXES)
    except MlgraphError:
        return None
    return videos


def run_sampling(config: dict[str, Any]) -> Sampling:
    """The sampling the run's training clips were extracted with; when that file is gone or predates
    the ``sampling`` attribute, ``mlgraph extract``'s default sampling, at most the run's T frames."""
    data = config.get("data") or {}
    try:
        # lazy: start-up — a predict on images loads no h5py, no annotations (tests/test_predict.py)
        import h5py

        with h5py.File(data.get("features", ""), "r") as f:
            return Sampling.from_dict(json.loads(f.attrs["sampling"]))
    except Exception:  # noqa: BLE001 -- the training file moved or predates sampling attrs: the default
        fields = ExtractConfig().sampling_fields()
        fields["max_frames"] = min(fields["max_frames"], int(data.get("frames") or fields["max_frames"]))
        return Sampling(**fields)


def training_clip(config: dict[str, Any]) -> Path | None:
    """One of the run's own training clips that is still where it was (for the export's check), or None."""
    data = config.get("data") or {}
    try:
        # lazy: start-up — a predict on images loads no h5py, no annotations (tests/test_predict.py)
        import h5py

        with h5py.File(data.get("features", ""), "r") as f:
            root = Path(str(f.attrs.get("images_root", "")))
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in f["files"][:64]]
    except Exception:  # noqa: BLE001 -- the training file moved or is not a clips file: no clip
        return None
    return next((root / n for n in names if (root / n).is_file()), None)


def training_rows(config: dict[str, Any], n: int) -> tuple[list[np.ndarray] | None, str]:
    """The first ``n`` clips of the run's training features file as (T_i, D) float32 frames, and what
    they are; (None, reason) when the file cannot be read."""
    # lazy: start-up — a predict on images loads no h5py, no annotations (tests/test_predict.py)
    from mlgraph_cli.core.features.video_file import VideoFeatureFile, load_video_features

    path = (config.get("data") or {}).get("features", "")
    try:
        with contextlib.closing(VideoFeatureFile(path)) as vf:
            n = min(n, len(vf))
        data = load_video_features(path, rows=list(range(n)))
    except Exception:  # noqa: BLE001 -- moved, or fewer rows: the caller falls back
        return None, "no training features"
    rows = [x[:, m].T.astype(np.float32) for x, m in zip(data["features"], data["mask"])]  # (D, T) -> (T_i, D)
    return rows, f"{path} (its first {len(rows)} clips)"


def load_clip_run(run_dir: str | os.PathLike, checkpoint: str, device):
    """The run with its backbone, refusing an image run or a YouTube-8M run (no backbone)."""
    rc = RunConfig.read(run_dir)
    where = Path(run_dir) / "config.json"
    if rc.modality != "video":
        raise MismatchError(f"{where}: an image run, but the inputs are video files (pass a run trained on "
                            f"features from `mlgraph extract CLIPS/`)")
    if not rc.backbone:
        raise MismatchError(f"{where}: a run trained on `mlgraph import-yt8m` features, which have no backbone to "
                            f"turn video files into frames (train on features from `mlgraph extract CLIPS/`)")
    return load_run(run_dir, checkpoint, device=device, with_backbone=True)


def score_clips(paths: Sequence[Path], run, device, *, sampling: Sampling, segment_seconds: float | None = None,
                explain: bool = False, batch_size: int = 16, thumb: int = 64, progress=None):
    """Yield :class:`ClipScores` or :class:`SkippedImage`, clip by clip."""
    # lazy: start-up — a predict on images loads no h5py, no annotations (tests/test_predict.py)
    from mlgraph_cli.core.features.sources import frame_vectors

    require_av()
    backbone, head = run.model.backbone, run.model.head
    head.eval().to(device)
    size = backbone.image_size
    for path in paths:
        info = probe(path)
        if isinstance(info, SkippedImage):
            yield info
            continue
        times = sampling.times(info.duration, info.fps)
        got = read_frames(path, times, size=(size, size))  # scaled by the decoder, as `mlgraph extract` does
        if isinstance(got, SkippedImage):
            yield got
            continue
        small, times = got
        x = torch.from_numpy(frame_vectors(backbone, small, device, batch_size).T.copy())[None]  # (1, D, T)
        x = x.half().float()  # the precision the features file stores
        with torch.no_grad():
            probs = torch.sigmoid(head(x.to(device), None)).cpu().numpy()[0]  # (C,)
            item = ClipScores(os.fspath(path), probs, times)
            if segment_seconds:
                for start in np.arange(0.0, float(info.duration), float(segment_seconds)):
                    end = min(start + segment_seconds, float(info.duration))
                    mask = torch.from_numpy((times >= start) & (times < end))[None]  # (1, T)
                    if mask.any():
                        seg = torch.sigmoid(head(x.to(device), mask.to(device))).cpu().numpy()[0]
                        item.segments.append((round(float(start), 3), round(float(end), 3), seg))
            if explain:
                item.attention = frame_weights(head, x.to(device)).cpu().numpy()[0]  # (C, T)
                full = read_frames(path, times)  # the same frames again, at their own size and shape
                pictures = full[0] if not isinstance(full, SkippedImage) and len(full[0]) == len(times) else small
                h = thumb
                w = max(1, round(pictures.shape[2] * h / pictures.shape[1]))
                item.thumbnails = np.stack([_resize(p, w, h) for p in pictures])
        yield item


def frame_weights(head, x):
    """(B, C, T): the temporal attention a_k(t) of a head that has one; else each frame's share of
    the per-frame probabilities (the head on each frame alone), which sums to one over frames too."""
    if hasattr(head, "attention"):
        return head.attention(x, None).float()
    b, d, t = x.shape
    per = torch.sigmoid(head(x.permute(0, 2, 1).reshape(b * t, d, 1), None).float())  # (B*T, C)
    per = per.reshape(b, t, -1).permute(0, 2, 1)  # (B, C, T)
    return per / per.sum(-1, keepdim=True).clamp_min(1e-9)


def _resize(picture: np.ndarray, w: int, h: int) -> np.ndarray:
    return np.asarray(Image.fromarray(picture).resize((w, h), Image.Resampling.BILINEAR))
