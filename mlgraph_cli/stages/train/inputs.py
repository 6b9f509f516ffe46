"""The inputs of ``mlgraph train``: paths (from flags or the project), checked against each other
and turned into a :class:`~mlgraph_cli.core.training.data.TrainingData` and a model.

Every check ends in a one-line error that names the files that disagree and the command that
makes them agree (features and embeddings or graph with different label sets; the rest in
core/training/data.py). The modality comes from the features file's schema once
(``TrainingData.modality``); the head is looked up for it in the one registry
(``core.models.resolve_head``: ``--head cma`` on video features is ``video-cma``).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mlgraph_cli.core.annotations import read_label_set
from mlgraph_cli.core.embeddings.files import read_embeddings
from mlgraph_cli.core.graph.adjacency import adjacency
from mlgraph_cli.core.graph.files import read_graph
from mlgraph_cli.core.features.file import AUX
from mlgraph_cli.core.io.artifacts import file_digest, labels_digest, maker
from mlgraph_cli.core.io.hdf5 import h5_has_dataset
from mlgraph_cli.core.models import HEADS, RETIRED_OPTIONS, build_head, resolve_head
from mlgraph_cli.core.progress import ProgressHook
from mlgraph_cli.core.training.config import DEFAULT_HEADS, default_head
from mlgraph_cli.core.training.data import TrainingData, check_same_label_set, features_modality, prepare_features
from mlgraph_cli.core.training.trainer import Classifier, seed_everything
from mlgraph_cli.errors import InputError, MismatchError, MlgraphError, input_error
from mlgraph_cli.stages.train.images import prepare_images


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
    labels: Path | None = None  # the declared label set (a label file or a graph): the run's labels, in order

    @property
    def end_to_end(self) -> bool:
        return self.images is not None or self.annotations is not None

    def to_json(self) -> dict[str, str | None]:
        """Absolute paths, so ``--resume`` works from any folder."""
        return {k: (os.fspath(Path(v).resolve()) if v is not None else None)
                for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "TrainInputs":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: (Path(v) if v else None) for k, v in (data or {}).items() if k in names})

    def with_project(self, project, head: str | None, head_options: dict[str, Any] | None = None) -> "TrainInputs":
        """Fill the paths left out from a project folder (None: as given): artifacts for features,
        validation features (if that file exists), embeddings and graph (for the heads that read
        them); the dataset's images, annotations and validation split for end-to-end runs; the
        declared labels from the graph, once `mlgraph build-graph` wrote it."""
        if project is None:
            return self
        fill: dict[str, Any] = {}
        if self.end_to_end:
            fill["annotations"] = self.annotations or project.dataset_path("annotations")
            fill["images"] = self.images or project.dataset_path("images")
            if self.val_annotations is None and project.dataset_path("val_annotations") is not None:
                fill["val_annotations"] = project.dataset_path("val_annotations")
                fill["val_images"] = self.val_images or project.dataset_path("val_images")
        else:
            fill["features"] = self.features or project.artifact("features")
            default_val = project.artifact("val_features")
            fill["val_features"] = self.val_features or (default_val if default_val.is_file() else None)
        # the image and video entries of a head name read the same inputs (cma / video-cma: embeddings)
        # no head named: any default head (core/training/config.py), whichever the features turn out to need
        names = [head] if head else sorted(set(DEFAULT_HEADS.values()))
        kinds = [HEADS[n].head_class for name in names for n in (name, f"video-{name}") if n in HEADS]
        if any(k.reads_embeddings(head_options or {}) for k in kinds):
            fill["embeddings"] = self.embeddings or project.artifact("embeddings")
        if any(k.needs_adjacency for k in kinds):
            fill["graph"] = self.graph or project.artifact("graph")
        if self.labels is None and project.artifact("graph").is_file():
            fill["labels"] = project.artifact("graph")
        return dataclasses.replace(self, **fill)


@dataclass
class Prepared:
    """Everything the trainer needs, and what the run's config.json records about it."""

    model: Any
    data: TrainingData
    head_name: str  # the registry entry (``video-cma`` for ``--head cma`` on video)
    embeddings_info: dict[str, Any] | None
    graph_info: dict[str, Any] | None
    probe: dict[str, Any] | None = None  # the probe start of a CMA head (core/training/probe.py)


def data_modality(inputs: TrainInputs) -> str:
    """What the run trains on: "image" end to end, else what the features file's schema says."""
    if inputs.end_to_end or inputs.features is None:
        return "image"
    return features_modality(inputs.features)


def _two_maps(inputs: TrainInputs, config) -> bool:
    """Whether the run's inputs give two maps: ``--layer`` twice end to end, else a features file
    with the finer map (``features_aux``) beside the main one."""
    if inputs.end_to_end or inputs.features is None:
        return len(config.layers or []) == 2
    return h5_has_dataset(inputs.features, AUX)  # the finer map MS-CMA reads


def resolved_config(inputs: TrainInputs, config):
    """``config`` with its unset values filled for the head and the data's modality (read from the
    features file's schema, once). A fitted head (``probe``) runs one epoch, its fit, whatever
    ``epochs`` says."""
    modality = data_modality(inputs)
    if config.head is None:  # the default head of what the data holds (core/training/config.py)
        config = dataclasses.replace(config, head=default_head(modality, _two_maps(inputs, config)))
    name = resolve_head(config.head, modality, None if inputs.end_to_end else inputs.features)
    head_class = HEADS[name].head_class
    check_head_options(config.head, head_class, config.head_options or {})
    if head_class.fitted:  # solved once, in closed form (core/training/fitting.py): one "epoch", no probe, no SGD loss
        if config.loss != "bce":
            raise InputError(f"--loss {config.loss}: head {config.head} is fitted by logistic regression, whose loss "
                             f"is the log loss (leave out --loss, or pick a head trained by SGD)")
        config = dataclasses.replace(config, epochs=1, probe_epochs=0, warmup_epochs=0.0)
    return config.for_modality(modality, name)


