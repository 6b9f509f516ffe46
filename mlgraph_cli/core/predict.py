"""Using a trained run: rebuild its model from ``config.json`` + safetensors, score images, and
draw where the model looked.

Rebuilding never unpickles anything: the head comes from its plain config
(``build_head(**config["head"])``) and its tensors from ``best`` / ``last.safetensors``; the
backbone from its config, with weights from ``backbone.safetensors`` (random init or a local
file at extraction time), from the checkpoint (fine-tuned end to end), or by name (a named
pretrained set such as ``IMAGENET1K`` of EfficientNet-Lite0).

Video runs (trained on ``mlgraph import-yt8m`` features, ``"modality": "video"`` in config.json)
rebuild their temporal head with ``build_head(**config["head"])`` and have no backbone:
:class:`VideoPredictor` reads YouTube-8M TFRecords and scores each clip, and on request each of
its 5-frame segments.

Explanations: heads with attention (cma, ms-cma) show their attention maps a_k (docs/method.md, "CMA: cross-modality attention").
Heads without (gap, gmp, mlgcn) show a class activation map instead: the head applied to each
location's feature vector on its own, which for gap is exactly CAM (Zhou et al., CVPR 2016,
w_k . X(h, w) + b_k) and for gmp / mlgcn the logit each location alone would give.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from mlgraph_cli.core import checkpoint as ckpt
from mlgraph_cli.core.artifacts import maker
from mlgraph_cli.core.progress import NULL_PROGRESS, ProgressHook
from mlgraph_cli.core.training import Classifier
from mlgraph_cli.errors import InputError, MismatchError, MlgraphError


@dataclass
class LoadedRun:
    """A run's model in eval mode. ``model.backbone`` is set when ``with_backbone`` was asked for
    (or the run trained its backbone end to end)."""

    run_dir: Path
    config: dict[str, Any]
    model: Classifier
    label_names: list[str]
    threshold: float
    checkpoint: str
    epoch: int | None

    @property
    def head_name(self) -> str:
        return str(self.config["head"]["name"])

    @property
    def modality(self) -> str:
        """"image" or "video" (runs from before video support are image runs)."""
        return str(self.config.get("modality") or "image")


def load_run(run_dir: str | os.PathLike, which: str = "best", *, device: Any = "cpu", with_backbone: bool = False,
             image_size: int | None = None) -> LoadedRun:
    """Rebuild a run's model. ``image_size`` overrides the backbone's input size (attention
    heads and global pooling work on any map size; the backbone must still give a map)."""
    from mlgraph_cli.core.run_config import RunConfig

    run = Path(run_dir)
    run_config = RunConfig.read(run)
    config = run_config.to_json()
    fix = f"train it with `{maker('run')}`, or continue it with `{maker('run')} --resume {run}`"
    path = ckpt.weights_path(run, which)
    if not path.is_file():
        raise InputError(f"{path}: no such weights file (the run finished no epoch yet; {fix})")
    tensors, meta = ckpt.load_weights(path, fix=fix)
    head = _build_head(run, config, tensors, path)
    run_config.check_weights(path, meta)  # same shapes, but another order of labels or another run
    trained_backbone = bool(config.get("backbone_trained"))
    backbone = None
    if with_backbone or trained_backbone:
        backbone = _build_backbone(run, config, tensors, path, device, image_size)
    model = Classifier(head, backbone).to(device).eval()
    epoch = int(meta["epoch"]) if str(meta.get("epoch", "")).isdigit() else None
    return LoadedRun(run_dir=run, config=config, model=model, label_names=list(config["labels"]),
                     threshold=float(config.get("threshold", 0.5)), checkpoint=which, epoch=epoch)


def _build_head(run: Path, config: dict[str, Any], tensors: dict[str, torch.Tensor], path: Path):
    from mlgraph_cli.core.models import build_head

    head_cfg = dict(config.get("head") or {})
    if "name" not in head_cfg:
        raise InputError(f"{run / ckpt.CONFIG}: no head config (re-train with `{maker('run')}`)")
    head = build_head(**head_cfg)
    state = {k[len("head."):]: v for k, v in tensors.items() if k.startswith("head.")}
    try:
        head.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0].rstrip(":")
        raise MismatchError(f"{path}: these weights do not fit the {head_cfg['name']!r} head described in "
                            f"{run / ckpt.CONFIG} ({first}) (use the run's own files, or re-train with "
                            f"`{maker('run')}`)") from None
    if len(config.get("labels") or []) != getattr(head, "num_labels", -1):
        raise MismatchError(f"{run / ckpt.CONFIG}: {len(config.get('labels') or [])} label names for a head with "
                            f"{getattr(head, 'num_labels', '?')} outputs (re-train with `{maker('run')}`)")
    return head


def _build_backbone(run: Path, config: dict[str, Any], tensors: dict[str, torch.Tensor], path: Path, device,
                    image_size: int | None):
    from mlgraph_cli.core.backbones import backbone_from_config

    bcfg = dict(config.get("backbone") or {})
    if not bcfg:
        raise InputError(f"{run / ckpt.CONFIG}: no backbone recorded, so images cannot be turned into features "
                         f"(train on features from `{maker('features')}`)")
    if image_size is not None:
        bcfg["image_size"] = int(image_size)
        if bcfg.get("preprocessing"):
            bcfg["preprocessing"] = {**bcfg["preprocessing"], "size": int(image_size)}
    if config.get("backbone_trained"):
        state = {k[len("backbone."):]: v for k, v in tensors.items() if k.startswith("backbone.")}
        source = path
    elif config.get("backbone_weights"):
        source = run / config["backbone_weights"]
        state, _ = ckpt.load_weights(source, fix=f"re-train with `{maker('run')}` to store it again")
    else:
        return backbone_from_config(bcfg, device)  # a named pretrained set
    backbone = backbone_from_config(bcfg, device, load_weights=False)
    try:
        backbone.load_state_dict(state)
    except RuntimeError as exc:
        raise MismatchError(f"{source}: the backbone weights do not fit {bcfg.get('name')} "
                            f"({str(exc).splitlines()[0]}) (re-train with `{maker('run')}`)") from None
    return backbone


# ---------------------------------------------------------------------------------------------
# Scoring images

@dataclass
class ImageScores:
    """Scores of one image: probabilities (C,) and, with ``maps``, its (C, H, W) explanation."""

    path: Path
    scores: np.ndarray
    maps: np.ndarray | None = None
    size: tuple[int, int] = (0, 0)  # original (width, height)
    image: Any = None  # the decoded PIL image, kept only for explanations


@dataclass
class Skipped:
    path: str
    reason: str


@dataclass
class Predictor:
    """Score images with a :class:`LoadedRun` (built ``with_backbone=True``)."""

    run: LoadedRun
    device: torch.device
    batch_size: int = 16
    skipped: list[Skipped] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.run.model.backbone is None:
            raise ValueError("Predictor needs a run loaded with_backbone=True")

    @torch.no_grad()
    def __call__(self, paths: Sequence[Path], *, explain: bool = False,
                 progress: ProgressHook = NULL_PROGRESS) -> Iterator[ImageScores]:
        """Yield scores image by image, in input order; unreadable files go to ``self.skipped``."""
        from mlgraph_cli.core.images import SkippedImage, load_image

        model = self.run.model
        pre = model.backbone.preprocessor
        progress.start("Predicting", total=len(paths), unit="img")
        for start in range(0, len(paths), self.batch_size):
            batch, tensors = [], []
            for p in paths[start:start + self.batch_size]:
                image = load_image(p)
                if isinstance(image, SkippedImage):
                    self.skipped.append(Skipped(os.fspath(p), image.reason))
                    continue
                batch.append((Path(p), image))
                tensors.append(pre(image))  # (3, S, S)
            if tensors:
                x = torch.stack(tensors).to(self.device)  # (B, 3, S, S)
                main, aux = model.maps(x)
                head_in = model.head_input(main, aux)
                probs = torch.sigmoid(model.head(head_in).float()).cpu().numpy()  # (B, C)
                maps = explanation_maps(model.head, head_in).cpu().numpy() if explain else None  # (B, C, H, W)
                for j, (p, image) in enumerate(batch):
                    yield ImageScores(path=p, scores=probs[j], maps=None if maps is None else maps[j],
                                      size=image.size, image=image if explain else None)
            progress.advance(len(paths[start:start + self.batch_size]))
        progress.stop()


@dataclass
class VideoScores:
    """Scores of one video: probabilities (C,), and with segments the first frame of each 5-frame
    segment (S,) and their probabilities (S, C). ``source`` is ``<tfrecord>#<record index>``."""

    id: str
    source: str
    scores: np.ndarray
    segment_starts: np.ndarray | None = None
    segment_scores: np.ndarray | None = None


