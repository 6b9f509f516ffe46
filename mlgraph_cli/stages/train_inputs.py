"""The inputs of ``mlgraph train``, checked against each other and turned into data and a model.

Every check here ends in a one-line error that names the files that disagree and the command
that makes them agree: features without labels, an empty features file, features and
embeddings (or graph) with different label sets, a validation file from another backbone, a
multi-scale head on features without an earlier stage, video features beside image features.

Video features (``mlgraph import-yt8m``, ``modality = "video"``) go through the same path: the
rows come with the mask of their real frames (core/batches.py) and the head is a temporal one,
``build_video_head`` (``--head cma|gap|gmp`` -> ``video-cma|video-gap|video-gmp``).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlgraph_cli.core.artifacts import file_digest, labels_digest, maker
from mlgraph_cli.core.progress import ProgressHook
from mlgraph_cli.errors import InputError, MismatchError, MlgraphError, input_error

EXTRACT_FIX = "extract it with `mlgraph extract IMAGES --annotations ANNOTATIONS`"
IMPORT_FIX = "import it with `mlgraph import-yt8m RECORDS --vocabulary vocabulary.csv`"


@dataclass
class TrainInputs:
    """Paths a run reads. Cached features (``features``) or images end to end (``images`` +
    ``annotations``); validation from ``val_features`` / ``val_images`` + ``val_annotations`` or
    a split of the training data."""

    features: Path | None = None
    val_features: Path | None = None
    embeddings: Path | None = None
    graph: Path | None = None
    images: Path | None = None
    annotations: Path | None = None
    val_images: Path | None = None
    val_annotations: Path | None = None

    def to_json(self) -> dict[str, str | None]:
        """Absolute paths, so ``--resume`` works from any folder."""
        return {k: (os.fspath(Path(v).resolve()) if v is not None else None)
                for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "TrainInputs":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: (Path(v) if v else None) for k, v in (data or {}).items() if k in names})


@dataclass
class Prepared:
    """Everything the trainer needs, and what the run's config.json records about it."""

    model: Any
    train_set: Any
    val_set: Any
    label_names: list[str]
    input_kind: str  # "features" or "images"
    backbone_config: dict[str, Any]
    backbone_state: dict[str, Any] | None  # frozen backbone weights to store (random init / local file)
    data_info: dict[str, Any]
    embeddings_info: dict[str, Any] | None
    graph_info: dict[str, Any] | None
    split: dict[str, Any] | None
    modality: str = "image"  # "video" for features from `mlgraph import-yt8m`
    probe: dict[str, Any] | None = None  # the probe start of a temporal CMA head (stages/train.py)


def prepare(inputs: TrainInputs, config, *, device, dist, progress: ProgressHook) -> Prepared:
    """Check the inputs and build datasets and model (seeded by ``config.seed``)."""
    from mlgraph_cli.core.models import HEADS

    end_to_end = inputs.images is not None or inputs.annotations is not None
    if not end_to_end and inputs.features is not None and is_video(inputs.features):
        from mlgraph_cli.core.video.heads import VIDEO_HEAD_FOR, VIDEO_HEADS

        if config.head not in VIDEO_HEAD_FOR and config.head not in VIDEO_HEADS:
            raise MlgraphError(f"--head {config.head}: not a head for video; {inputs.features} holds video features "
                               f"from `mlgraph import-yt8m` (choose one of: {', '.join(VIDEO_HEAD_FOR)})")
    elif config.head not in HEADS:
        raise MlgraphError(f"--head {config.head}: unknown head (choose one of: {', '.join(HEADS)})")
    if end_to_end:
        from mlgraph_cli.stages.train_images import prepare_images

        data = prepare_images(inputs, config, device=device, progress=progress)
    else:
        data = _prepare_features(inputs, config, dist=dist, progress=progress)
    return _with_model(data, inputs, config)


# ---------------------------------------------------------------------------------------------
# Cached features

