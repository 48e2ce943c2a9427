"""fluke_detector's plain code: annotations read and prepared, no training below `min_annotations`, and a training
reused when what it learns from is unchanged."""

import pandas as pd

from assets.detect import annotations as an
from assets.detect import training as tr

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
