"""``config.json`` of a run directory, typed: :class:`RunConfig` alone reads and writes it.

What a run needs to be rebuilt and used (docs/train.md, "The run folder"): the head's config, the
label names in the order of the head's outputs, the threshold (and the per-label thresholds tuned
on the validation split, core/evaluation/thresholds.py), the modality ("image" or
"video", from the training features file's schema), the backbone (for images), and where the data,
embeddings and graph came from. Reading validates every value a consumer relies on, so a
hand-edited file ends in one line naming the key, not in a traceback later.

Weights are bound to their config: :meth:`RunConfig.digest` (labels, head config and the run's
id) is stored in the metadata of ``best`` / ``last.safetensors`` and checked when a run is
loaded, so reordered label names or another run's weights are refused instead of predicting with
the wrong names.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlgraph_cli.core.features.config import MAX_IMAGE_SIZE
from mlgraph_cli.core.io.artifacts import check_schema, maker
from mlgraph_cli.core.io.jsonfile import read_json
from mlgraph_cli.core.io.outputs import write_json
from mlgraph_cli.errors import MismatchError, MlgraphError, input_error

CONFIG = "config.json"
SCHEMA = "mlgraph/run@1"
MODALITIES = ("image", "video")
INPUT_KINDS = ("features", "images")
DIGEST_KEY = "config_digest"


@dataclass
class RunConfig:
    """The contents of ``RUN/config.json``."""

    labels: list[str]
    head: dict[str, Any]
    modality: str = "image"
    threshold: float = 0.5
    thresholds: list[float] | None = None  # one per label (label order), best F1 on validation; None: not tuned
    input: str = "features"
    backbone: dict[str, Any] = field(default_factory=dict)
    backbone_weights: str | None = None
    backbone_trained: bool = False
    data: dict[str, Any] = field(default_factory=dict)
    embeddings: dict[str, Any] | None = None
    graph: dict[str, Any] | None = None
    probe: dict[str, Any] | None = None
    weights: dict[str, str] = field(default_factory=lambda: {"best": "best.safetensors", "last": "last.safetensors"})
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    provenance: dict[str, Any] = field(default_factory=dict)
    schema: str = SCHEMA

    def digest(self) -> str:
        """sha256 of the label names (in order), the head config and the run id: what weights belong to."""
        text = json.dumps({"labels": self.labels, "head": self.head, "run_id": self.run_id}, sort_keys=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def to_json(self) -> dict[str, Any]:
        doc = dataclasses.asdict(self)
        if doc["probe"] is None:
            del doc["probe"]
        return doc

    def write(self, run_dir: str | os.PathLike) -> Path:
        path = Path(run_dir) / CONFIG
        write_json(path, self.to_json())
        return path

    @classmethod
    def read(cls, run_dir: str | os.PathLike) -> "RunConfig":
        """Read and check ``RUN/config.json``; a folder without one is not a run."""
        run = Path(run_dir)
        fix = f"make a run with `{maker('run')}`"
        if not run.exists():
            raise input_error(run, "no such run directory", fix)
        if not run.is_dir():
            raise input_error(run, "not a run directory (expected a folder with config.json)", fix)
        path = run / CONFIG
        if not path.is_file():
            raise input_error(run, "no config.json in this folder, so it is not a finished or started training run",
                              fix)
        data = read_json(path, fix=fix)
        check_schema(path, data.get("schema") if isinstance(data, dict) else None, "run")
        return cls.from_json(data, path)

    @classmethod
    def from_json(cls, data: dict[str, Any], path: Path) -> "RunConfig":
        """Validate a parsed config.json; any bad value is one line naming ``path`` and the key."""
        def bad(key: str, what: str) -> MlgraphError:
            return MlgraphError(f"{path}: \"{key}\" {what} (re-train with `{maker('run')}`, or restore the run's "
                                f"own config.json)")

        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        labels = values.get("labels")
        if not isinstance(labels, list) or not labels or not all(isinstance(n, str) and n for n in labels):
            raise bad("labels", "must be a non-empty list of label names")
        if len(set(labels)) != len(labels):
            raise bad("labels", "repeats a label name")
        head = values.get("head")
        if not isinstance(head, dict) or not isinstance(head.get("name"), str):
            raise bad("head", "must be the head's config with its \"name\"")
        _check_head(head, len(labels), bad)
        values["modality"] = values.get("modality") or "image"  # runs from before video support
        if values["modality"] not in MODALITIES:
            raise bad("modality", f"must be one of {', '.join(MODALITIES)}, not {values['modality']!r}")
        threshold = values.get("threshold", 0.5)
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 < threshold < 1.0:
            raise bad("threshold", f"must be a probability between 0 and 1, not {threshold!r}")
        values["threshold"] = float(threshold)
        values["thresholds"] = _thresholds(values.get("thresholds"), len(labels), bad)
        if values.get("input", "features") not in INPUT_KINDS:
            raise bad("input", f"must be one of {', '.join(INPUT_KINDS)}, not {values.get('input')!r}")
        for key in ("backbone", "data", "weights", "provenance"):
            if values.get(key) is None:
                values.pop(key, None)
            elif not isinstance(values[key], dict):
                raise bad(key, "must be an object")
        for key in ("embeddings", "graph", "probe"):
            if values.get(key) is not None and not isinstance(values[key], dict):
                raise bad(key, "must be an object or null")
        if not isinstance(values.get("backbone_trained", False), bool):
            raise bad("backbone_trained", "must be true or false")
        _check_backbone(values.get("backbone") or {}, values.get("backbone_weights"), values.get("data") or {}, bad)
        if not isinstance(values.get("run_id", ""), str):
            raise bad("run_id", "must be text")
        values.setdefault("run_id", "")  # runs from before the digest: their weights carry none either
        return cls(**values)

    def label_thresholds(self, run_dir: str | os.PathLike) -> list[float]:
        """The tuned per-label thresholds (label order); a run without them is one line saying why."""
        return tuned_thresholds(self.thresholds, run_dir)

    def data_split(self, path: str | os.PathLike) -> str | None:
        """Which of this run's own data ``path`` is: ``"validation"`` (the file that chose the best
        epoch and the tuned thresholds), ``"training"`` (the training file or annotations; with an
        automatic split it holds the validation rows too), or None (data the run never saw)."""
        val = self.data.get("val") if isinstance(self.data.get("val"), dict) else {}
        if val.get("source") == "file" and _same_file(path, val.get("path")):
            return "validation"
        if any(_same_file(path, self.data.get(key)) for key in ("features", "annotations")):
            return "training"
        return None

    def split_report(self, path: str | os.PathLike) -> dict[str, Any]:
        """What evaluating on ``path`` means: ``{"name", "optimistic", "note"}``; the run's own
        validation or training data gives optimistic figures (:meth:`data_split`)."""
        name = self.data_split(path)
        note = {"validation": "the validation split chose the best epoch and the tuned thresholds, so these figures "
                              "are optimistic; score a held-out test set for a fair figure",
                "training": "the run's training data (with an automatic split, its validation rows too): these "
                            "figures are optimistic"}.get(name or "")
        return {"name": name or "held-out", "optimistic": note is not None, "note": note}

    def check_weights(self, path: Path, metadata: dict[str, str]) -> None:
        """Refuse weights whose stored digest is not this config's (reordered labels, another run)."""
        stored = metadata.get(DIGEST_KEY)
        if stored is None and self.run_id:  # weights re-saved by a tool that drops metadata: not tied to this config
            raise MismatchError(f"{path}: these weights carry no {DIGEST_KEY}, so nothing ties them to "
                                f"{path.parent / CONFIG} (its labels and their order) (use the run's own files, or "
                                f"re-train with `{maker('run')}`)")
        if stored is not None and stored != self.digest():
            raise MismatchError(f"{path}: these weights belong to another config than {path.parent / CONFIG} (its "
                                f"labels, their order or its head differ, or the weights come from another run) "
                                f"(use the run's own files, or re-train with `{maker('run')}`)")


