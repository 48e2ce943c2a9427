"""Review decisions read back as labels: applied ones add train rows, the rest are rejected with a reason, and the
data folder's version changes only when the decisions file exists."""

from pathlib import Path

import pandas as pd

from assets.ingest.reviews import REVIEW_REASONS, apply_reviews, review_counts, with_files
from assets.ingest.scan import ALL_REASONS
from core.artifacts import IMAGE_COLUMNS, REVIEW_COLUMNS
from core.decisions import append_decision, new_individual_id


def manifest() -> pd.DataFrame:
    rows = []
    for split, image, label in [
        ("train", "a.jpg", "w_1"),
        ("train", "b.jpg", "w_2"),
        ("train", "c.jpg", "new_whale"),
        ("test", "t1.jpg", None),
        ("test", "t2.jpg", None),
        ("test", "t3.jpg", None),
        ("test", "t4.jpg", None),
        ("test", "a.jpg", None),  # a test photo named like a train photo
    ]:
        rows.append(
            {
                "image": image,
                "split": split,
                "label": label,
                "path": f"{split}/{image}",
                "width": 100,
                "height": 50,
                "mode": "RGB",
                "is_grayscale": False,
                "bytes": 1000,
                "content_hash": f"hash-{split}-{image}",
                "converted": "",
            }
        )
    return pd.DataFrame(rows, columns=IMAGE_COLUMNS)


def test_no_decisions_file_changes_nothing(tmp_path):
    before = manifest()
    after, reviews, rejected = apply_reviews(before, tmp_path / "reviews" / "decisions.csv")
    pd.testing.assert_frame_equal(after, before)
    assert list(reviews.columns) == REVIEW_COLUMNS and reviews.empty and rejected == []
    assert apply_reviews(before, None)[0] is before


def test_decisions_become_train_rows_and_bad_ones_are_rejected(tmp_path):
    path = tmp_path / "reviews" / "decisions.csv"
    append_decision(path, "t1.jpg", "same", "w_2", reviewer="ann")
    created = new_individual_id("t2.jpg")
    append_decision(path, "t2.jpg", "new", created, reviewer="ann")
    append_decision(path, "t3.jpg", "same", created, reviewer="bob")  # the whale t2 created
    append_decision(path, "t4.jpg", "unsure", reviewer="bob")
    append_decision(path, "nowhere.jpg", "same", "w_1")  # not a test photo
    append_decision(path, "a.jpg", "same", "w_1")  # train/ already has an a.jpg
    with open(path, "a") as handle:
        handle.write("t1.jpg,maybe,,x,2026-01-01T00:00:00Z\n")  # malformed: unknown decision
    after, reviews, rejected = apply_reviews(manifest(), path)

    added = after[(after["split"] == "train") & after["path"].str.startswith("test/")]
    assert dict(zip(added["image"], added["label"])) == {
        "t1.jpg": "w_2",
        "t2.jpg": created,
        "t3.jpg": created,
    }
    # The decided photo keeps its test row (the submission answers for it) and its file's properties.
    assert (after["split"] == "test").sum() == 5
    assert set(added["content_hash"]) == {"hash-test-t1.jpg", "hash-test-t2.jpg", "hash-test-t3.jpg"}
    assert after.equals(after.sort_values(["split", "image"], kind="stable").reset_index(drop=True))
    assert dict(zip(reviews["image"], reviews["decision"])) == {
        "t1.jpg": "same",
        "t2.jpg": "new",
        "t3.jpg": "same",
        "t4.jpg": "unsure",
    }
    reasons = {row["image"]: row["reason"] for row in rejected}
    assert reasons["nowhere.jpg"] == "unknown_review_photo"
    assert reasons["a.jpg"] == "review_name_in_train"
    assert [row["reason"] for row in rejected].count("malformed_decision") == 1
    assert {row["reason"] for row in rejected} <= set(REVIEW_REASONS) <= ALL_REASONS
    assert all(row["split"] == "reviews" for row in rejected)
    assert review_counts(reviews) == {
        "reviewed_photos": 4,
        "reviewed_same": 2,
        "reviewed_new": 1,
        "reviewed_unsure": 1,
    }


def test_unknown_labels_and_collisions_are_rejected(tmp_path):
    path = tmp_path / "decisions.csv"
    append_decision(path, "t1.jpg", "same", "w_9")  # nobody's id
    append_decision(path, "t2.jpg", "new", "w_1")  # a known whale's id as a new one
    append_decision(path, "t3.jpg", "same", "w_1")
    append_decision(path, "t3.jpg", "undo")  # reversed: nothing stands for t3
    after, reviews, rejected = apply_reviews(manifest(), path)
    assert {row["image"]: row["reason"] for row in rejected} == {
        "t1.jpg": "unknown_review_label",
        "t2.jpg": "review_label_collision",
    }
    assert reviews.empty and len(after) == len(manifest())


def test_the_folder_version_folds_in_the_decisions_file_only_when_it_exists(tmp_path: Path):
    path = tmp_path / "decisions.csv"
    assert with_files("abc", [path]) == "abc"
    append_decision(path, "t1.jpg", "same", "w_2")
    first = with_files("abc", [path])
    assert first != "abc"
    append_decision(path, "t1.jpg", "undo")
    assert with_files("abc", [path]) not in ("abc", first)
