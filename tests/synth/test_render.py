"""One photo (synth/render.py): decodable JPEGs of the recorded size and mode, a mix of colour and
grayscale, and a true fluke box that is tight on the rendered fluke and inside the image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from synth import render


def _csv(root: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(root / name)


def test_images_decode_with_recorded_size_and_mode(data):
    meta = _csv(data, "images.csv").set_index("Image")
    assert len(meta) == len(_csv(data, "boxes.csv"))
    for name, row in meta.iterrows():
        with Image.open(data / row.split / name) as im:
            assert im.format == "JPEG"
            assert im.size == (row.width, row.height)
            assert im.mode == row["mode"]
    originals = meta[meta.source == "photo"]
    assert originals.width.between(600, 1050).all()
    assert (originals.height / originals.width).between(0.59, 0.76).all()
    assert originals.quality.between(60, 95).all()
    # a real mix of colour, single-channel grayscale and RGB-with-equal-channels grayscale
    assert 0.25 <= meta.gray.mean() <= 0.75
    assert (meta["mode"] == "L").any() and ((meta["mode"] == "RGB") & (meta.gray == 1)).any()
    name = meta[(meta["mode"] == "RGB") & (meta.gray == 1)].index[0]
    a = np.asarray(Image.open(data / meta.loc[name, "split"] / name), dtype=np.int16)
    assert np.abs(a[..., 0] - a[..., 1]).max() <= 6 and np.abs(a[..., 1] - a[..., 2]).max() <= 6
    name = meta[meta.gray == 0].index[0]
    a = np.asarray(Image.open(data / meta.loc[name, "split"] / name), dtype=np.int16)
    assert np.abs(a[..., 0] - a[..., 2]).mean() > 5  # colour photos are not gray


def test_boxes_cover_every_image_and_lie_inside(data):
    boxes = _csv(data, "boxes.csv")
    meta = _csv(data, "images.csv").set_index("Image")
    assert boxes.Image.is_unique and set(boxes.Image) == set(meta.index)
    w, h = meta.loc[boxes.Image, "width"].to_numpy(), meta.loc[boxes.Image, "height"].to_numpy()
    assert (boxes.x0 >= 0).all() and (boxes.y0 >= 0).all()
    assert (boxes.x1 <= w).all() and (boxes.y1 <= h).all()
    assert (boxes.x1 > boxes.x0).all() and (boxes.y1 > boxes.y0).all()
    frac = ((boxes.x1 - boxes.x0) / w).to_numpy()
    assert frac.min() >= 0.05 and frac.max() <= 1.0 and 0.3 <= np.median(frac) <= 0.8


def test_boxes_are_tight_on_the_fluke():
    # the box is where the rendered fluke differs from the background; check it against the renderer
    for idx in range(3):
        im, box, _q, _g = render.render_photo(11, idx, 1000 + idx)
        a = np.asarray(im.convert("L"), dtype=np.float32)
        x0, y0, x1, y1 = box
        inner = a[y0:y1, x0:x1]
        assert inner.std() > 10  # fluke pattern inside
        assert 0 <= x0 < x1 <= im.size[0] and 0 <= y0 < y1 <= im.size[1]
