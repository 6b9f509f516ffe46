"""Fashion-MNIST photographs: idx files, the Debian package, and the subset bundled with mlgraph.

Fashion-MNIST (Xiao, Rasul & Vollgraf 2017, arXiv:1708.07747; MIT licence, Zalando SE) holds
70,000 grayscale 28 x 28 product photographs in ten classes on a black background, in the idx
format of LeCun's MNIST: a 4-byte magic (two zero bytes, a type code, the number of
dimensions), one big-endian uint32 per dimension, then the values in C order.

Three sources give the same :class:`FashionSource`: a folder of the four idx files (gzipped or
not), ``debian`` (the files of the ``dataset-fashion-mnist`` package, found through ``dpkg -L``),
and an ``.npz`` made by :func:`build_subset` (the default: ``mlgraph_cli/data``, so nothing needs
to be installed).
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlgraph_cli.core.io.outputs import write_output
from mlgraph_cli.errors import MlgraphError, input_error

# Fashion-MNIST's class index -> our label name (readable, spaces where natural, so word
# vectors find them: "ankle boot" rather than "Ankle boot" or "ankle_boot").
LABELS: tuple[str, ...] = (
    "t-shirt", "trouser", "pullover", "dress", "coat",
    "sandal", "shirt", "sneaker", "bag", "ankle boot",
)

# The four files of a Fashion-MNIST release; "t10k" is its 10,000-image test part.
IDX_FILES = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("t10k", "images"): "t10k-images-idx3-ubyte",
    ("t10k", "labels"): "t10k-labels-idx1-ubyte",
}
PARTS = ("train", "t10k")

DEBIAN_PACKAGE = "dataset-fashion-mnist"
BUNDLED = Path(__file__).resolve().parent.parent.parent / "data" / "fashion-mnist-subset.npz"
BUNDLED_LICENSE = BUNDLED.with_name("fashion-mnist-LICENSE.txt")

# idx type code -> numpy dtype (big-endian, as the format stores it)
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_SOURCE_FIX = (f"reinstall it with `apt-get install --reinstall {DEBIAN_PACKAGE}`, or leave out --source "
               "to use the bundled subset")


@dataclass
class FashionSource:
    """Fashion-MNIST photographs and where they came from.

    ``images``: N x 28 x 28 uint8 (0 = black background); ``labels``: N class indices into
    :data:`LABELS`; ``part``: N values, 0 for the release's train part and 1 for its t10k part, so
    scene splits can keep test photographs out of training scenes; ``origin``: N indices into
    that part of the release (provenance); ``description``: a line for summaries and docs.
    """

    images: np.ndarray
    labels: np.ndarray
    part: np.ndarray
    origin: np.ndarray
    description: str


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an idx file (gzipped or plain, detected from its first bytes) into a numpy array.

    Integer types come back in native byte order with the idx type's width (uint8 for images and
    labels). A missing, truncated or malformed file raises a one-line :class:`InputError`.
    """
    p = Path(path)
    if not p.is_file():
        raise input_error(p, "no such file", _SOURCE_FIX)
    raw = p.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise input_error(p, f"corrupt gzip data ({exc})", _SOURCE_FIX) from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES or raw[3] == 0:
        raise input_error(p, f"not an idx file (magic bytes {raw[:4].hex() or 'missing'})", _SOURCE_FIX)
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise input_error(p, f"truncated idx header ({len(raw)} bytes for {ndim} dimensions)", _SOURCE_FIX)
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise input_error(p, f"idx size mismatch: shape {shape} needs {expected} bytes, found {len(raw)}", _SOURCE_FIX)
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike, array: np.ndarray, *, compress: bool = False) -> None:
    """Write ``array`` as an idx file (gzipped when ``compress``); the inverse of :func:`read_idx`."""
    codes = {np.dtype(v).newbyteorder("="): k for k, v in _IDX_DTYPES.items()}
    arr = np.ascontiguousarray(array)
    code = codes[arr.dtype.newbyteorder("=")]
    body = bytes([0, 0, code, arr.ndim]) + np.asarray(arr.shape, dtype=">u4").tobytes()
    body += arr.astype(_IDX_DTYPES[code]).tobytes()
    with write_output(path) as tmp:
        tmp.write_bytes(gzip.compress(body, mtime=0) if compress else body)


def _find_idx(folder: Path, part: str, what: str) -> Path:
    name = IDX_FILES[(part, what)]
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise input_error(folder / name, "no such file (nor .gz)",
                      "pass --source a folder holding the four Fashion-MNIST idx files, or `--source debian`")


