"""Keypoints of a photo's fluke box: enough of them, RootSIFT as declared, the box honoured, robust to a warp."""

import cv2
import numpy as np
import pytest
from PIL import Image

from models.keypoints import (
    KeypointSettings,
    box_image,
    box_keypoints,
    box_window,
    output_size,
    root_sift_bytes,
)
from models.verification import count_inliers

BOX = (200.0, 150.0, 600.0, 350.0)  # 400 x 200 px, the fluke's wide aspect


def pattern(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smooth random blobs at full contrast: a fluke-like texture with plenty of SIFT keypoints."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, (height // 8, width // 8), dtype=np.uint8))
    return np.asarray(coarse.resize((width, height), Image.Resampling.BICUBIC), dtype=np.uint8)


def pattern_in_box(path, everywhere: bool = False) -> np.ndarray:
    """An 800 x 600 grey photo with the pattern inside `BOX` (or over the whole photo), saved losslessly."""
    photo = pattern(600, 800, seed=1).copy() if everywhere else np.full((600, 800), 128, np.uint8)
    x0, y0, x1, y1 = (int(v) for v in BOX)
    photo[y0:y1, x0:x1] = pattern(y1 - y0, x1 - x0)
    Image.fromarray(photo).save(path)
    return photo


def test_box_window_adds_margin_and_stays_inside():
    assert box_window((100, 100, 200, 150), (800, 600), 0.1) == pytest.approx((90, 95, 210, 155))
    assert box_window((0, 0, 800, 600), (800, 600), 0.1) == (0.0, 0.0, 800.0, 600.0)
    assert box_window(None, (800, 600), 0.1) == (0.0, 0.0, 800.0, 600.0)
    assert box_window((900, 700, 950, 750), (800, 600), 0.1) == (0.0, 0.0, 800.0, 600.0)  # outside: whole
    assert output_size((0, 0, 400, 200), 384) == (384, 192)


def test_box_keypoints_finds_many_and_rootsift_rows_are_unit_vectors(tmp_path):
    path = tmp_path / "photo.png"
    pattern_in_box(path)
    features = box_keypoints(path, BOX, KeypointSettings())
    assert len(features) > 50 and len(features) <= KeypointSettings.max_features
    assert features.points.dtype == np.float32 and features.points.shape == (len(features), 2)
    assert features.descriptors.dtype == np.uint8 and features.descriptors.shape == (len(features), 128)
    width, height = output_size(box_window(BOX, (800, 600), KeypointSettings.margin), KeypointSettings.width)
    assert (features.points >= 0).all() and (features.points[:, 0] < width).all()
    assert (features.points[:, 1] < height).all()
    # RootSIFT: each row is the square root of an L1-normalised histogram, so its L2 norm is 1 (255 as bytes).
    norms = np.linalg.norm(features.descriptors.astype(np.float64), axis=1)
    assert np.allclose(norms, 255, atol=3)
    plain = box_keypoints(path, BOX, KeypointSettings(root_sift=False))
    assert len(plain) == len(features) and not np.allclose(
        np.linalg.norm(plain.descriptors, axis=1), 255, atol=3
    )
    fewer = box_keypoints(path, BOX, KeypointSettings(max_features=30))
    assert len(fewer) == 30


def test_root_sift_bytes_of_a_histogram():
    descriptors = np.array([[4.0, 0.0, 0.0, 12.0] + [0.0] * 124], dtype=np.float32)
    root = root_sift_bytes(descriptors)
    assert (
        root[0, 0] == round(255 * 0.5) and root[0, 3] == round(255 * np.sqrt(0.75)) and root.dtype == np.uint8
    )


def test_the_box_is_honoured(tmp_path):
    settings = KeypointSettings(margin=0.0)
    # The photo's pattern only inside the box, and the same pattern as a photo of its own: the same keypoints.
    in_box, alone = tmp_path / "in_box.png", tmp_path / "alone.png"
    x0, y0, x1, y1 = (int(v) for v in BOX)
    Image.fromarray(pattern_in_box(in_box)[y0:y1, x0:x1]).save(alone)
    boxed, whole = box_keypoints(in_box, BOX, settings), box_keypoints(alone, None, settings)
    assert len(boxed) > 50 and abs(len(boxed) - len(whole)) <= 0.1 * len(whole)
    nearest = np.linalg.norm(boxed.points[:, None] - whole.points[None], axis=2).min(axis=1)
    assert (nearest < 1.5).mean() > 0.8
    # A box over plain grey finds (almost) nothing, though the photo has a pattern elsewhere.
    assert len(box_keypoints(in_box, (10.0, 10.0, 150.0, 100.0), settings)) < 5
    # The box's keypoints differ from the whole photo's when the pattern is everywhere.
    everywhere = tmp_path / "everywhere.png"
    pattern_in_box(everywhere, everywhere=True)
    whole_photo = box_keypoints(everywhere, None, settings)
    in_window = box_keypoints(everywhere, BOX, settings)
    # Whole photo (800 px) at 384 px: half the scale, so the box's keypoints are not the whole photo's.
    assert not np.array_equal(whole_photo.points, in_window.points)


def test_a_warped_copy_matches_with_many_inliers(tmp_path):
    original, warped = tmp_path / "original.png", tmp_path / "warped.png"
    photo = pattern_in_box(original, everywhere=True)
    corners = np.float32([[0, 0], [800, 0], [800, 600], [0, 600]])
    moved = np.float32([[30, 20], [770, 50], [790, 580], [10, 560]])
    homography = cv2.getPerspectiveTransform(corners, moved)
    Image.fromarray(cv2.warpPerspective(photo, homography, (800, 600), borderValue=128)).save(warped)
    settings = KeypointSettings()
    a, b = box_keypoints(original, None, settings), box_keypoints(warped, None, settings)
    assert count_inliers(a, b) > 40
    # A different pattern leaves only chance inliers.
    other = tmp_path / "other.png"
    Image.fromarray(pattern(600, 800, seed=5)).save(other)
    assert count_inliers(a, box_keypoints(other, None, settings)) < 15


def test_large_jpeg_is_decoded_at_reduced_scale_like_the_full_decode(tmp_path):
    path = tmp_path / "big.jpg"
    Image.fromarray(pattern(2400, 3200)).convert("RGB").save(path, quality=95)
    settings = KeypointSettings(width=384)
    box = (400.0, 600.0, 2000.0, 1400.0)  # 1,600 px wide for 384: libjpeg can decode at 1/4
    fast = np.asarray(box_image(path, box, settings), dtype=np.int16)
    with Image.open(path) as image:
        window = box_window(box, image.size, settings.margin)
        naive = image.convert("L").resize(output_size(window, 384), Image.Resampling.BILINEAR, box=window)
    assert fast.shape == np.asarray(naive).shape
    assert np.abs(fast - np.asarray(naive, dtype=np.int16)).mean() < 4
    assert box_image(path, box, settings).mode == "L"
