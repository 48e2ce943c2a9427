"""dedup groups: real near-duplicates grouped, aliases, new_whale labels, representatives, test matches, and the
alias check's logic."""

import pandas as pd

from assets.dedup.groups import alias_conflicts
from assets.dedup.pairs import DedupSettings
from core.artifacts import GROUP_COLUMNS
from tests.assets.dedup.photos import PHOTOS, run_dedup


def test_real_photos_are_found_as_duplicates_of_their_originals(real_photo_folder, real_photo_result):
    _, value, _ = real_photo_result
    groups = value["groups"]
    assert list(groups.columns) == GROUP_COLUMNS
    truth = pd.read_csv(real_photo_folder / "duplicates.csv")
    expected = {frozenset(group["Image"]) for _, group in truth.groupby("group")}
    found = {frozenset(group["image"]) for _, group in groups.groupby("group") if len(group) > 1}
    assert found == expected


def test_aliases_new_whale_and_representatives(real_photo_result):
    images, value, _ = real_photo_result
    groups, aliases = value["groups"], value["aliases"]
    assert aliases.to_dict("records") == [{"label": "w_chelsea_again", "canonical": "w_chelsea"}]
    label_of = dict(zip(groups["image"], groups["label"]))
    assert label_of["coffee_resize.jpg"] == "w_coffee"  # a new_whale duplicate takes the known id
    assert label_of["chelsea_crop.jpg"] == "w_chelsea"
    assert label_of["astronaut_crop_gray.jpg"] == "w_astronaut"
    reps = groups[groups["representative"]]
    assert reps["group"].is_unique and set(reps["group"]) == set(groups["group"])
    # The representative is the full-size original, not a smaller copy.
    assert set(reps["image"]) >= {f"{name}.jpg" for name in PHOTOS}
    assert len(groups) == len(images)


def test_test_photos_that_duplicate_train_photos_reveal_their_label(real_photo_result):
    matches = real_photo_result[1]["test_matches"]
    assert matches[["image", "train_image", "label"]].to_dict("records") == [
        {"image": "camera_requality.jpg", "train_image": "camera.jpg", "label": "w_camera"},
        {"image": "clock_crop.jpg", "train_image": "clock.jpg", "label": "w_clock"},
    ]
    assert (matches["distance"] <= DedupSettings().max_distance).all()


def test_pixel_check_rejects_candidates_when_strict(real_photo_folder):
    # With an impossible similarity bar every candidate is rejected: groups come only from verified pairs.
    _, value, details = run_dedup(real_photo_folder, DedupSettings(min_similarity=1.01))
    assert len(details["pairs"]) > 0 and not details["pairs"]["verified"].any()
    assert value["groups"]["group"].is_unique
    assert value["aliases"].empty and value["test_matches"].empty


def test_alias_check_flags_unrecorded_aliases(real_photo_result):
    # The logic of the asset check `duplicate_groups_aliases_recorded`.
    images, value, _ = real_photo_result
    assert alias_conflicts(images, value).empty
    broken = {**value, "aliases": value["aliases"].iloc[0:0]}
    conflicts = alias_conflicts(images, broken)
    assert conflicts["group"].nunique() == 1
    assert set(conflicts["own_label"]) == {"w_chelsea", "w_chelsea_again"}
