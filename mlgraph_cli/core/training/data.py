"""What a training run learns from, typed: :class:`TrainingData`, made from a features file.

The modality of a run is decided here once, from the features file's schema (its ``modality``
attribute: "video" for ``mlgraph import-yt8m`` files, image maps otherwise), and travels as
``TrainingData.modality``; nothing downstream guesses it from an object's attributes.

Every check ends in a one-line error naming the files that disagree and the command that makes
them agree: features without labels, an empty features file, a validation file from another
backbone or of the other modality, label sets that differ, a multi-scale head without an earlier
stage, rows that are not finite numbers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlgraph_cli.core.annotations import load_annotations
from mlgraph_cli.core.features.backbones.build import backbone_from_config
from mlgraph_cli.core.features.file import open_features
from mlgraph_cli.core.features.video_file import VideoFeatureFile, is_video_features
from mlgraph_cli.core.io.artifacts import labels_digest, maker
from mlgraph_cli.core.media.images import SkippedImage, load_image
from mlgraph_cli.core.progress import ProgressHook
from mlgraph_cli.core.training.batches import FeatureSet, split_rows
from mlgraph_cli.errors import MismatchError, MlgraphError, input_error

EXTRACT_FIX = "extract it with `mlgraph extract IMAGES --annotations ANNOTATIONS`"
IMPORT_FIX = "import it with `mlgraph import-yt8m RECORDS --vocabulary vocabulary.csv`"


@dataclass
class TrainingData:
    """Datasets and what a run's config.json records about them.

    train_set / val_set: datasets of batches ``{"x", "aux", "y", "index", "mask"}`` (core/training/batches.py);
    in_channels: D of the maps (a list, earliest stage first, for a multi-scale head); modality:
    "image" or "video"; input_kind: "features" or "images" (end to end, with ``backbone``).
    """

    label_names: list[str]
    train_set: Any
    val_set: Any
    in_channels: Any
    modality: str
    input_kind: str
    source: Path
    data_info: dict[str, Any]
    backbone_config: dict[str, Any]
    backbone: Any = None
    backbone_state: dict[str, Any] | None = None  # frozen backbone weights to store (random init / local file)
    split: dict[str, Any] | None = None


def features_modality(path: str | os.PathLike) -> str:
    """"video" for a video features file (``mlgraph import-yt8m``), else "image" (also if unreadable)."""
    return "video" if Path(path).is_file() and is_video_features(path) else "image"


def is_video(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a video features file (``mlgraph import-yt8m``); False if unreadable."""
    return features_modality(path) == "video"


def open_labelled_features(path: Path, role: str = "features"):
    """A features file with labels and at least one image (or video), or a one-line error.
    Video features come back as a VideoFeatureFile (``mask(rows)``, ``segments``)."""
    if features_modality(path) == "video":
        ff, what, fix, where = VideoFeatureFile(path), "videos", IMPORT_FIX, "records with videos"
    else:
        ff, what, fix, where = open_features(path), "images", EXTRACT_FIX, "a folder with images"
    if len(ff) == 0:
        raise input_error(path, f"the features file holds no {what}", f"re-{fix} on {where}")
    if ff.labels is None or ff.label_names is None:
        raise input_error(path, f"the {role} file has no labels, so there is nothing to learn from", fix)
    # Label values outside -1, 0, 1 are refused when the file is opened (core/features/checks.py).
    return ff


def modality_name(video: bool) -> str:
    """How an error names a features file's kind, with the command that makes it."""
    return "video features (from `mlgraph import-yt8m`)" if video else "image features (from `mlgraph extract`)"