def debian_folder() -> Path:
    """The folder where the ``dataset-fashion-mnist`` Debian package put its idx files."""
    fix = f"run `apt-get install {DEBIAN_PACKAGE}`, or leave out --source to use the bundled subset"
    if shutil.which("dpkg") is None:
        raise MlgraphError(f"--source debian: dpkg not found, so the {DEBIAN_PACKAGE} package cannot be located "
                           "(pass --source a folder of Fashion-MNIST idx files instead)")
    done = subprocess.run(["dpkg", "-L", DEBIAN_PACKAGE], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise MlgraphError(f"--source debian: the {DEBIAN_PACKAGE} package is not installed ({fix})")
    wanted = IDX_FILES[("train", "images")]
    for line in done.stdout.splitlines():
        if Path(line).name in (wanted, f"{wanted}.gz"):
            return Path(line).parent
    raise MlgraphError(f"--source debian: {DEBIAN_PACKAGE} lists no {wanted} file ({fix})")


def load_idx_folder(folder: str | os.PathLike) -> FashionSource:
    """All of Fashion-MNIST (train then t10k) from a folder of the four idx files."""
    root = Path(folder)
    images, labels, part, origin = [], [], [], []
    for k, name in enumerate(PARTS):
        img_path, lab_path = _find_idx(root, name, "images"), _find_idx(root, name, "labels")
        imgs, labs = read_idx(img_path), read_idx(lab_path)
        if imgs.ndim != 3 or imgs.dtype != np.uint8:
            raise input_error(img_path, f"expected N x H x W uint8 images, found shape {imgs.shape} {imgs.dtype}",
                              _SOURCE_FIX)
        if labs.ndim != 1 or len(labs) != len(imgs):
            raise input_error(lab_path, f"expected {len(imgs)} labels to match {img_path.name}, "
                                        f"found shape {labs.shape}", _SOURCE_FIX)
        if labs.size and int(labs.max()) >= len(LABELS):
            raise input_error(lab_path, f"label {int(labs.max())} out of range 0-{len(LABELS) - 1}", _SOURCE_FIX)
        images.append(imgs)
        labels.append(labs.astype(np.uint8))
        part.append(np.full(len(labs), k, dtype=np.uint8))
        origin.append(np.arange(len(labs), dtype=np.int32))
    return FashionSource(np.concatenate(images), np.concatenate(labels), np.concatenate(part),
                         np.concatenate(origin), f"Fashion-MNIST idx files in {root}")


def load_subset(path: str | os.PathLike) -> FashionSource:
    """A subset written by :func:`build_subset` (``images``, ``labels``, ``part``, ``origin``)."""
    p = Path(path)
    if not p.is_file():
        raise input_error(p, "no such file", "rebuild it with mlgraph_cli.core.datasets.fashion_mnist.build_subset")
    try:
        with np.load(p, allow_pickle=False) as z:
            arrays = {k: z[k] for k in ("images", "labels", "part", "origin")}
    except (OSError, ValueError, KeyError, zlib.error, zipfile.BadZipFile) as exc:
        raise input_error(p, f"not a Fashion-MNIST subset .npz ({exc})",
                          "rebuild it with mlgraph_cli.core.datasets.fashion_mnist.build_subset") from None
    n = len(arrays["labels"])
    return FashionSource(**arrays, description=f"Fashion-MNIST subset {p.name} ({n} photographs)")


def load_source(source: str | os.PathLike | None) -> FashionSource:
    """``None``: the bundled subset; ``"debian"``: the Debian package; a folder of idx files; an .npz."""
    if source is None:
        return load_subset(BUNDLED)
    if os.fspath(source) == "debian":
        return load_idx_folder(debian_folder())
    p = Path(source)
    if p.is_dir():
        return load_idx_folder(p)
    if p.suffix == ".npz":
        return load_subset(p)
    raise input_error(p, "no such folder" if not p.exists() else "not a folder of idx files nor an .npz subset",
                      "pass --source debian, a folder of the four Fashion-MNIST idx files, or leave it out")


def build_subset(source_dir: str | os.PathLike, out_path: str | os.PathLike, per_class: int, seed: int,
                 *, t10k_fraction: float = 0.3) -> Path:
    """Write a small, compressed subset of Fashion-MNIST: ``per_class`` photographs per class.

    ``t10k_fraction`` of each class comes from the release's t10k part (the pool of validation and
    test scenes), the rest from its train part; which photographs is drawn with ``seed``. The
    file holds ``images`` (N x 28 x 28 uint8), ``labels``, ``part`` (0 train / 1 t10k) and
    ``origin`` (index in that part), grouped by class then part.
    """
    full = load_idx_folder(source_dir)
    rng = np.random.default_rng(seed)
    per_part = {1: round(per_class * t10k_fraction)}
    per_part[0] = per_class - per_part[1]
    chosen = []
    for cls in range(len(LABELS)):
        for part in (0, 1):
            pool = np.flatnonzero((full.labels == cls) & (full.part == part))
            # sorted so the file is stable for a given seed and does not leak the draw order
            chosen.append(np.sort(rng.choice(pool, size=per_part[part], replace=False)))
    idx = np.concatenate(chosen)
    out = Path(out_path)
    with write_output(out) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, images=full.images[idx], labels=full.labels[idx], part=full.part[idx],
                            origin=full.origin[idx])
    return out
