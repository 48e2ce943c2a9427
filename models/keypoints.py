"""Local features of one photo's fluke box, for verification and descriptor voting at the resolution they need.

The training crops (128 x 256) are too small for keypoints: the pattern's spots and scars shrink to a few pixels.
Here the fluke box (plus a small margin, clipped to the photo) is cut from the photo itself and resized to a fixed
width (aspect kept), then SIFT runs on it. Descriptors are RootSIFT by default (L1-normalised, square-rooted:
Euclidean distance between them is the Hellinger kernel on the SIFT histograms, which matches better) and stored
as bytes, `round(255 * value)`: a uniform scale leaves Lowe's ratio test and inner products as they were.
"""

from __future__ import annotations

from dataclasses import dataclass
from os import PathLike

import numpy as np
from PIL import Image

from core.artifacts import FlukeKeypoints
from core.images import decode, upright_size
from models.verification import EMPTY, LocalFeatures

RESAMPLE = Image.Resampling.BILINEAR
MIN_HEIGHT = 8  # a box so flat that it resizes to fewer rows than this is stretched to it

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class KeypointSettings:
    """Where keypoints are taken and how many: the box (plus `margin` of its size per side) resized to `width`."""

    width: int = 384  # pixels across the resized box; the height follows its aspect
    margin: float = 0.05  # added around the box, share of its size per side (clipped to the photo)
    max_features: int = 400  # SIFT keypoints kept per photo (the strongest)
    contrast_threshold: float = 0.04  # SIFT's contrast threshold (OpenCV's default); lower finds more
    root_sift: bool = True  # RootSIFT descriptors instead of plain SIFT
    # Worker processes for extraction; 0 means FLUKEID_WORKERS or all cores. Not part of a photo's keypoints.
    workers: int = 0

    def feature_settings(self) -> dict:
        """The settings that change a photo's keypoints (a cache key's settings half)."""
        return {
            "width": self.width,
            "margin": self.margin,
            "max_features": self.max_features,
            "contrast_threshold": self.contrast_threshold,
            "root_sift": self.root_sift,
        }


def box_window(box: Box | None, image_size: tuple[int, int], margin: float) -> Box:
    """The region (left, top, right, bottom) keypoints are taken from: `box` grown by `margin` of its size per
    side and clipped to the photo; the whole photo without a box."""
    image_w, image_h = image_size
    if box is None:
        return 0.0, 0.0, float(image_w), float(image_h)
    x0, y0, x1, y1 = (float(v) for v in box)
    w, h = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
    left, right = max(0.0, x0 - margin * w), min(float(image_w), x1 + margin * w)
    top, bottom = max(0.0, y0 - margin * h), min(float(image_h), y1 + margin * h)
    if right - left < 1.0 or bottom - top < 1.0:  # a box outside the photo: use the photo
        return 0.0, 0.0, float(image_w), float(image_h)
    return left, top, right, bottom


def output_size(window: Box, width: int) -> tuple[int, int]:
    """(width, height) of the resized window: `width` across, its aspect kept."""
    left, top, right, bottom = window
    height = int(round((bottom - top) * width / max(right - left, 1e-6)))
    return width, max(MIN_HEIGHT, height)


def box_image(photo: str | PathLike, box: Box | None, settings: KeypointSettings) -> Image.Image:
    """The grey (mode L) window around `box`, resized to `settings.width` across.

    JPEGs much larger than needed are decoded at a reduced scale (libjpeg's 1/2, 1/4, 1/8) that still gives the
    window at least the output's pixels; colour photos are converted to grey (by the decoder where it can).
    """
    with Image.open(photo) as image:
        # Upright and 8-bit whatever the file (core.images): the box is in the upright photo's pixels.
        full_w, full_h = upright_size(image)
        window = box_window(box, (full_w, full_h), settings.margin)
        size = output_size(window, settings.width)
        left, top, right, bottom = window
        # draft() picks the largest reduction whose size is still >= the request: ask for the photo size at which
        # the window has exactly the output's pixels (never more than the photo itself).
        request = (
            min(full_w, max(1, int(np.ceil(full_w * size[0] / max(right - left, 1e-6))))),
            min(full_h, max(1, int(np.ceil(full_h * size[1] / max(bottom - top, 1e-6))))),
        )
        grey = decode(image, "L", request).image
        sx, sy = grey.size[0] / full_w, grey.size[1] / full_h
        return grey.resize(size, RESAMPLE, box=(left * sx, top * sy, right * sx, bottom * sy))


def root_sift_bytes(descriptors: np.ndarray) -> np.ndarray:
    """RootSIFT of float SIFT descriptors as uint8: L1-normalise, square root (each row then has L2 norm 1),
    times 255, rounded."""
    descriptors = np.asarray(descriptors, dtype=np.float32)
    normalised = descriptors / (np.abs(descriptors).sum(axis=1, keepdims=True) + 1e-7)
    return np.clip(np.rint(np.sqrt(normalised) * 255.0), 0, 255).astype(np.uint8)


def grey_keypoints(grey: np.ndarray, settings: KeypointSettings) -> LocalFeatures:
    """SIFT (or RootSIFT) keypoints of a uint8 H x W grey image; points (x, y) in its pixels."""
    import cv2

    sift = cv2.SIFT_create(nfeatures=settings.max_features, contrastThreshold=settings.contrast_threshold)
    keypoints, descriptors = sift.detectAndCompute(np.ascontiguousarray(grey, dtype=np.uint8), None)
    if descriptors is None or not keypoints:
        return EMPTY
    points = np.array([kp.pt for kp in keypoints], dtype=np.float32).reshape(-1, 2)
    if len(points) > settings.max_features:
        # nfeatures keeps the strongest, but ties at the cut can leave a few more: hold to the budget.
        responses = np.array([kp.response for kp in keypoints], dtype=np.float32)
        keep = np.sort(np.argsort(-responses, kind="stable")[: settings.max_features])
        points, descriptors = points[keep], descriptors[keep]
    if settings.root_sift:
        return LocalFeatures(points, root_sift_bytes(descriptors))
    # OpenCV's float SIFT descriptors are whole numbers in 0..255.
    return LocalFeatures(points, np.clip(np.rint(descriptors), 0, 255).astype(np.uint8))


def box_keypoints(photo: str | PathLike, box: Box | None, settings: KeypointSettings) -> LocalFeatures:
    """Keypoints of the photo's fluke box (original-photo pixels; None: the whole photo), resized to
    `settings.width` across: points float32 (x, y) in resized-box pixels, descriptors uint8 N x 128."""
    return grey_keypoints(np.asarray(box_image(photo, box, settings), dtype=np.uint8), settings)


def features_of(keypoints: FlukeKeypoints, start: int, count: int) -> LocalFeatures:
    """One photo's slice of the `fluke_keypoints` arrays (memory-mapped arrays read only that slice)."""
    return LocalFeatures(
        np.asarray(keypoints["points"][start : start + count], dtype=np.float32),
        np.asarray(keypoints["descriptors"][start : start + count], dtype=np.uint8),
    )


def features_by_image(keypoints: FlukeKeypoints, split: str | None = None) -> dict[str, LocalFeatures]:
    """Photo name -> its keypoints, for the photos of `split` (or all; names must then be unique)."""
    index = keypoints["index"]
    if split is not None:
        index = index[index["split"] == split]
    if index["image"].duplicated().any():
        raise ValueError("photo names repeat across splits: pass a split")
    return {
        image: features_of(keypoints, int(start), int(count))
        for image, start, count in zip(index["image"], index["start"], index["count"])
    }