def prepare_features(features: Path | None, val_features: Path | None, config, *, multi_scale: bool, dist,
                     progress: ProgressHook, labels=None) -> TrainingData:
    """Training (and validation) rows of cached features; ``multi_scale``: the head reads two stages.

    config: the run's TrainConfig (val_fraction, seed, cache). Validation comes from
    ``val_features`` or a seeded split of the training file (recorded in ``split``). labels: a
    declared :class:`~mlgraph_cli.core.annotations.LabelSet`, the run's labels in order (default:
    the training file's). Files are aligned to the run's labels by :func:`align_targets`.
    """
    if features is None:
        raise MlgraphError(f"no training data given (pass --features F.h5 from `{maker('features')}`, "
                           "or --images DIR --annotations ANN to train end to end)")
    path = Path(features)
    modality = features_modality(path)
    video = modality == "video"
    ff = open_labelled_features(path)
    names = list(labels.labels) if labels is not None else list(ff.label_names)
    targets = ff.labels
    if labels is not None:
        targets = align_targets(ff, names, path, labels.source, labels.fix, progress if dist.is_main else None)
    multi = multi_scale
    if multi and not ff.has_aux:
        raise input_error(path, "head ms-cma needs two backbone stages but the file has one (no features_aux)",
                          "extract with two stages: `mlgraph extract ... --layer STAGE --layer STAGE`")
    bcfg = ff.attrs.get("backbone_config") or {}
    val_info: dict[str, Any] = {"source": "none"}
    split = None
    if val_features is not None:
        vpath = Path(val_features)
        if is_video(vpath) != video:
            raise MismatchError(f"{path} holds {modality_name(video)} but {vpath} holds {modality_name(not video)} "
                                f"(validate on data made the same way as the training data)")
        vf = open_labelled_features(vpath, "validation features")
        if video:
            _same_frame_layout(path, ff, vpath, vf)
        else:
            _same_extraction(path, ff, vpath, vf)
        val_targets = align_targets(vf, names, vpath, labels.source if labels is not None else path,
                                    f"extract both with the same declared labels: `{maker('features')} ... --labels "
                                    "graph.json`", progress if dist.is_main else None)
        val_rows = np.arange(len(vf))
        train_rows = np.arange(len(ff))
        val_ff = vf
        val_info = {"source": "file", "path": os.fspath(vpath.resolve()), "num_images": len(vf)}
    else:
        train_rows, val_rows = split_rows(len(ff), config.val_fraction if len(ff) >= 2 else 0.0, config.seed)
        val_ff, val_targets = ff, targets[val_rows]
        if len(val_rows):
            val_info = {"source": "split", "fraction": config.val_fraction, "seed": config.seed,
                        "num_images": int(len(val_rows))}
            split = {"fraction": config.val_fraction, "seed": config.seed,
                     "val_ids": [ff.ids[i] for i in val_rows.tolist()]}
    in_ram = _use_ram(config.cache, ff, len(train_rows) + (len(val_rows) if val_ff is ff else 0), multi,
                      dist.world_size)
    if in_ram and dist.is_main and config.cache == "auto" and _ram_bytes(ff, len(train_rows), multi) >= 64 * 2**20:
        progress.log(f"Loading {path} into memory ({_ram_bytes(ff, len(train_rows), multi) / 2**20:,.1f} MiB)")
    train_set = FeatureSet(ff, train_rows, targets[train_rows], aux=multi, in_ram=in_ram, video=video)
    val_set = None
    if len(val_rows) and dist.is_main:
        val_set = FeatureSet(val_ff, val_rows, val_targets, aux=multi, in_ram=in_ram, video=video)
    in_channels: Any = [ff.aux_shape[0], ff.feature_shape[0]] if multi else ff.feature_shape[0]
    data_info: dict[str, Any] = {
        "features": os.fspath(path.resolve()), "num_images": len(ff), "train_images": int(len(train_rows)),
        "labels_digest": labels_digest(names), "feature_shape": list(ff.feature_shape),
        "declared_labels": os.fspath(Path(labels.source).resolve()) if labels is not None else None,
        "features_digest": ff.content_digest(),  # --resume refuses a file made again under this name
        "aux_shape": list(ff.aux_shape) if ff.aux_shape else None, "val": val_info}
    if video:  # T, and whether clips are frame-level (T seconds) or video-level (one mean frame)
        data_info.update(frames=ff.frames, record_kind=ff.attrs.get("record_kind"),
                         label_class_ids=ff.attrs.get("label_class_ids"))
    return TrainingData(label_names=names, train_set=train_set, val_set=val_set, in_channels=in_channels,
                        modality=modality, input_kind="features", source=path, data_info=data_info,
                        backbone_config=bcfg, split=split,
                        backbone_state=_frozen_backbone_state(bcfg, progress) if dist.is_main else None)


def _same_extraction(path: Path, ff, vpath: Path, vf) -> None:
    """Training and validation maps must come from the same backbone, weights, size and stages."""
    keys = ("backbone", "weights", "image_size", "layers")
    diffs = [f"{k} {ff.attrs.get(k)!r} vs {vf.attrs.get(k)!r}" for k in keys if ff.attrs.get(k) != vf.attrs.get(k)]
    if diffs or ff.feature_shape != vf.feature_shape:
        what = ", ".join(diffs) or f"map shape {ff.feature_shape} vs {vf.feature_shape}"
        raise MismatchError(f"{path} and {vpath} were extracted differently ({what}) (extract both with the same "
                            f"`mlgraph extract --backbone --weights --image-size`)")


def _same_frame_layout(path: Path, ff, vpath: Path, vf) -> None:
    """Training and validation clips need the same frame features; their lengths T may differ."""
    if ff.feature_shape[0] != vf.feature_shape[0]:
        raise MismatchError(f"{path} and {vpath} hold frames of {ff.feature_shape[0]} and {vf.feature_shape[0]} "
                            f"features (import both with `mlgraph import-yt8m`)")


