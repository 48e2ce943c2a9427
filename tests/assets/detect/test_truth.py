"""The comparison with the generator's true boxes (the `fluke_boxes_match_generator_truth` check's logic)."""

import pytest

from assets.detect import boxes as fb
from assets.detect import truth


def test_iou_against_truth(manifest, tiny_dataset):
    true_boxes = truth.read_true_boxes(tiny_dataset)
    assert true_boxes is not None
    perfect = (
        manifest[["image", "split"]]
        .merge(true_boxes, on="image")
        .assign(confidence=1.0, fallback=False, fallback_reason="")
    )
    scores = truth.iou_against_truth(perfect, true_boxes, "test")
    assert (
        scores["mean_iou"] == pytest.approx(1.0) and scores["photos"] == (manifest["split"] == "test").sum()
    )
    whole = truth.iou_against_truth(fb.whole_image_boxes(manifest, "x"), true_boxes, "test")
    assert 0.0 < whole["mean_iou"] < 0.7 and whole["mean_iou_detected_only"] == 0.0
    assert truth.read_true_boxes(tiny_dataset / "train") is None


def test_the_check_passes_without_truth_and_fails_boxes_worse_than_whole_photos(manifest, tiny_dataset):
    whole = fb.whole_image_boxes(manifest, "x")
    assert truth.compare_with_truth(whole, manifest, tiny_dataset / "train") is None  # no truth file there
    same = truth.compare_with_truth(whole, manifest, tiny_dataset)
    assert same["passed"] and same["scores"]["mean_iou"] == pytest.approx(same["whole_photo"]["mean_iou"])
    true_boxes = truth.read_true_boxes(tiny_dataset)
    perfect = manifest[["image", "split"]].merge(true_boxes, on="image").assign(fallback=False)
    assert truth.compare_with_truth(perfect, manifest, tiny_dataset)["scores"]["mean_iou"] == pytest.approx(
        1.0
    )
    corner = whole.assign(x1=2.0, y1=2.0, fallback=False)  # a 2-pixel box in each photo's corner
    assert not truth.compare_with_truth(corner, manifest, tiny_dataset)["passed"]
