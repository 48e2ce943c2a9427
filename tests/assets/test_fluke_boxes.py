"""fluke_detector and fluke_boxes: fallbacks, caching, the truth comparison, and a tiny-profile detector."""

import pandas as pd
import pytest

from assets import fluke_boxes as fb
from assets import fluke_detector as fd
from assets.raw_images import scan_data_folder
from core.caches import TableCache
from models.detector import Detection

# The `tiny` profile: seconds on two cores. Too few steps for a from-scratch YOLO to be confident, so the bar here is
# that the chain is well-formed and never worse than whole photos, not the demo profile's IoU.
TINY = {"epochs": 3, "imgsz": 160, "batch": 8}


@pytest.fixture(scope="module")
def manifest(tiny_dataset) -> pd.DataFrame:
    return scan_data_folder(tiny_dataset, workers=2)[0]


def test_no_annotations_means_no_detector_and_whole_photos_flagged(manifest, tiny_dataset, tmp_path):
    config = fd.FlukeDetectorConfig(**TINY)
    assert fd.read_annotations(tmp_path / "absent.csv") is None
    boxes = fd.prepare_annotations(None, manifest, config.val_share, config.seed)
    weights, info = fd.train_fluke_detector(boxes, tiny_dataset, tmp_path / "work", tmp_path / "cfg", config)
    assert weights is None and info["trained"] is False and "no annotations" in info["reason"]

    result, stats = fb.detect_fluke_boxes(manifest, tiny_dataset, {"info": info}, tmp_path / "cfg")
    assert list(result.columns) == fb.BOX_COLUMNS
    assert len(result) == len(manifest) and result["fallback"].all()
    assert set(result["fallback_reason"]) == {"no_detector"}
    assert (result["x1"].to_numpy() == manifest["width"].to_numpy()).all()
    assert stats["detector_version"] == "none"
    assert fb.invalid_boxes(result, manifest).empty


def test_too_few_annotations_are_reported_not_trained(manifest, tiny_dataset, tmp_path):
    annotations = pd.read_csv(tiny_dataset / "annotations" / "boxes.csv").head(2)
    config = fd.FlukeDetectorConfig(**TINY)
    boxes = fd.prepare_annotations(annotations, manifest, config.val_share, config.seed)
    weights, info = fd.train_fluke_detector(boxes, tiny_dataset, tmp_path / "work", tmp_path / "cfg", config)
    assert weights is None and "only 2" in info["reason"]


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


def test_iou_against_truth(manifest, tiny_dataset):
    truth = fb.read_true_boxes(tiny_dataset)
    assert truth is not None
    perfect = (
        manifest[["image", "split"]]
        .merge(truth, on="image")
        .assign(confidence=1.0, fallback=False, fallback_reason="")
    )
    scores = fb.iou_against_truth(perfect, truth, "test")
    assert (
        scores["mean_iou"] == pytest.approx(1.0) and scores["photos"] == (manifest["split"] == "test").sum()
    )
    whole = fb.iou_against_truth(fb.whole_image_boxes(manifest, "x"), truth, "test")
    assert 0.0 < whole["mean_iou"] < 0.7 and whole["mean_iou_detected_only"] == 0.0
    assert fb.read_true_boxes(tiny_dataset / "train") is None


@pytest.mark.slow
def test_tiny_profile_detector_then_cached_boxes(manifest, tiny_dataset, tmp_path):
    """Train the tiny profile on the fixture's annotations, box every photo, then box them again from the cache."""
    config = fd.FlukeDetectorConfig(**TINY)
    annotations = fd.read_annotations(tiny_dataset / "annotations" / "boxes.csv")
    boxes = fd.prepare_annotations(annotations, manifest, config.val_share, config.seed)
    assert len(boxes) >= config.min_annotations
    weights, info = fd.train_fluke_detector(boxes, tiny_dataset, tmp_path / "work", tmp_path / "cfg", config)
    assert weights and info["trained"] and info["version"]
    assert 0.0 <= info["mAP50"] <= 1.0 and len(info["history"]) == config.epochs

    detector = {"info": info, "weights": weights}
    cache = TableCache(tmp_path / "cache" / "boxes.parquet")
    first, stats = fb.detect_fluke_boxes(manifest, tiny_dataset, detector, tmp_path / "cfg", cache=cache)
    assert stats["computed"] == len(manifest) and stats["cached"] == 0
    assert fb.invalid_boxes(first, manifest).empty
    assert set(first.loc[first["fallback"], "fallback_reason"]) <= {
        "low_confidence",
        "no_detection",
        "degenerate_box",
    }
    truth = fb.read_true_boxes(tiny_dataset)
    scores = fb.iou_against_truth(first, truth, "test")
    whole = fb.iou_against_truth(fb.whole_image_boxes(manifest, "x"), truth, "test")
    # The stable bar: never worse than whole photos (fallbacks are whole photos, detections must overlap).
    assert scores["mean_iou"] >= whole["mean_iou"] - 0.02

    again, stats = fb.detect_fluke_boxes(manifest, tiny_dataset, detector, tmp_path / "cfg", cache=cache)
    assert stats["computed"] == 0 and stats["cached"] == len(manifest)
    pd.testing.assert_frame_equal(first, again)