def check_head_options(head: str, head_class, options: dict[str, Any]) -> None:
    """An unknown key of ``--head-option`` / ``[train] head_options`` is one line listing the valid
    keys, before any data is read (a bad value is refused by the head when it is built)."""
    valid = head_class.option_names()
    for key in options:
        if key not in valid and key not in RETIRED_OPTIONS:
            raise InputError(f"--head-option {key}={options[key]!r}: head {head} has no option {key!r} (valid keys: "
                             f"{', '.join(valid) or 'none'}; set with --head-option or [train] head_options)")


def prepare(inputs: TrainInputs, config, *, device, dist, progress: ProgressHook) -> Prepared:
    """Check the inputs and build datasets and model (seeded by ``config.seed``); ``config`` is
    already resolved for the data's modality (``TrainConfig.for_modality``)."""
    name = resolve_head(config.head, data_modality(inputs), None if inputs.end_to_end else inputs.features)
    multi = HEADS[name].head_class.multi_scale
    declared = read_label_set(inputs.labels) if inputs.labels is not None else None
    if inputs.end_to_end:
        data = prepare_images(inputs, config, multi_scale=multi, device=device, progress=progress,
                              labels=declared.labels if declared is not None else None)
    else:
        data = prepare_features(inputs.features, inputs.val_features, config, multi_scale=multi, dist=dist,
                                progress=progress, labels=declared)
    return _with_model(data, name, inputs, config)


def _with_model(data: TrainingData, name: str, inputs: TrainInputs, config) -> Prepared:
    names, source = data.label_names, data.source
    head_class = HEADS[name].head_class
    needs_e = head_class.reads_embeddings(dict(config.head_options or {}))
    needs_a = head_class.needs_adjacency
    emb_vectors = emb_info = adj = graph_info = None
    if needs_e:
        emb_vectors, emb_info = _embeddings(inputs.embeddings, names, source, config.head)
    if needs_a or inputs.graph is not None:
        adj, graph_info = _adjacency(inputs.graph, names, source, config)
    seed_everything(config.seed)  # the head's initial weights depend on the seed alone
    try:
        head = build_head(name, in_channels=data.in_channels, num_labels=len(names),
                          embeddings=torch.from_numpy(emb_vectors) if emb_vectors is not None else None,
                          adjacency=torch.from_numpy(adj) if (adj is not None and needs_a) else None,
                          **dict(config.head_options or {}))
    except (InputError, TypeError, ValueError) as exc:  # a value the head refuses: name where options are set
        if not config.head_options:
            raise
        if not isinstance(exc, InputError):  # a value of the wrong type (float("abc"))
            exc = f"head {config.head}: a value of the wrong type in {config.head_options} ({exc})"
        raise InputError(f"--head-option: {exc}") from None
    return Prepared(model=Classifier(head, data.backbone), data=data, head_name=name, embeddings_info=emb_info,
                    graph_info=graph_info)


def _embeddings(path: Path | None, names: list[str], source: Path, head: str):
    fix = f"make them with `{maker('embeddings')}` and pass --embeddings"
    if path is None:
        raise MlgraphError(f"head {head} needs label embeddings and none were given ({fix})")
    p = Path(path)
    if not p.is_file():
        raise input_error(p, f"no such file (head {head} needs label embeddings)",
                          f"make them with `{maker('embeddings')}`")
    emb = read_embeddings(p)
    check_same_label_set(emb.labels, names, p, source,
                    f"make the embeddings from this dataset's graph: `{maker('graph')} ANNOTATIONS` "
                    f"then `{maker('embeddings')}`")
    emb = emb.aligned_to(names, source=p)
    info = {"path": os.fspath(p.resolve()), "method": emb.attrs.get("method"), "dimension": emb.dimension,
            "file_digest": file_digest(p), "labels_digest": labels_digest(emb.labels)}
    return np.ascontiguousarray(emb.vectors, dtype=np.float32), info


def _adjacency(path: Path | None, names: list[str], source: Path, config):
    if path is None:
        raise MlgraphError(f"head {config.head} needs the label graph and none was given "
                           f"(make one with `{maker('graph')} ANNOTATIONS` and pass --graph)")
    p = Path(path)
    graph = read_graph(p)
    check_same_label_set(graph.labels, names, p, source,
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


def check_same_data(run: Path, saved, prepared: Prepared) -> None:
    """A resumed run must see the data it started on: the same labels, number of images and map
    shape, and (``features_digest``, the rows' checksums) the same rows, not a file made again."""
    old, new = saved.data, prepared.data.data_info
    where = new.get("features") or new.get("annotations") or run
    for key in ("labels_digest", "num_images", "feature_shape", "features_digest"):
        if key in old and old.get(key) != new.get(key):
            what = ("its rows are not those the run trained on (the file was made again)" if key == "features_digest"
                    else f"{key} {old.get(key)!r} -> {new.get(key)!r}")
            raise MismatchError(f"{where}: changed since {run} started ({what}) (resume with the original file, or "
                                f"start a new run with `{maker('run')}`)")
