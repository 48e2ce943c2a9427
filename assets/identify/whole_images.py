"""Whole photos, uncropped, for the validation report's two comparisons: the same model on whole photos (what
the crop stage is worth) and the pixel nearest-neighbour baseline."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

from core.images import open_photo
from core.parallel import parallel_map


def load_whole_image(path: Path, height: int, width: int, channels: int) -> np.ndarray:
    """One photo, uncropped, resized to height x width (aspect not kept, like a crop stretched to the tensor
    shape), as uint8 C x H x W. Decoded upright and 8-bit (`core.images.open_photo`), at reduced scale by libjpeg
    where the target is much smaller."""
    mode = "L" if channels == 1 else "RGB"
    pixels = open_photo(path, mode, (width, height)).resize((width, height), Image.BILINEAR)
    array = np.asarray(pixels, dtype=np.uint8)
    return array[None] if channels == 1 else np.ascontiguousarray(array.transpose(2, 0, 1))


def load_whole_images(
    paths: Sequence[Path], height: int, width: int, channels: int, workers: int | None = None
) -> np.ndarray:
    """Whole-image tensors (uint8 N x C x H x W) for the no-crop comparison and the pixel baseline."""
    loader = partial(load_whole_image, height=height, width=width, channels=channels)
    arrays = parallel_map(loader, [Path(p) for p in paths], workers=workers)
    if not arrays:
        return np.zeros((0, channels, height, width), np.uint8)
    return np.stack(arrays)


def train_photo_paths(raw_images: dict, data_root: Path, images: Sequence[str]) -> list[Path]:
    """Where the train photos `images` are in the data folder (`raw_images["images"]`: image, split, path)."""
    accepted = raw_images["images"]
    paths = accepted[accepted["split"] == "train"].drop_duplicates("image").set_index("image")["path"]
    return [Path(data_root) / paths[image] for image in images]
