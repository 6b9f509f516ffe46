"""Explanation sheets: readable captions, uniform maps said out loud, labels under threshold marked,
and names that keep the source suffix, stay unique and never land on an input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from mlgraph_cli.core.inference.explain import (
    BELOW, CAPTION, caption_font, caption_text, explain_image, explain_names, is_uniform,
)


def _image(size=(64, 48)):
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))


def test_caption_has_a_space_and_says_under_threshold_and_uniform():
    assert caption_text("dress", 0.6, 0.5, False) == "dress 0.60"
    assert caption_text("dress", 0.3, 0.5, False) == "dress 0.30 < 0.50"
    assert caption_text("trouser", 0.93, 0.5, True) == "trouser 0.93 · uniform"


def test_caption_font_is_truetype_at_a_readable_size():
    from PIL import ImageFont

    font = caption_font()
    assert isinstance(font, ImageFont.FreeTypeFont) and font.size >= 14


def test_uniform_map_leaves_the_image_plain_and_others_are_coloured():
    image = _image()
    maps = np.stack([np.full((4, 4), 1 / 16, np.float32),  # attention spread evenly
                     np.arange(16, dtype=np.float32).reshape(4, 4)])
    sheet = np.asarray(explain_image(image, maps, [(0, "a", 0.9, 0.5), (1, "b", 0.2, 0.5)]))
    pw, ph = 256, 192
    assert sheet.shape == (ph + CAPTION, 2 * pw, 3)
    plain = np.asarray(image.convert("RGB").resize((pw, ph), Image.Resampling.BILINEAR))
    assert np.array_equal(sheet[:ph, :pw], plain)
    assert np.abs(sheet[:ph, pw:].astype(int) - plain.astype(int)).mean() > 10
    # the caption of the label under its threshold is grey, the other black
    strip_a, strip_b = sheet[ph:, :pw].reshape(-1, 3), sheet[ph:, pw:].reshape(-1, 3)
    assert (strip_a == 0).all(axis=1).any() and not (strip_b == 0).all(axis=1).any()
    assert (strip_b == BELOW).all(axis=1).any()


def test_is_uniform_is_relative_to_the_maps_scale():
    assert is_uniform(np.full((3, 3), 0.04)) and is_uniform(np.array([[1.0, 1.001]]))
    assert not is_uniform(np.array([[0.01, 0.02]])) and not is_uniform(np.array([[-3.0, 2.0]]))


def test_names_keep_the_suffix_are_unique_and_avoid_inputs(tmp_path):
    root = tmp_path / "in"
    paths = [root / "photo.jpg", root / "photo.png", root / "a" / "x.gif", root / "a__x.gif", root / "PHOTO.jpg"]
    names = [p.name for p in explain_names(paths, root, root, protected=[root / "photo.png.png"])]
    assert names == ["photo.jpg.png", "photo.png-2.png", "a__x.gif.png", "a__x.gif-2.png", "PHOTO.jpg-2.png"]
    assert all(Path(n).suffix == ".png" for n in names)


def test_a_long_name_is_cut_and_the_score_kept():
    from PIL import ImageDraw

    from mlgraph_cli.core.inference.explain import fit

    draw, font = ImageDraw.Draw(Image.new("RGB", (10, 10))), caption_font()
    name = fit(draw, "a-rather-long-label-name-for-testing-captions", " 0.31 < 0.50", font, 248)
    assert name.endswith("…") and len(name) < 40
    assert draw.textlength(name + " 0.31 < 0.50", font=font) <= 248
    assert fit(draw, "dress", " 0.60", font, 248) == "dress"
