"""fluke_tensors' plain code: crop windows, reduced-scale decoding against the naive path, the cached tensor
store."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from assets.crop import crops as ft
from assets.detect.truth import read_true_boxes
from assets.ingest.scan import scan_data_folder
from core.caches import ArrayCache


@pytest.fixture(scope="module")
def manifest(tiny_dataset) -> pd.DataFrame:
    return scan_data_folder(tiny_dataset, workers=2)[0]


@pytest.fixture(scope="module")
def true_boxes(manifest, tiny_dataset) -> pd.DataFrame:
    truth = read_true_boxes(tiny_dataset)
    return manifest[["image", "split"]].merge(truth, on="image").assign(confidence=1.0, fallback=False)


def test_crop_window_adds_margin_keeps_aspect_and_stays_inside():
    left, top, right, bottom = ft.crop_window((100, 100, 200, 150), (800, 600), margin=0.1, aspect=2.0)
    assert (right - left) / (bottom - top) == pytest.approx(2.0)
    assert left <= 90 and right >= 210 and top <= 95 and bottom >= 155
    # Near an edge the window shifts inside rather than leaving the photo.
    left, top, right, bottom = ft.crop_window((0, 0, 100, 50), (800, 600), margin=0.2, aspect=2.0)
    assert left == 0 and top == 0 and (right - left) / (bottom - top) == pytest.approx(2.0)
    # Larger than the photo: clipped to it.
    assert ft.crop_window((0, 0, 800, 600), (800, 600), margin=0.1, aspect=2.0) == (0.0, 0.0, 800.0, 600.0)
    # Without an aspect the box (plus margin) is taken as it is.
    assert ft.crop_window((100, 100, 200, 150), (800, 600), 0.0, None) == (100, 100, 200, 150)


def test_reduced_scale_decode_matches_the_naive_path(tmp_path):
    rng = np.random.default_rng(0)
    smooth = np.asarray(
        Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)).resize((1600, 1200))
    )
    path = tmp_path / "big.jpg"
    Image.fromarray(smooth).save(path, quality=95)
    spec = ft.CropSpec(str(path), (200.0, 300.0, 1400.0, 900.0), 128, 64, grayscale=True)
    fast, naive = ft.crop_and_resize(spec), ft.naive_crop_and_resize(spec)
    assert fast.shape == naive.shape == (1, 64, 128) and fast.dtype == np.uint8
    assert np.abs(fast.astype(int) - naive).mean() < 4
    colour = ft.crop_and_resize(ft.CropSpec(str(path), spec.window, 128, 64, grayscale=False))
    assert colour.shape == (3, 64, 128)
    with Image.open(path) as image:  # the window is 1200 px wide for 128 output px: libjpeg can decode at 1/8
        image.draft("L", (160, 120))
        assert image.size == (200, 150)


def test_build_tensors_shapes_index_and_cache(manifest, true_boxes, tiny_dataset, tmp_path):
    settings = ft.CropSettings(height=32, width=64)
    cache = ArrayCache(tmp_path / "cache")
    tensors, index, stats = ft.build_tensors(
        manifest, true_boxes, tiny_dataset, settings, cache=cache, workers=2
    )
    assert tensors.shape == (len(manifest), 1, 32, 64) and tensors.dtype == np.uint8
    assert list(index.columns) == ["row", "image", "split"]
    assert list(index["image"]) == list(manifest["image"]) and list(index["row"]) == list(
        range(len(manifest))
    )
    assert stats["computed"] == len(manifest) and stats["cached"] == 0
    assert tensors.std() > 5  # real pixels, not an empty array
    assert ft.missing_tensor_rows(tensors, index, manifest).empty

    again, _, stats = ft.build_tensors(manifest, true_boxes, tiny_dataset, settings, cache=cache, workers=2)
    assert stats["computed"] == 0 and stats["cached"] == len(manifest)
    assert np.array_equal(tensors, again)
    # A moved box is a new key: that photo alone is recomputed.
    moved = true_boxes.copy()
    moved.loc[0, "x1"] = moved.loc[0, "x1"] - 20
    _, _, stats = ft.build_tensors(manifest, moved, tiny_dataset, settings, cache=cache, workers=2)
    assert stats["computed"] == 1
    colour, _, _ = ft.build_tensors(
        manifest.head(4),
        true_boxes,
        tiny_dataset,
        ft.CropSettings(height=32, width=64, grayscale=False),
    )
    assert colour.shape == (4, 3, 32, 64)
    assert not ft.missing_tensor_rows(tensors[:-1], index.iloc[:-1], manifest).empty


def test_a_cached_array_of_the_wrong_shape_is_recomputed(manifest, true_boxes, tiny_dataset, tmp_path):
    settings = ft.CropSettings(height=32, width=64)
    cache = ArrayCache(tmp_path / "cache")
    photos = manifest.head(3)
    tensors, _, _ = ft.build_tensors(photos, true_boxes, tiny_dataset, settings, cache=cache, workers=1)
    spec = ft.crop_specs(photos, true_boxes, tiny_dataset, settings)[0]
    key = ft.tensor_cache_key(photos["content_hash"].iloc[0], spec, settings)
    assert cache.path(key).exists()
    cache.put(key, np.zeros((1, 8, 8), dtype=np.uint8))  # e.g. written by another version by mistake
    again, _, stats = ft.build_tensors(photos, true_boxes, tiny_dataset, settings, cache=cache, workers=1)
    assert stats["computed"] == 1 and np.array_equal(tensors, again)
    assert cache.get(key).shape == (1, 32, 64)  # and stored again, right