@dataclass
class VideoPredictor:
    """Score YouTube-8M TFRecords (frame or video level) with a video :class:`LoadedRun`.

    Clips are read as ``mlgraph import-yt8m`` reads them (dequantised, rgb | audio, rounded to
    float16 as the features file stores them) and cut to ``max_frames`` (the run's T) as the import
    cuts them. Corrupt records go to ``self.skipped``.
    """

    run: LoadedRun
    device: torch.device
    batch_size: int = 16
    max_frames: int | None = None
    skipped: list[Skipped] = field(default_factory=list)

    def __call__(self, files: Sequence[Path], *, segments: bool = False,
                 progress: ProgressHook = NULL_PROGRESS) -> Iterator[VideoScores]:
        """Yield scores video by video, in record order."""
        from mlgraph_cli.core.video.tfrecord import BadRecord
        from mlgraph_cli.core.video.yt8m import iter_videos

        batch: list[tuple[str, Any]] = []
        progress.start("Predicting", total=None, unit="videos")
        for path, index, item in iter_videos(files):
            if isinstance(item, BadRecord):
                self.skipped.append(Skipped(f"{path}#{index}", item.reason))
                continue
            batch.append((f"{path}#{index}", item))
            if len(batch) == self.batch_size:
                yield from self._score(batch, segments)
                progress.advance(len(batch))
                batch = []
        if batch:
            yield from self._score(batch, segments)
            progress.advance(len(batch))
        progress.stop()

    def _score(self, batch: list[tuple[str, Any]], segments: bool) -> Iterator[VideoScores]:
        from mlgraph_cli.core.video.training import predict_videos, score_segments
        from mlgraph_cli.core.video.yt8m import SEGMENT_FRAMES

        head = self.run.model.head
        lengths = [min(len(rec.frames), self.max_frames or len(rec.frames)) for _, rec in batch]
        x = np.zeros((len(batch), batch[0][1].frames.shape[1], max(lengths)), np.float32)  # (B, D, T) zero padded
        mask = np.zeros((len(batch), max(lengths)), bool)  # (B, T)
        for i, ((_, rec), n) in enumerate(zip(batch, lengths)):
            x[i, :, :n] = rec.frames[:n].T.astype(np.float16)  # (T, D) -> (D, T), stored precision
            mask[i, :n] = True
        probs = predict_videos(head, x, mask, batch_size=len(batch), device=self.device)  # (B, C)
        seg_video = seg_start = seg_probs = None
        if segments:  # YouTube-8M Segments' windows: frames [5s, 5s + 5), one per 5 frames of the clip
            starts = [np.arange(0, n, SEGMENT_FRAMES) for n in lengths]
            seg_video = np.concatenate([np.full(len(s), i) for i, s in enumerate(starts)])
            seg_start = np.concatenate(starts)
            seg_probs = score_segments(head, x, mask, seg_video, seg_start, batch_size=max(self.batch_size, 64),
                                       device=self.device)  # (S, C)
        for i, (source, rec) in enumerate(batch):
            own = seg_video == i if segments else None
            yield VideoScores(id=rec.id, source=source, scores=probs[i],
                              segment_starts=seg_start[own] if segments else None,
                              segment_scores=seg_probs[own] if segments else None)