def align_targets(ff, names: list[str], path: Path, reference: Path, fix: str, progress) -> np.ndarray:
    """``ff``'s labels (N, C') as columns in the order of ``names`` (N, C), matched by name.

    A label of ``names`` the file lacks is read as having no positive there (a column of 0); a
    label of the file not in ``names`` is left out when no row of the file has it as a positive
    (a declared but empty column); with positives it is a real mismatch, a :class:`MismatchError`
    naming the files and ``fix``. Each alignment is said in one line through ``progress`` (None: silent).
    """
    found = list(ff.label_names)
    if found == names:
        return ff.labels
    if len(set(found)) != len(found):
        raise MismatchError(f"{path} lists a label twice ({fix})")
    index = {n: i for i, n in enumerate(found)}
    wanted = set(names)
    extra = [n for n in found if n not in wanted]
    positive = (np.asarray(ff.labels) == 1).any(axis=0)  # (C',)
    real = [n for n in extra if positive[index[n]]]
    if real:
        raise MismatchError(f"{path} and {reference} have different label sets ({len(real)} only in {path}, with "
                            f"positives there: {', '.join(map(repr, real[:4]))}) ({fix})")
    missing = [n for n in names if n not in index]
    if progress is not None and missing:
        progress.log(f"{path} lacks {len(missing)} label(s) of {reference}, read as having no positive there: "
                     f"{', '.join(map(repr, missing[:8]))}")
    if progress is not None and extra:
        progress.log(f"{path}: {len(extra)} label(s) not in {reference} and without positives are left out: "
                     f"{', '.join(map(repr, extra[:8]))}")
    out = np.zeros((len(ff), len(names)), dtype=np.int8)  # (N, C)
    for j, name in enumerate(names):
        if name in index:
            out[:, j] = ff.labels[:, index[name]]
    return out


def check_same_label_set(found: list[str], expected: list[str], path: Path, reference: Path, fix: str) -> None:
    if sorted(found) == sorted(expected) and len(set(found)) == len(found):
        return
    only_here = [n for n in found if n not in set(expected)]
    only_ref = [n for n in expected if n not in set(found)]
    parts = []
    if only_ref:
        parts.append(f"{len(only_ref)} only in {reference}: {', '.join(map(repr, only_ref[:4]))}")
    if only_here:
        parts.append(f"{len(only_here)} only in {path}: {', '.join(map(repr, only_here[:4]))}")
    raise MismatchError(f"{path} and {reference} have different label sets "
                        f"({'; '.join(parts) or 'duplicates'}) ({fix})")


def _ram_bytes(ff, rows: int, multi: bool) -> int:
    per = int(np.prod(ff.feature_shape)) + (int(np.prod(ff.aux_shape)) if multi and ff.aux_shape else 0)
    return rows * per * 2  # float16, as stored


def _use_ram(cache: str, ff, rows: int, multi: bool, world_size: int) -> bool:
    """``auto``: in memory when every rank's copy together fits in half the free memory."""
    if cache != "auto":
        return cache == "ram"
    try:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not Linux: stay on disk
        return False
    return _ram_bytes(ff, rows, multi) * world_size < free // 2


def _frozen_backbone_state(bcfg: dict[str, Any], progress: ProgressHook) -> dict[str, Any] | None:
    """The backbone's weights when a name cannot bring them back: random init (``none``) or a local
    file. predict then rebuilds the very backbone the features were extracted with."""
    weights = str(bcfg.get("weights", ""))
    if not bcfg or (weights.lower() != "none" and not os.path.isabs(weights)):
        return None  # a named pretrained set (torchvision enum, IMAGENET1K of Lite0): rebuilt by name
    try:
        return backbone_from_config(bcfg, "cpu").state_dict()
    except MlgraphError as exc:
        progress.log(f"warning: the backbone cannot be rebuilt ({exc}); `mlgraph predict` will not run on this model")
        return None


def load_or_none(path: str):
    """A PIL RGB image, or None for a file that cannot be used (module level: picklable for workers)."""
    image = load_image(path)
    return None if isinstance(image, SkippedImage) else image


def annotated_images(images: Path | None, annotations: Path | None, role: str = "",
                     label_names: list[str] | None = None, purpose: str = "end-to-end training"):
    """(file paths, targets (N, C) int8, label names) of an annotation file over an image folder.

    role: the flag prefix (``val-``); label_names: reorder the columns to these.
    """
    if images is None or annotations is None:
        raise MlgraphError(f"{purpose} needs both --{role}images and --{role}annotations")
    ann = load_annotations(annotations)
    if label_names is not None:
        ann = ann.reorder(label_names)
    if ann.num_images == 0:
        raise input_error(annotations, "no images in the annotations", "point at a non-empty annotation file")
    missing = [i for i, f in enumerate(ann.files) if f is None]
    if missing:
        raise input_error(annotations,
                          f"{len(missing)} image(s) have no file name (e.g. id {ann.image_ids[missing[0]]})",
                          "use annotations that name each image's file")
    root = Path(images)
    if not root.is_dir():
        raise input_error(root, "no such image folder", f"pass the folder the files of {annotations} are in")
    return [os.fspath(root / f) for f in ann.files], ann.dense(), list(ann.labels)