# Sizes a saved head or backbone may claim: beyond any real model, within what fits in memory.
MAX_WIDTH = 65536  # channels, embedding width, hidden units
MAX_COUNT = 1 << 20  # labels, layers, any other whole number of a head's options


def _check_head(head: dict[str, Any], labels: int, bad) -> None:
    """The head config's numbers are finite and of sizes a model can have; ``num_labels`` is C."""
    for key, value in head.items():
        values = value if isinstance(value, list) else [value]
        limit = MAX_WIDTH if key in ("in_channels", "embedding_dim", "hidden") else MAX_COUNT
        for v in values:
            if isinstance(v, bool) or v is None or isinstance(v, str):
                continue
            if not isinstance(v, (int, float)) or not math.isfinite(v) or abs(v) > limit:
                raise bad(f"head.{key}", f"must be a finite number of at most {limit}, not {v!r}")
    channels = head.get("in_channels", 1)
    for c in channels if isinstance(channels, list) else [channels]:
        if isinstance(c, bool) or not isinstance(c, int) or c < 1:
            raise bad("head.in_channels", f"must be a whole number of channels >= 1 (a list for ms-cma), not {c!r}")
    if "num_labels" in head and head["num_labels"] != labels:
        raise bad("head.num_labels", f"is {head['num_labels']!r} for {labels} label names")