def explanation_maps(head, x) -> torch.Tensor:
    """Per-label maps (B, C, H, W): attention a_k for heads that have it, else the head applied to
    each location alone (CAM for gap; see the module docstring)."""
    if hasattr(head, "attention"):
        return head.attention(x).float()
    b, d, h, w = x.shape
    per_location = x.permute(0, 2, 3, 1).reshape(b * h * w, d, 1, 1)  # (B*H*W, D, 1, 1)
    logits = head(per_location).float()  # (B*H*W, C)
    return logits.reshape(b, h, w, -1).permute(0, 3, 1, 2)  # (B, C, H, W)


def select_labels(scores: np.ndarray, names: Sequence[str], *, topk: int | None,
                  threshold: float) -> list[tuple[str, float]]:
    """(label, score) pairs, highest first, that are among the ``topk`` best and >= ``threshold``."""
    order = np.argsort(-scores, kind="stable")
    if topk is not None:
        order = order[:topk]
    return [(names[i], float(scores[i])) for i in order if scores[i] >= threshold]


def check_prediction_options(topk: int | None, threshold: float | None) -> None:
    if topk is not None and topk < 1:
        raise MlgraphError(f"--topk {topk}: must be at least 1")
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise MlgraphError(f"--threshold {threshold}: must be a probability between 0 and 1")


