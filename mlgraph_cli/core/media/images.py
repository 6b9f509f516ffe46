"""Finding and decoding images, without ever crashing on a bad file.

``list_images`` turns what a user typed (files, folders, globs, ``.txt`` lists) into a sorted,
de-duplicated list of paths. ``load_image`` returns an RGB PIL image with its EXIF orientation
applied, or a :class:`SkippedImage` saying why the file cannot be used (corrupt, truncated, not an
image, or a decompression bomb). Callers record the skipped ones instead of stopping a long run.
"""

from __future__ import annotations

import glob
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image, ImageOps

from mlgraph_cli.core.io.inputs import special_file
from mlgraph_cli.errors import input_error

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"})
LIST_SUFFIXES = frozenset({".txt", ".lst"})
_GLOB_CHARS = frozenset("*?[")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
URL_FIX = "download the images first, then pass the files or their folder"


@dataclass(frozen=True)
class SkippedImage:
    """An input that could not be used, and why (one short phrase)."""

    path: str
    reason: str

    def line(self) -> str:
        """``path<TAB>reason``: the form stored in a features file's ``skipped`` dataset."""
        return f"{self.path}\t{self.reason}"


def is_image_path(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def list_images(inputs: str | os.PathLike | Iterable[str | os.PathLike],
                suffixes: frozenset[str] = IMAGE_SUFFIXES) -> list[Path]:
    """Expand files, folders (recursive), globs and list files into image paths.

    - a folder: every file below it with an image suffix, hidden files and folders left out,
      sorted by path relative to the folder;
    - a glob (``photos/*.jpg``, ``**`` allowed): its matching files, sorted;
    - a ``.txt`` / ``.lst`` file: one path per line (blank lines and ``#`` comments ignored),
      relative paths taken from the list file's folder;
    - any other file: itself (a non-image is skipped later by :func:`load_image`, with a reason).

    ``suffixes``: what a folder is searched for (video files: core/media/videos.py's VIDEO_SUFFIXES).
    Order is the order of ``inputs``; a path named twice (``a.jpg``, ``./a.jpg``) is kept once. A
    missing path is an :class:`InputError`; an input that yields no images is not (the caller
    decides). A FIFO or a device among the inputs is listed and then skipped by :func:`load_image`
    with its reason (``is a named pipe (FIFO), not a regular file``), never opened.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    out: list[Path] = []
    seen: set[str] = set()
    for item in inputs:
        for path in _expand(item, suffixes):
            key = os.path.normpath(os.fspath(path))
            if key not in seen:
                seen.add(key)
                out.append(path)
    return out


def _expand(item: str | os.PathLike, suffixes: frozenset[str] = IMAGE_SUFFIXES) -> list[Path]:
    text = os.fspath(item)
    if is_url(text):  # checked on the text: Path() would fold "//" and report a missing file
        raise input_error(text, "URLs are not supported", URL_FIX)
    path = Path(text)
    if path.is_dir():
        return _walk(path, suffixes)
    if path.is_file():
        if path.suffix.lower() in LIST_SUFFIXES:
            return _read_list(path)
        return [path]
    if os.path.exists(path):  # a FIFO or a device named on its own: listed, and skipped with its reason
        if path.suffix.lower() in LIST_SUFFIXES:
            raise input_error(path, special_file(path) or "cannot be read", "pass a .txt file of image paths")
        return [path]
    if any(c in text for c in _GLOB_CHARS):
        return [Path(p) for p in sorted(glob.glob(text, recursive=True)) if os.path.isfile(p)]
    raise input_error(path, "no such file or folder", "pass an image file, a folder, a glob or a .txt list")


def _walk(folder: Path, suffixes: frozenset[str] = IMAGE_SUFFIXES) -> list[Path]:
    found: list[Path] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found.extend(Path(root) / f for f in files if not f.startswith(".") and Path(f).suffix.lower() in suffixes)
    # Sort on the relative POSIX path so the order does not depend on the file system.
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def is_url(text: str) -> bool:
    return bool(_URL.match(text))


def _read_list(list_file: Path) -> list[Path]:
    """The paths of a list file; a file whose lines are mostly not image paths is an error (it is
    more likely a label file or notes given by mistake than a list of unusual files)."""
    out: list[Path] = []
    base = list_file.parent
    odd: list[tuple[int, str]] = []
    for number, raw in enumerate(list_file.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if is_url(line):
            raise input_error(list_file, f"{line} is a URL, and URLs are not supported", URL_FIX, line=number)
        p = Path(line)
        p = p if p.is_absolute() else base / p
        if not is_image_path(p) and not p.is_file():
            odd.append((number, line))
        out.append(p)
    if out and len(odd) * 2 > len(out):
        number, line = odd[0]
        raise input_error(list_file, f"does not look like a list of image paths: {len(odd):,} of {len(out):,} lines "
                                     f"name neither an image file nor an existing file (line {number}: {line[:60]!r})",
                          "a .txt input is read as one image path per line; pass the images or their folder instead")
    return out


def load_image(path: str | os.PathLike, *, max_pixels: int | None = None):
    """Decode ``path`` into an RGB ``PIL.Image.Image`` (EXIF orientation applied).

    Returns a :class:`SkippedImage` instead of raising when the file is missing, not an image,
    corrupt or truncated, or larger than ``max_pixels`` (default: PIL's ``Image.MAX_IMAGE_PIXELS``,
    about 89 megapixels) -- the decompression-bomb guard, applied before any pixel is decoded.
    """
    name = os.fspath(path)
    limit = max_pixels if max_pixels is not None else Image.MAX_IMAGE_PIXELS
    special = special_file(name)  # checked before opening: a FIFO would block the read forever
    if special is not None:
        return SkippedImage(name, special)
    try:
        with warnings.catch_warnings():
            # PIL only warns between 1x and 2x its limit; a warning here is a refusal too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(name) as im:
                w, h = im.size  # read from the header; nothing decoded yet
                if limit and w * h > limit:
                    return SkippedImage(name, f"refused: {w}x{h} pixels exceeds the decompression-bomb limit of {limit}")
                im.load()  # full decode now, so truncation shows up here and not in a worker later
                try:
                    im = ImageOps.exif_transpose(im)
                except Exception:  # noqa: BLE001 -- a broken EXIF block leaves good pixels: keep them unrotated
                    pass
                return to_8bit(im).convert("RGB")
    except FileNotFoundError:
        return SkippedImage(name, "file not found")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        return SkippedImage(name, f"refused as a decompression bomb: {_first_line(exc)}")
    except Image.UnidentifiedImageError:
        return SkippedImage(name, "not an image (or a format PIL cannot read)")
    except OSError as exc:
        if exc.errno is None:  # PIL's own decoder errors carry no errno: a damaged file
            return SkippedImage(name, f"corrupt or truncated (OSError: {_first_line(exc)})")
        return SkippedImage(name, f"cannot be opened: {exc.strerror or os.strerror(exc.errno)}")
    except Exception as exc:  # noqa: BLE001 -- any decoder failure on an untrusted file is a skip, not a crash
        return SkippedImage(name, f"corrupt or truncated ({type(exc).__name__}: {_first_line(exc)})")


def to_8bit(im):
    """Scale 16-bit, 32-bit integer and float single-channel images to 8-bit ``L``.

    PIL's ``convert("RGB")`` clips these modes instead of scaling them: a 16-bit PNG becomes almost
    all white and a float TIFF of values in 0-1 almost all black. Integers that fit 0-255 are kept,
    16-bit ranges are divided by 257 (65535 -> 255), floats in 0-1 are multiplied by 255, and any
    other range is stretched from its minimum to its maximum. Other modes pass through.
    """
    if not (im.mode.startswith("I;16") or im.mode in ("I", "F")):
        return im
    a = np.asarray(im).astype(np.float64)
    a[~np.isfinite(a)] = 0
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    if im.mode.startswith("I;16") or (im.mode == "I" and lo >= 0 and 255 < hi <= 65535):
        a = a / 257.0
    elif im.mode == "F" and lo >= 0 and hi <= 1:
        a = a * 255.0
    elif lo < 0 or hi > 255:
        a = (a - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(a)
    return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "L")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def real_path(path: str | os.PathLike) -> Path:
    """``path`` with symlinks and ``..`` resolved; a symlink loop is left as far as it resolves
    instead of raising (``Path.resolve`` raises RuntimeError on a loop before Python 3.13), so the
    loop is reported as an unreadable image rather than a crash."""
    return Path(os.path.realpath(path))


def relative_names(paths: Sequence[Path], root: Path) -> list[str]:
    """Paths as POSIX strings relative to ``root`` (absolute when a path lies outside it)."""
    out = []
    for p in paths:
        try:
            out.append(real_path(p).relative_to(real_path(root)).as_posix())
        except ValueError:
            out.append(real_path(p).as_posix())
    return out


def common_root(paths: Sequence[Path]) -> Path:
    """The deepest folder that holds every path (the folder of a single file)."""
    if not paths:
        return Path(".")
    parents = [os.fspath(real_path(p).parent) for p in paths]
    return Path(os.path.commonpath(parents))
