"""Whole photos for the no-crop comparison and the pixel baseline: resized to the tensor shape."""

import numpy as np
from PIL import Image

from assets.identify.whole_images import load_whole_image, load_whole_images, train_photo_paths


def test_load_whole_image_resizes_to_tensor_shape(tmp_path):
    path = tmp_path / "photo.jpg"
    Image.new("RGB", (300, 200), (200, 40, 10)).save(path)
    grey = load_whole_image(path, 16, 32, 1)
    colour = load_whole_image(path, 16, 32, 3)
    assert grey.shape == (1, 16, 32) and grey.dtype == np.uint8
    assert colour.shape == (3, 16, 32)
    assert abs(int(colour[0].mean()) - 200) < 4 and abs(int(colour[2].mean()) - 10) < 4
    assert load_whole_images([path, path], 16, 32, 1, workers=1).shape == (2, 1, 16, 32)
    assert load_whole_images([], 16, 32, 3).shape == (0, 3, 16, 32)


def test_train_photo_paths_follow_the_manifest(tmp_path):
    import pandas as pd

    raw = {
        "images": pd.DataFrame(
            {"image": ["a.jpg", "a.jpg"], "split": ["test", "train"], "path": ["t", "x/a"]}
        )
    }
    assert train_photo_paths(raw, tmp_path, ["a.jpg"]) == [tmp_path / "x/a"]
