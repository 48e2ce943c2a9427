"""fluke_detector's plain code: annotations read and prepared, no training below `min_annotations`, and a training
reused when what it learns from is unchanged."""

import pandas as pd

from assets.detect import annotations as an
from assets.detect import training as tr
from core.digests import content_version

# The `tiny` profile (see configs/tiny.yaml).
TINY = tr.DetectorSettings(epochs=3, imgsz=160, batch=8)


def test_too_few_annotations_are_reported_not_trained(manifest, tiny_dataset, tmp_path):
    annotations = pd.read_csv(tiny_dataset / "annotations" / "boxes.csv").head(2)
    boxes = an.prepare_annotations(annotations, manifest, TINY.val_share, TINY.seed)
    weights, info = tr.train_fluke_detector(boxes, tiny_dataset, tmp_path / "work", tmp_path / "cfg", TINY)
    assert weights is None and "only 2" in info["reason"]


def test_prepared_annotations_are_accepted_photos_split_in_two_parts(manifest, tiny_dataset):
    annotations = an.read_annotations(tiny_dataset / "annotations" / "boxes.csv")
    boxes = an.prepare_annotations(annotations, manifest, TINY.val_share, TINY.seed)
    assert list(boxes.columns) == an.ANNOTATION_COLUMNS and set(boxes["part"]) == {"train", "val"}
    assert set(boxes["image"]) <= set(manifest["image"])
    assert len(an.annotated_content(boxes, manifest)) == len(boxes)
    assert list(an.prepare_annotations(None, manifest, 0.2, 0).columns) == an.ANNOTATION_COLUMNS


def test_an_identical_training_is_reused_and_a_new_setting_is_not(manifest, tiny_dataset, tmp_path):
    # No annotations: nothing to train, so this runs in no time and still goes through the memo.
    absent = tmp_path / "absent.csv"
    args = (absent, manifest, tiny_dataset, tmp_path / "work", tmp_path / "cfg")
    first = tr.fit_fluke_detector(*args, TINY)
    assert first.weights is None and not first.reused and first.annotations_in_file == 0
    assert first.value() == {"info": first.info} and "no annotations" in first.info["reason"]
    assert tr.fit_fluke_detector(*args, TINY).reused
    assert not tr.fit_fluke_detector(*args, tr.DetectorSettings(epochs=4)).reused
    empty = an.prepare_annotations(None, manifest, 0.2, 0)
    assert tr.training_key(TINY, empty, manifest) != tr.training_key(tr.DetectorSettings(), empty, manifest)


def test_a_training_cut_by_its_budget_is_recorded_and_reused_by_a_rerun(manifest, tiny_dataset, tmp_path):
    annotations = tiny_dataset / "annotations" / "boxes.csv"
    args = (annotations, manifest, tiny_dataset, tmp_path / "work", tmp_path / "cfg")
    # 0.01 minutes (0.6 s): 30 epochs cannot fit
    budgeted = tr.DetectorSettings(epochs=30, imgsz=160, batch=8, max_minutes=0.01)
    first = tr.fit_fluke_detector(*args, budgeted)
    assert first.weights is not None and not first.reused
    budget = first.info["budget"]
    assert (
        budget["stopped_by_budget"]
        and 1 <= budget["epochs_completed"] < 30
        and budget["steps_completed"] >= 1
    )
    assert budget["epochs_configured"] == 30 and budget["max_minutes"] == 0.01
    assert len(first.info["history"]) == budget["epochs_completed"]
    again = tr.fit_fluke_detector(*args, budgeted)  # the memo: nothing trains, the same bytes and info
    assert again.reused and again.weights == first.weights and again.info == first.info
    assert content_version(again.value()) == content_version(first.value())  # the asset's data version