def _check_backbone(backbone: dict[str, Any], weights_file: Any, data: dict[str, Any], bad) -> None:
    """What predict and export rebuild the backbone and the preprocessing from."""
    if weights_file is not None and (not isinstance(weights_file, str) or Path(weights_file).name != weights_file
                                     or weights_file in ("", ".", "..")):
        raise bad("backbone_weights", "must be the name of a file in the run folder, or null")
    frames = data.get("frames")
    if frames is not None and (isinstance(frames, bool) or not isinstance(frames, int) or not 1 <= frames <= MAX_COUNT):
        raise bad("data.frames", f"must be a whole number of frames >= 1, not {frames!r}")
    if not backbone:
        return
    for key in ("name", "weights"):
        if not isinstance(backbone.get(key), str):
            raise bad(f"backbone.{key}", "must be text")
    if not _whole(backbone.get("image_size"), 1, MAX_IMAGE_SIZE):
        raise bad("backbone.image_size", f"must be a whole number of px from 1 to {MAX_IMAGE_SIZE}")
    if not _whole(backbone.get("init_seed", 0), 0, 2**63 - 1):
        raise bad("backbone.init_seed", "must be a whole number >= 0")
    layers = backbone.get("layers", [])
    if not isinstance(layers, list) or not all(isinstance(x, str) for x in layers) or len(layers) > 2:
        raise bad("backbone.layers", "must be a list of at most two layer names")
    for key in ("outputs", "out_shapes", "preprocessing"):
        if backbone.get(key) is not None and not isinstance(backbone[key], dict):
            raise bad(f"backbone.{key}", "must be an object")
    for name, shape in (backbone.get("out_shapes") or {}).items():
        if not isinstance(shape, list) or len(shape) != 3 or not all(_whole(d, 1, MAX_COUNT) for d in shape):
            raise bad(f"backbone.out_shapes.{name}", "must be [D, H, W], whole numbers >= 1")
    pre = backbone.get("preprocessing") or {}
    if pre:
        if not _whole(pre.get("size"), 1, MAX_IMAGE_SIZE):
            raise bad("backbone.preprocessing.size", f"must be a whole number of px from 1 to {MAX_IMAGE_SIZE}")
        for key, low in (("mean", -math.inf), ("std", 0.0)):
            v = pre.get(key)
            if not isinstance(v, list) or len(v) != 3 or not all(_number(x) and x > low for x in v):
                what = "positive numbers (a std of 0 divides by zero)" if key == "std" else "finite numbers"
                raise bad(f"backbone.preprocessing.{key}", f"must be 3 {what}, not {v!r}")
        if "scale" in pre and not (_number(pre["scale"]) and pre["scale"] > 0):
            raise bad("backbone.preprocessing.scale", "must be a positive number")


def _whole(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _thresholds(value: Any, count: int, bad) -> list[float] | None:
    """``thresholds``: null, or one probability in (0, 1) per label."""
    if value is None:
        return None
    ok = isinstance(value, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    if not ok or len(value) != count:
        raise bad("thresholds", f"must be null or a list of {count} numbers, one per label")
    outside = [v for v in value if not 0.0 < v < 1.0]
    if outside:
        raise bad("thresholds", f"must be probabilities between 0 and 1, not {outside[0]!r}")
    return [float(v) for v in value]


def _same_file(path: str | os.PathLike, other: Any) -> bool:
    if not isinstance(other, str) or not other:
        return False
    try:
        return os.path.samefile(path, other)
    except OSError:  # moved or deleted since training: compare the names
        return os.path.abspath(path) == os.path.abspath(other)


def tuned_thresholds(thresholds: list[float] | None, run_dir: str | os.PathLike) -> list[float]:
    """``thresholds`` (a run's tuned per-label thresholds, label order), or the one-line error for a
    run that has none (``--threshold tuned`` in evaluate and predict)."""
    if thresholds is None:
        raise MlgraphError(f"{Path(run_dir) / CONFIG}: no tuned thresholds (the run had no validation split, or "
                           f"was trained before they existed) (re-train with a validation split, e.g. `mlgraph "
                           f"train --val-features F.h5`, or pass --threshold 0.5)")
    return [float(t) for t in thresholds]
