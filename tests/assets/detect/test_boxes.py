"""fluke_boxes' plain code: fallbacks, invalid boxes, the per-photo cache, and a tiny-profile detector."""

import pandas as pd
import pytest

from assets.detect import annotations as an
from assets.detect import boxes as fb
from assets.detect import training as fd
from assets.detect.truth import iou_against_truth, read_true_boxes
from core.artifacts import BOX_COLUMNS
from models import detector as det
from models.detector import Detection

# The `tiny` profile: seconds on two cores. Too few steps for a from-scratch YOLO to be confident, so the bar here is
# that the chain is well-formed and never worse than whole photos, not the demo profile's IoU.
TINY = fd.DetectorSettings(epochs=3, imgsz=160, batch=8)


def test_no_annotations_means_no_detector_and_whole_photos_flagged(manifest, tiny_dataset, tmp_path):
    assert an.read_annotations(tmp_path / "absent.csv") is None
    boxes = an.prepare_annotations(None, manifest, TINY.val_share, TINY.seed)
    weights, info = fd.train_fluke_detector(boxes, tiny_dataset, tmp_path / "work", tmp_path / "cfg", TINY)
    assert weights is None and info["trained"] is False and "no annotations" in info["reason"]

    result, stats = fb.detect_fluke_boxes(manifest, tiny_dataset, {"info": info}, tmp_path / "cfg")
    assert list(result.columns) == BOX_COLUMNS
    assert len(result) == len(manifest) and result["fallback"].all()
    assert set(result["fallback_reason"]) == {"no_detector"}
    assert (result["x1"].to_numpy() == manifest["width"].to_numpy()).all()
    assert stats["detector_version"] == "none"
    assert fb.invalid_boxes(result, manifest).empty


def test_weak_or_missing_detections_fall_back_with_reasons(manifest):
    photos = manifest.head(3)
    detections = [
        Detection(10, 20, 110, 80, confidence=0.9, found=True),
        Detection(10, 20, 110, 80, confidence=0.05, found=True),
        Detection(),
    ]
    rows = fb.detections_to_rows(photos, detections, min_confidence=0.25)
    assert list(rows["fallback"]) == [False, True, True]
    assert list(rows["fallback_reason"]) == ["", "low_confidence", "no_detection"]
    assert (rows.loc[0, "x0"], rows.loc[0, "y1"]) == (10, 80)
    assert rows.loc[1, "x1"] == photos.iloc[1]["width"] and rows.loc[1, "confidence"] == pytest.approx(0.05)


def test_invalid_boxes_finds_boxes_outside_and_missing_photos(manifest):
    boxes = fb.whole_image_boxes(manifest, "test")
    assert fb.invalid_boxes(boxes, manifest).empty
    broken = boxes.copy()
    broken.loc[0, "x1"] = broken.loc[0, "x1"] + 5  # leaves the photo
    broken.loc[1, "y1"] = broken.loc[1, "y0"]  # no area
    broken = broken.drop(index=2)  # a photo with no box
    assert set(fb.invalid_boxes(broken, manifest)["image"]) == set(manifest["image"].iloc[:3])


def test_cached_boxes_are_served_without_a_model(manifest, tiny_dataset, tmp_path):
    """Every photo's key in the cache: no model is loaded (these weights are not a model), rows come back typed."""
    weights = b"not a model"
    settings = fb.BoxSettings()
    key_settings = {"min_confidence": settings.min_confidence, "imgsz": 160}
    version = det.weights_version(weights)
    cache = fb.box_cache(tmp_path / "cache")
    rows = fb.whole_image_boxes(manifest, "low_confidence")
    cache.store(
        {
            fb.box_cache_key(h, version, key_settings): record
            for h, record in zip(manifest["content_hash"], rows[fb.CACHED_COLUMNS].to_dict(orient="records"))
        }
    )
    detector = {"info": {"imgsz": 160}, "weights": weights}
    boxes, stats = fb.detect_fluke_boxes(manifest, tiny_dataset, detector, tmp_path / "cfg", cache=cache)
    assert (
        stats["computed"] == 0 and stats["cached"] == len(manifest) and stats["detector_version"] == version
    )
    pd.testing.assert_frame_equal(boxes, rows)
    assert set(pd.read_parquet(tmp_path / "cache" / "boxes.parquet").columns) == {*fb.CACHED_COLUMNS, "key"}


def test_box_area_shares(manifest):
    whole = fb.whole_image_boxes(manifest, "x")
    assert fb.box_area_shares(whole, manifest) == pytest.approx(1.0)
    half = whole.assign(x1=whole["x1"] / 2)
    assert fb.box_area_shares(half, manifest) == pytest.approx(0.5)


@pytest.mark.slow
def test_tiny_profile_detector_then_cached_boxes(manifest, tiny_dataset, tmp_path):
    """Train the tiny profile on the fixture's annotations, box every photo, then box them again from the cache."""
    annotations = an.read_annotations(tiny_dataset / "annotations" / "boxes.csv")
    boxes = an.prepare_annotations(annotations, manifest, TINY.val_share, TINY.seed)
    assert len(boxes) >= TINY.min_annotations
    weights, info = fd.train_fluke_detector(boxes, tiny_dataset, tmp_path / "work", tmp_path / "cfg", TINY)
    assert weights and info["trained"] and info["version"]
    assert 0.0 <= info["mAP50"] <= 1.0 and len(info["history"]) == TINY.epochs

    detector = {"info": info, "weights": weights}
    cache = fb.box_cache(tmp_path / "cache")
    first, stats = fb.detect_fluke_boxes(manifest, tiny_dataset, detector, tmp_path / "cfg", cache=cache)
    assert stats["computed"] == len(manifest) and stats["cached"] == 0
    assert fb.invalid_boxes(first, manifest).empty
    assert set(first.loc[first["fallback"], "fallback_reason"]) <= {
        "low_confidence",
        "no_detection",
        "degenerate_box",
    }
    truth = read_true_boxes(tiny_dataset)
    scores = iou_against_truth(first, truth, "test")
    whole = iou_against_truth(fb.whole_image_boxes(manifest, "x"), truth, "test")
    # The stable bar: never worse than whole photos (fallbacks are whole photos, detections must overlap).
    assert scores["mean_iou"] >= whole["mean_iou"] - 0.02

    again, stats = fb.detect_fluke_boxes(manifest, tiny_dataset, detector, tmp_path / "cfg", cache=cache)
    assert stats["computed"] == 0 and stats["cached"] == len(manifest)
    pd.testing.assert_frame_equal(first, again)
