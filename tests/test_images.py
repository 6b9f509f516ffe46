"""Image listing and decoding: folders, globs, lists, EXIF orientation, and files that must be skipped."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from mlgraph_cli.core.media.images import SkippedImage, list_images, load_image
from mlgraph_cli.errors import InputError


def png_header_only(path, width: int, height: int) -> None:
    """A PNG whose header claims ``width x height`` pixels but holds no pixel data (a cheap bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


def solid(path, size=(8, 6), color=(10, 20, 30), **save):
    Image.new("RGB", size, color).save(path, **save)
    return path


def test_list_images_folder_is_recursive_sorted_and_filtered(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / ".hidden").mkdir()
    for name in ["b/z.png", "a.JPG", "b/a.jpeg", "c.png", ".hidden/x.png", ".dot.png"]:
        solid(tmp_path / name, format="PNG")
    (tmp_path / "notes.txt").write_text("not an image")
    found = [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path)]
    assert found == ["a.JPG", "b/a.jpeg", "b/z.png", "c.png"]


def test_list_images_globs_lists_files_and_duplicates(tmp_path):
    for name in ["x1.png", "x2.png", "y.png"]:
        solid(tmp_path / name)
    lst = tmp_path / "list.txt"
    lst.write_text("# a comment\n\ny.png\n" + str(tmp_path / "x1.png") + "\n")
    got = list_images([str(tmp_path / "x*.png"), lst, tmp_path / "y.png"])
    assert [p.name for p in got] == ["x1.png", "x2.png", "y.png"]


def test_list_images_missing_path_is_one_line_error(tmp_path):
    with pytest.raises(InputError) as exc:
        list_images(tmp_path / "nope")
    assert str(exc.value) == f"{tmp_path / 'nope'}: no such file or folder (pass an image file, a folder, a glob or a .txt list)"


def test_load_image_gives_rgb(tmp_path):
    Image.new("L", (5, 4), 200).save(tmp_path / "g.png")
    im = load_image(tmp_path / "g.png")
    assert im.mode == "RGB" and im.size == (5, 4) and im.getpixel((0, 0)) == (200, 200, 200)


def test_exif_orientation_is_applied(tmp_path):
    # 40 x 20: left half red, right half blue; orientation 6 = "rotate 90 degrees clockwise to display".
    a = np.zeros((20, 40, 3), np.uint8)
    a[:, :20] = (255, 0, 0)
    a[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(a).save(tmp_path / "r.jpg", exif=exif, quality=95)
    im = load_image(tmp_path / "r.jpg")
    assert im.size == (20, 40)  # width and height swapped
    top, bottom = im.getpixel((10, 5)), im.getpixel((10, 35))
    assert top[0] > 200 and top[2] < 60  # the left (red) half is now on top
    assert bottom[2] > 200 and bottom[0] < 60


@pytest.mark.parametrize("content,reason", [
    (b"hello, not an image", "not an image (or a format PIL cannot read)"),
    (b"", "not an image (or a format PIL cannot read)"),
])
def test_non_images_are_skipped(tmp_path, content, reason):
    p = tmp_path / "x.jpg"
    p.write_bytes(content)
    assert load_image(p) == SkippedImage(str(p), reason)


def test_truncated_image_is_skipped(tmp_path):
    a = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)
    Image.fromarray(a).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    out = load_image(tmp_path / "cut.png")
    assert isinstance(out, SkippedImage) and out.reason.startswith("corrupt or truncated (")


def test_missing_file_is_skipped(tmp_path):
    assert load_image(tmp_path / "gone.png").reason == "file not found"


def test_decompression_bomb_is_refused(tmp_path):
    p = tmp_path / "bomb.png"
    png_header_only(p, 20000, 20000)  # 400 Mpx, over twice PIL's default limit
    out = load_image(p)
    assert isinstance(out, SkippedImage) and out.reason.startswith("refused")


