"""The review page's pictures: crops in the keypoint frame, lines where the keypoints are, the item panel."""

import io

import numpy as np
from PIL import Image

from models.keypoints import box_image
from review.panel import (
    BACKGROUND,
    GAP,
    TILE,
    CropCache,
    candidate_pair,
    pair_image,
    panel_image,
    panel_size,
    png_bytes,
)


def test_a_crop_is_the_keypoint_frame_and_is_cached_within_its_bound(queue, tiny_dataset):
    crops = CropCache(tiny_dataset, capacity=2)
    photos = queue.photos.head(3).to_dict("records")
    first = crops.crop(photos[0]["path"], None, queue.settings)
    expected = box_image(tiny_dataset / photos[0]["path"], None, queue.settings)
    assert first.size == expected.size and first.width == queue.settings.width
    assert np.array_equal(np.asarray(first), np.asarray(expected))
    assert crops.crop(photos[0]["path"], None, queue.settings) is first and crops.renders == 1
    for photo in photos[1:]:
        crops.crop(photo["path"], None, queue.settings)
    assert len(crops) == 2 and crops.renders == 3  # the least recently used one was dropped
    crops.crop(photos[0]["path"], None, queue.settings)
    assert crops.renders == 4


def test_a_missing_or_outside_photo_is_a_placeholder(tiny_dataset, queue):
    crops = CropCache(tiny_dataset)
    missing = crops.crop("test/no_such_photo.jpg", None, queue.settings)
    outside = crops.crop("../../etc/passwd", None, queue.settings)
    assert missing.width == outside.width == queue.settings.width


def test_lines_join_the_points_in_both_crops():
    query = Image.new("L", (200, 100), 255)  # fits TILE (320 x 160) at scale 1.6
    gallery = Image.new("L", (100, 100), 255)  # fits at scale 1.6 too, centred
    pair = pair_image(query, gallery, np.array([[100, 50, 50, 50]], dtype=np.float32))
    assert pair.size == (2 * TILE[0] + GAP, TILE[1])
    pixels = np.asarray(pair)
    start = (100 * 1.6, 50 * 1.6)
    end = (TILE[0] + GAP + (TILE[0] - 160) // 2 + 50 * 1.6, 50 * 1.6)
    for fraction in (0.25, 0.5, 0.75):  # points along the line are drawn in colour (the crops are white)
        x = round(start[0] + fraction * (end[0] - start[0]))
        y = round(start[1] + fraction * (end[1] - start[1]))
        assert tuple(pixels[y, x]) not in ((255, 255, 255), BACKGROUND), (x, y)
    assert tuple(pixels[20, 160]) == (255, 255, 255)  # away from the line: the white crop


def test_a_candidate_pair_exists_only_for_known_candidates(queue, tiny_dataset):
    crops = CropCache(tiny_dataset)
    first = queue.items["item"].iloc[0]
    assert candidate_pair(queue, first, 1, crops).size == (2 * TILE[0] + GAP, TILE[1])
    assert candidate_pair(queue, first, 3, crops) is None  # new_whale
    assert candidate_pair(queue, first, 9, crops) is None


def test_the_panel_png_opens_with_the_expected_size(queue, tiny_dataset):
    crops = CropCache(tiny_dataset)
    first = queue.items["item"].iloc[0]  # four known candidates, new_whale at rank 3
    image = Image.open(io.BytesIO(png_bytes(panel_image(queue, first, crops))))
    assert image.format == "PNG" and image.size == panel_size(4, 1, 1)
    encounter = Image.open(io.BytesIO(png_bytes(panel_image(queue, "encounter_0001", crops))))
    assert encounter.size == panel_size(4, 1, 2)
    assert encounter.width == image.width and encounter.height > image.height  # the strip of its photos
    assert panel_size(5, 0, 1)[1] > panel_size(4, 1, 1)[1]  # a known candidate's row is taller
    # The first candidate's row shows the crops, not background.
    pixels = np.asarray(image.convert("RGB"))
    assert (pixels[60:200, 20:300] != BACKGROUND).any(axis=-1).mean() > 0.5