# ---------------------------------------------------------------------------------------------
# Explanations drawn with PIL

# An "inferno"-like colour ramp (dark purple -> red -> yellow): perceptually ordered, readable
# over photographs. Anchor colours at 0, 0.25, 0.5, 0.75, 1.
_RAMP = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], dtype=np.float32)


def colorize(values: np.ndarray) -> np.ndarray:
    """(H, W) in [0, 1] -> (H, W, 3) uint8 through :data:`_RAMP` (linear between anchors)."""
    v = np.clip(values, 0.0, 1.0) * (len(_RAMP) - 1)
    lo = np.floor(v).astype(int).clip(0, len(_RAMP) - 2)
    t = (v - lo)[..., None]
    return (_RAMP[lo] * (1 - t) + _RAMP[lo + 1] * t).round().astype(np.uint8)


def panel_size(size: tuple[int, int], longest: int) -> tuple[int, int]:
    """(width, height) of one panel: the image scaled so its longer side is ``longest`` px."""
    w, h = size
    scale = longest / max(w, h)
    return max(1, round(w * scale)), max(1, round(h * scale))


def explain_image(image, maps: np.ndarray, labels: Sequence[tuple[int, str, float]], *, longest: int = 256,
                  caption: int = 22, alpha: float = 0.5):
    """One PNG-ready PIL image: a panel per (label index, name, score), side by side.

    Each panel is the image (scaled to ``longest`` px on its longer side) blended with that
    label's map, stretched over the whole image (the backbone saw the whole image stretched to a
    square) and scaled to [0, 1] by its own min and max; the label and score are written in a
    ``caption`` px strip below. Size: (len(labels) * panel width, panel height + caption).
    """
    from PIL import Image, ImageDraw

    pw, ph = panel_size(image.size, longest)
    base = np.asarray(image.convert("RGB").resize((pw, ph), Image.Resampling.BILINEAR), dtype=np.float32)
    sheet = Image.new("RGB", (pw * max(1, len(labels)), ph + caption), "white")
    draw = ImageDraw.Draw(sheet)
    for n, (k, name, score) in enumerate(labels):
        m = maps[k].astype(np.float32)
        lo, hi = float(m.min()), float(m.max())
        m = (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)
        up = np.asarray(Image.fromarray(m).resize((pw, ph), Image.Resampling.BILINEAR))  # (ph, pw)
        blend = (1 - alpha) * base + alpha * colorize(up).astype(np.float32)
        sheet.paste(Image.fromarray(blend.round().clip(0, 255).astype(np.uint8)), (n * pw, 0))
        draw.text((n * pw + 4, ph + 4), f"{name} {score:.2f}", fill="black")
    return sheet


def explain_name(path: Path, root: Path | None) -> str:
    """A flat PNG name for ``path``: its path under ``root`` with separators as ``__``."""
    try:
        rel = path.resolve().relative_to(root.resolve()) if root is not None else Path(path.name)
    except ValueError:
        rel = Path(path.name)
    return "__".join(rel.with_suffix("").parts) + ".png"
