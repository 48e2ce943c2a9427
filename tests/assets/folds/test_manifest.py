"""training_manifest: duplicates removed, aliases merged, folds deterministic per seed."""

import pandas as pd

from assets.folds.manifest import (
    FoldSettings,
    assign_folds,
    build_training_manifest,
    untrained_val_individuals,
)
from core.artifacts import TRAINING_MANIFEST_COLUMNS
from core.constants import NEW_WHALE


def _groups() -> pd.DataFrame:
    """A duplicate_groups["groups"] table: 12 individuals with 1..4 photos, 10 new_whale photos, and groups
    with removed duplicates (one of them a new_whale copy of w_00, one a test photo)."""
    rows, group = [], 0
    for index in range(12):
        for photo in range(1 + index % 4):
            rows.append((f"id{index:02d}_{photo}.jpg", "train", group, True, f"w_{index:02d}"))
            group += 1
    for photo in range(10):
        rows.append((f"new_{photo}.jpg", "train", group, True, NEW_WHALE))
        group += 1
    # Duplicates of the first photos: never kept; the group's label is the canonical known id.
    rows.append(("copy_of_id00.jpg", "train", 0, False, "w_00"))
    rows.append(("copy_of_id01.jpg", "train", 1, False, "w_01"))
    rows.append(("test_copy.jpg", "test", 1, False, "w_01"))
    rows.append(("test_alone.jpg", "test", group, True, None))
    return pd.DataFrame(rows, columns=["image", "split", "group", "representative", "label"])


def test_one_row_per_group_with_canonical_labels():
    manifest = build_training_manifest(_groups(), FoldSettings(seed=0))
    assert (
        list(manifest.columns) == ["image", "label", "fold", "individual_photos"] == TRAINING_MANIFEST_COLUMNS
    )
    assert manifest["image"].is_unique
    assert not manifest["image"].str.startswith(("copy_of", "test_")).any()
    assert len(manifest) == 30 + 10
    counts = manifest[manifest["label"] != NEW_WHALE]["label"].value_counts()
    known = manifest[manifest["label"] != NEW_WHALE]
    assert (known["individual_photos"] == known["label"].map(counts)).all()
    assert (manifest.loc[manifest["label"] == NEW_WHALE, "individual_photos"] == 1).all()


def test_folds_hold_out_one_photo_per_individual_with_two_or_more():
    manifest = build_training_manifest(
        _groups(), FoldSettings(seed=3, val_individual_share=1.0, val_new_whale_share=0.2)
    )
    known = manifest[manifest["label"] != NEW_WHALE]
    val_per_id = known[known["fold"] == "val"].groupby("label").size()
    multi = known["label"].value_counts()
    assert set(val_per_id.index) == set(multi[multi >= 2].index)
    assert (val_per_id == 1).all()
    singletons = multi[multi == 1].index
    assert (known.loc[known["label"].isin(singletons), "fold"] == "train").all()
    new_whale_val = ((manifest["label"] == NEW_WHALE) & (manifest["fold"] == "val")).sum()
    assert new_whale_val == 2
    assert set(manifest["fold"]) == {"train", "val"}


def test_folds_are_deterministic_per_seed_and_change_with_it():
    groups = _groups()
    first = build_training_manifest(groups, FoldSettings(seed=1))
    assert first.equals(build_training_manifest(groups, FoldSettings(seed=1)))
    assert first.equals(
        build_training_manifest(groups.sample(frac=1.0, random_state=5), FoldSettings(seed=1))
    )
    others = [build_training_manifest(groups, FoldSettings(seed=seed)) for seed in range(2, 6)]
    assert any(not (other["fold"].to_numpy() == first["fold"].to_numpy()).all() for other in others)


def test_validation_fold_always_holds_known_and_new_whale():
    photos = pd.DataFrame({"image": ["a.jpg", "b.jpg", "c.jpg"], "label": ["w_1", "w_1", NEW_WHALE]})
    folds = assign_folds(photos, FoldSettings(seed=0, val_individual_share=0.1, val_new_whale_share=0.01))
    assert folds.tolist().count("val") == 2
    assert folds[2] == "val"
    assert (
        assign_folds(photos, FoldSettings(seed=0, val_individual_share=0.0, val_new_whale_share=0.0))
        == "train"
    ).all()


def test_check_finds_val_individuals_without_a_train_photo_and_repeated_images():
    manifest = build_training_manifest(_groups(), FoldSettings(seed=0))
    assert untrained_val_individuals(manifest) == {
        "val_individuals_without_train_photo": 0,
        "repeated_images": 0,
        "examples": "",
    }
    val_known = manifest[(manifest["fold"] == "val") & (manifest["label"] != NEW_WHALE)].index[0]
    label = manifest.at[val_known, "label"]
    broken = manifest[(manifest["label"] != label) | (manifest["fold"] == "val")]
    broken = pd.concat([broken, broken.head(1)], ignore_index=True)
    found = untrained_val_individuals(broken)
    assert found["val_individuals_without_train_photo"] == 1 and found["examples"] == label
    assert found["repeated_images"] == 1