def test_max_pixels_limit(tmp_path):
    solid(tmp_path / "s.png", size=(40, 30))
    out = load_image(tmp_path / "s.png", max_pixels=1000)
    assert out.reason == "refused: 40x30 pixels exceeds the decompression-bomb limit of 1000"
    assert load_image(tmp_path / "s.png", max_pixels=1200).size == (40, 30)


# ---------------------------------------------------------------------------------------------
# High bit depths are scaled, not clipped

def _ramp(dtype, top):
    return (np.linspace(0, 1, 64 * 64).reshape(64, 64) * top).astype(dtype)


@pytest.mark.parametrize("kind", ["png16", "tiff-float", "tiff-float-wide", "tiff-int32"])
def test_high_bit_depth_images_keep_their_contrast(tmp_path, kind):
    if kind == "png16":
        data, path = _ramp(np.uint16, 65535), tmp_path / "g16.png"
        Image.fromarray(data).save(path)
    elif kind == "tiff-float":
        data, path = _ramp(np.float32, 1.0), tmp_path / "f.tif"
        Image.fromarray(data).save(path)
    elif kind == "tiff-float-wide":
        data, path = _ramp(np.float32, 1000.0) - 500, tmp_path / "fw.tif"
        Image.fromarray(data).save(path)
    else:
        data, path = _ramp(np.int32, 65535), tmp_path / "i32.tif"
        Image.fromarray(data).save(path)
    with Image.open(path) as raw:
        assert raw.mode in ("I;16", "F", "I")
    rgb = np.asarray(load_image(path))
    assert rgb.shape == (64, 64, 3) and rgb.dtype == np.uint8
    # A ramp from black to white: its grey mean is about half, dark start, bright end.
    assert 120 <= rgb.mean() <= 135, rgb.mean()
    assert rgb[0, 0, 0] <= 1 and rgb[-1, -1, 0] >= 254


def test_eight_bit_values_in_a_wide_mode_are_kept(tmp_path):
    from mlgraph_cli.core.media.images import to_8bit

    data = np.full((8, 8), 100, np.int32)
    assert np.asarray(to_8bit(Image.fromarray(data))).max() == 100


# ---------------------------------------------------------------------------------------------
# Honest inputs: URLs and text files that are not lists

@pytest.mark.parametrize("url", ["http://example.com/cat.jpg", "https://example.com/photos/", "s3://bucket/x.png"])
def test_a_url_is_refused_as_a_url(url):
    with pytest.raises(InputError) as caught:
        list_images([url])
    assert str(caught.value) == f"{url}: URLs are not supported (download the images first, then pass the files or their folder)"


def test_a_url_inside_a_list_is_refused(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "a.jpg")
    (tmp_path / "list.txt").write_text("a.jpg\nhttps://example.com/b.jpg\n")
    with pytest.raises(InputError) as caught:
        list_images(tmp_path / "list.txt")
    assert str(caught.value) == (f"{tmp_path / 'list.txt'}:2: https://example.com/b.jpg is a URL, and URLs are not "
                                 "supported (download the images first, then pass the files or their folder)")


def test_a_text_file_that_is_not_a_list_of_paths(tmp_path):
    (tmp_path / "notes.txt").write_text("Holiday photos\nthe good ones are in the blue folder\n\na.jpg\n")
    with pytest.raises(InputError) as caught:
        list_images(tmp_path / "notes.txt")
    assert str(caught.value) == (
        f"{tmp_path / 'notes.txt'}: does not look like a list of image paths: 2 of 3 lines name neither an image "
        "file nor an existing file (line 1: 'Holiday photos') (a .txt input is read as one image path per line; "
        "pass the images or their folder instead)")


def test_a_list_of_image_paths_not_yet_there_is_still_a_list(tmp_path):
    (tmp_path / "list.txt").write_text("a.jpg\nsub/b.png\n# a comment\nc.tif\n")
    assert [p.name for p in list_images(tmp_path / "list.txt")] == ["a.jpg", "b.png", "c.tif"]