def is_video(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a video features file (``mlgraph import-yt8m``); False if unreadable."""
    from mlgraph_cli.core.video.features import is_video_features

    return Path(path).is_file() and is_video_features(path)


def open_labelled_features(path: Path, role: str = "features"):
    """A features file with labels and at least one image (or video), or a one-line error.
    Video features come back as a VideoFeatureFile (``mask(rows)``, ``segments``)."""
    from mlgraph_cli.core.features import open_features

    if is_video(path):
        from mlgraph_cli.core.video.features import VideoFeatureFile

        ff, what, fix, where = VideoFeatureFile(path), "videos", IMPORT_FIX, "records with videos"
    else:
        ff, what, fix, where = open_features(path), "images", EXTRACT_FIX, "a folder with images"
    if len(ff) == 0:
        raise input_error(path, f"the features file holds no {what}", f"re-{fix} on {where}")
    if ff.labels is None or ff.label_names is None:
        raise input_error(path, f"the {role} file has no labels, so there is nothing to learn from", fix)
    return ff


def modality_name(video: bool) -> str:
    """How an error names a features file's kind, with the command that makes it."""
    return "video features (from `mlgraph import-yt8m`)" if video else "image features (from `mlgraph extract`)"


def _prepare_features(inputs: TrainInputs, config, *, dist, progress: ProgressHook) -> dict[str, Any]:
    from mlgraph_cli.core.batches import FeatureSet, split_rows

    if inputs.features is None:
        raise MlgraphError(f"no training data given (pass --features F.h5 from `{maker('features')}`, "
                           "or --images DIR --annotations ANN to train end to end)")
    path = Path(inputs.features)
    ff = open_labelled_features(path)
    video = hasattr(ff, "mask")
    names = list(ff.label_names)
    multi = config.head == "ms-cma"
    if multi and not ff.has_aux:
        raise input_error(path, "head ms-cma needs two backbone stages but the file has one (no features_aux)",
                          "extract with two stages: `mlgraph extract ... --layer STAGE --layer STAGE`")
    bcfg = ff.attrs.get("backbone_config") or {}
    val_info: dict[str, Any] = {"source": "none"}
    split = None
    if inputs.val_features is not None:
        vpath = Path(inputs.val_features)
        if is_video(vpath) != video:
            raise MismatchError(f"{path} holds {modality_name(video)} but {vpath} holds {modality_name(not video)} "
                                f"(validate on data made the same way as the training data)")
        vf = open_labelled_features(vpath, "validation features")
        if video:
            _same_frame_layout(path, ff, vpath, vf)
        else:
            _same_extraction(path, ff, vpath, vf)
        val_targets = _aligned_targets(vf, names, vpath, path)
        val_rows = np.arange(len(vf))
        train_rows = np.arange(len(ff))
        val_ff = vf
        val_info = {"source": "file", "path": os.fspath(vpath.resolve()), "num_images": len(vf)}
    else:
        train_rows, val_rows = split_rows(len(ff), config.val_fraction if len(ff) >= 2 else 0.0, config.seed)
        val_ff, val_targets = ff, ff.labels[val_rows]
        if len(val_rows):
            val_info = {"source": "split", "fraction": config.val_fraction, "seed": config.seed,
                        "num_images": int(len(val_rows))}
            split = {"fraction": config.val_fraction, "seed": config.seed,
                     "val_ids": [ff.ids[i] for i in val_rows.tolist()]}
    in_ram = _use_ram(config.cache, ff, len(train_rows) + (len(val_rows) if val_ff is ff else 0), multi,
                      dist.world_size)
    if in_ram and dist.is_main and config.cache == "auto" and _ram_bytes(ff, len(train_rows), multi) >= 64 * 2**20:
        progress.log(f"Loading {path} into memory ({_ram_bytes(ff, len(train_rows), multi) / 2**20:,.1f} MiB)")
    train_set = FeatureSet(ff, train_rows, ff.labels[train_rows], aux=multi, in_ram=in_ram)
    val_set = None
    if len(val_rows) and dist.is_main:
        val_set = FeatureSet(val_ff, val_rows, val_targets, aux=multi, in_ram=in_ram)
    in_channels: Any = [ff.aux_shape[0], ff.feature_shape[0]] if multi else ff.feature_shape[0]
    data_info: dict[str, Any] = {
        "features": os.fspath(path.resolve()), "num_images": len(ff), "train_images": int(len(train_rows)),
        "labels_digest": labels_digest(names), "feature_shape": list(ff.feature_shape),
        "aux_shape": list(ff.aux_shape) if ff.aux_shape else None, "val": val_info}
    if video:  # T, and whether clips are frame-level (T seconds) or video-level (one mean frame)
        data_info.update(frames=ff.frames, record_kind=ff.attrs.get("record_kind"),
                         label_class_ids=ff.attrs.get("label_class_ids"))
    return {
        "label_names": names, "train_set": train_set, "val_set": val_set, "in_channels": in_channels,
        "input_kind": "features", "backbone_config": bcfg, "backbone": None,
        "backbone_state": _frozen_backbone_state(bcfg, progress) if dist.is_main else None,
        "split": split, "source": path, "data_info": data_info, "modality": "video" if video else "image",
    }


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


def _aligned_targets(ff, names: list[str], path: Path, reference: Path) -> np.ndarray:
    """``ff``'s labels with columns in the order of ``names`` (same set required)."""
    _same_label_set(list(ff.label_names), names, path, reference,
                    f"extract both from annotations with the same labels: `{maker('features')}`")
    if list(ff.label_names) == names:
        return ff.labels
    index = {n: i for i, n in enumerate(ff.label_names)}
    return ff.labels[:, [index[n] for n in names]]


def _same_label_set(found: list[str], expected: list[str], path: Path, reference: Path, fix: str) -> None:
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
    from mlgraph_cli.core.backbones import backbone_from_config

    try:
        return backbone_from_config(bcfg, "cpu").state_dict()
    except MlgraphError as exc:
        progress.log(f"warning: the backbone cannot be rebuilt ({exc}); `mlgraph predict` will not run on this model")
        return None


# ---------------------------------------------------------------------------------------------
# Embeddings, graph, model

def _with_model(data: dict[str, Any], inputs: TrainInputs, config) -> Prepared:
    import torch

    from mlgraph_cli.core.models import build_head
    from mlgraph_cli.core.models import HEADS
    from mlgraph_cli.core.training import Classifier, seed_everything

    names, source = data["label_names"], data["source"]
    video = data.get("modality") == "video"
    build, name, options = build_head, config.head, dict(config.head_options or {})
    if video:
        from mlgraph_cli.core.video.heads import VIDEO_HEAD_FOR, VIDEO_HEADS, build_video_head

        build, name = build_video_head, VIDEO_HEAD_FOR.get(config.head, config.head)
    head_class = (VIDEO_HEADS if video else HEADS)[name].head_class
    needs_e, needs_a = head_class.needs_embeddings, head_class.needs_adjacency
    emb_vectors = emb_info = adj = graph_info = None
    if needs_e:
        emb_vectors, emb_info = _embeddings(inputs.embeddings, names, source, config.head)
    if needs_a or inputs.graph is not None:
        adj, graph_info = _adjacency(inputs.graph, names, source, config)
    seed_everything(config.seed)  # the head's initial weights depend on the seed alone
    head = build(name, in_channels=data["in_channels"], num_labels=len(names),
                 embeddings=torch.from_numpy(emb_vectors) if emb_vectors is not None else None,
                 adjacency=torch.from_numpy(adj) if (adj is not None and needs_a) else None, **options)
    return Prepared(model=Classifier(head, data["backbone"]), train_set=data["train_set"], val_set=data["val_set"],
                    label_names=names, input_kind=data["input_kind"], backbone_config=data["backbone_config"],
                    backbone_state=data["backbone_state"], data_info=data["data_info"],
                    embeddings_info=emb_info, graph_info=graph_info, split=data["split"],
                    modality=data.get("modality", "image"))


def _embeddings(path: Path | None, names: list[str], source: Path, head: str):
    from mlgraph_cli.core.embeddings import read_embeddings

    fix = f"make them with `{maker('embeddings')}` and pass --embeddings"
    if path is None:
        raise MlgraphError(f"head {head} needs label embeddings and none were given ({fix})")
    p = Path(path)
    if not p.is_file():
        raise input_error(p, f"no such file (head {head} needs label embeddings)",
                          f"make them with `{maker('embeddings')}`")
    emb = read_embeddings(p)
    _same_label_set(emb.labels, names, p, source,
                    f"make the embeddings from this dataset's graph: `{maker('graph')} ANNOTATIONS` "
                    f"then `{maker('embeddings')}`")
    emb = emb.aligned_to(names, source=p)
    info = {"path": os.fspath(p.resolve()), "method": emb.attrs.get("method"), "dimension": emb.dimension,
            "file_digest": file_digest(p), "labels_digest": labels_digest(emb.labels)}
    return np.ascontiguousarray(emb.vectors, dtype=np.float32), info


def _adjacency(path: Path | None, names: list[str], source: Path, config):
    from mlgraph_cli.core.graph import adjacency, read_graph

    if path is None:
        raise MlgraphError(f"head {config.head} needs the label graph and none was given "
                           f"(make one with `{maker('graph')} ANNOTATIONS` and pass --graph)")
    p = Path(path)
    graph = read_graph(p)
    _same_label_set(graph.labels, names, p, source,
                    f"build the graph from this dataset's annotations with `{maker('graph')}`")
    try:
        a = adjacency(graph, config.adjacency, **dict(config.adjacency_params or {}))
    except TypeError as exc:
        raise InputError(f"adjacency {config.adjacency!r}: bad adjacency_params ({exc})") from None
    order = [graph.labels.index(n) for n in names]
    a = np.ascontiguousarray(a[np.ix_(order, order)], dtype=np.float32)  # (C, C) in the data's label order
    info = {"path": os.fspath(p.resolve()), "adjacency": config.adjacency,
            "params": dict(config.adjacency_params or {}), "file_digest": file_digest(p)}
    return a, info


def check_same_data(run: Path, saved: dict[str, Any], prepared: Prepared) -> None:
    """A resumed run must see the same labels and the same number of images as when it started."""
    old, new = saved.get("data") or {}, prepared.data_info
    for key in ("labels_digest", "num_images", "feature_shape"):
        if key in old and old.get(key) != new.get(key):
            raise MismatchError(f"{run}: the training data changed since the run started ({key} {old.get(key)!r} "
                                f"-> {new.get(key)!r}) (resume with the original files, or start a new run with "
                                f"`{maker('run')}`)")
