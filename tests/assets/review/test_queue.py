"""The review queue: most uncertain first, encounters as one item, each candidate's best gallery photo with the
keypoint pairs that match it, and the decided identities built from it."""

import numpy as np
import pandas as pd
import pytest

from assets.review.identities import decided_identities, first_choices
from assets.review.queue import build_queue, expected_gain, review_items
from core.artifacts import BOX_COLUMNS, ENCOUNTER_COLUMNS, IMAGE_COLUMNS, REVIEW_COLUMNS

RNG = np.random.default_rng(3)
PATTERN = RNG.integers(0, 255, size=(60, 128)).astype(np.uint8)  # one whale's descriptors
POINTS = RNG.uniform(10, 300, size=(60, 2)).astype(np.float32)


def features(kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(points, descriptors): the pattern shifted (the same whale seen again) or unrelated noise."""
    if kind == "pattern":
        return POINTS.copy(), PATTERN
    if kind == "pattern-moved":
        return POINTS + np.float32([7, -3]), PATTERN
    noise = np.random.default_rng(abs(hash(kind)) % 1000)
    return POINTS.copy(), noise.integers(0, 255, size=(60, 128)).astype(np.uint8)


def world():
    photos = [
        ("train", "g1.jpg", "w_a", "pattern"),
        ("train", "g2.jpg", "w_a", "noise-g2"),
        ("train", "g3.jpg", "w_b", "noise-g3"),
        ("test", "q1.jpg", None, "pattern-moved"),
        ("test", "q2.jpg", None, "noise-q2"),
        ("test", "q3.jpg", None, "noise-q3"),
        ("test", "q4.jpg", None, "noise-q4"),
    ]
    images = pd.DataFrame(
        [
            [image, split, label, f"{split}/{image}", 400, 200, "RGB", False, 10, f"h{image}", ""]
            for split, image, label, _ in photos
        ],
        columns=IMAGE_COLUMNS,
    )
    made = [features(kind) for *_, kind in photos]
    counts = [len(points) for points, _ in made]
    keypoints = {
        "points": np.concatenate([points for points, _ in made]),
        "descriptors": np.concatenate([descriptors for _, descriptors in made]),
        "index": pd.DataFrame(
            {
                "image": images["image"],
                "split": images["split"],
                "start": np.cumsum([0, *counts[:-1]]),
                "count": counts,
            }
        ),
        "settings": {"width": 320, "margin": 0.1},
    }
    boxes = pd.DataFrame(
        [[image, split, 10.0, 20.0, 300.0, 150.0, 0.9, image == "q4.jpg", ""] for split, image, *_ in photos],
        columns=BOX_COLUMNS,
    )
    # q1: sure it is w_a; q2: torn between w_a and w_b; q3 and q4: one encounter, unsure.
    matches = pd.DataFrame(
        [
            ["q1.jpg", 1, "w_a", 0.97, 50, 1.0, 0.8],
            ["q1.jpg", 2, "new_whale", 0.02, np.nan, np.nan, np.nan],
            ["q1.jpg", 3, "w_b", 0.01, 3, 0.1, 0.2],
            ["q2.jpg", 1, "w_b", 0.45, 9, 0.5, 0.5],
            ["q2.jpg", 2, "w_a", 0.40, 8, 0.4, 0.5],
            ["q2.jpg", 3, "new_whale", 0.15, np.nan, np.nan, np.nan],
            ["q3.jpg", 1, "new_whale", 0.6, np.nan, np.nan, np.nan],
            ["q3.jpg", 2, "w_b", 0.3, 4, 0.3, 0.3],
            ["q4.jpg", 1, "w_a", 0.5, 12, 1.0, 0.4],
            ["q4.jpg", 2, "new_whale", 0.45, np.nan, np.nan, np.nan],
        ],
        columns=["image", "rank", "label", "probability", "inliers", "vote_share", "embedding_similarity"],
    )
    submission = pd.DataFrame({"Image": ["q1.jpg", "q2.jpg", "q3.jpg", "q4.jpg"], "Id": ["x"] * 4})
    encounters = pd.DataFrame(
        [["q3.jpg", "test", "enc-7", "file"], ["q4.jpg", "test", "enc-7", "file"]], columns=ENCOUNTER_COLUMNS
    )
    raw = {"images": images, "rejected": pd.DataFrame(), "encounters": encounters}
    gallery = pd.DataFrame(
        {"row": [0, 1, 2], "image": ["g1.jpg", "g2.jpg", "g3.jpg"], "label": ["w_a", "w_a", "w_b"]}
    )
    return matches, submission, raw, boxes, keypoints, gallery


def test_expected_gain():
    assert expected_gain([1.0, 0, 0, 0, 0]) == pytest.approx(0.0)
    assert expected_gain([0, 1.0, 0, 0, 0]) == pytest.approx(0.5)
    assert expected_gain([0.5, 0.5]) == pytest.approx(1 - 0.5 - 0.25)
    assert expected_gain([0.9, 0.9]) == pytest.approx(1 - 0.5 - 0.25)  # scaled to sum to one
    assert expected_gain([np.nan, np.nan]) == expected_gain([0.5, 0.5])


def test_review_items_group_encounters():
    encounters = pd.DataFrame(
        [["b", "test", "e1", "exif"], ["c", "test", "e1", "exif"]], columns=ENCOUNTER_COLUMNS
    )
    assert review_items(["c", "a", "b"], encounters) == {"a": ["a"], "e1": ["b", "c"]}
    assert review_items(["b", "a"], None) == {"a": ["a"], "b": ["b"]}


def test_queue_orders_by_gain_and_finds_the_matching_gallery_photo():
    queue = build_queue(*world())
    items = queue["items"]
    assert items["item"].tolist() == ["enc-7", "q2.jpg", "q1.jpg"]  # the encounter sums two doubtful photos
    assert items["position"].tolist() == [0, 1, 2]
    assert items.set_index("item").loc["enc-7", "photos"] == 2
    assert set(queue["photos"].loc[queue["photos"]["item"] == "enc-7", "image"]) == {"q3.jpg", "q4.jpg"}
    photos = queue["photos"].set_index("image")
    assert photos.loc["q1.jpg", "box_x0"] == 10.0 and np.isnan(photos.loc["q4.jpg", "box_x0"])  # fallback box
    # The encounter's candidates: best probability per label over its photos.
    enc = queue["candidates"][queue["candidates"]["item"] == "enc-7"]
    assert enc["label"].tolist() == ["new_whale", "w_a", "w_b"]
    assert enc["probability"].tolist() == [0.6, 0.5, 0.3]
    # q1's first candidate: g1 holds the same pattern, so it is the photo shown, with its inlier pairs.
    q1 = queue["candidates"][queue["candidates"]["item"] == "q1.jpg"].set_index("rank")
    assert q1.loc[1, "gallery_image"] == "g1.jpg" and q1.loc[1, "gallery_path"] == "train/g1.jpg"
    assert q1.loc[2, "is_new_whale"] and q1.loc[2, "gallery_image"] == ""
    lines = queue["lines"][(queue["lines"]["item"] == "q1.jpg") & (queue["lines"]["rank"] == 1)]
    assert len(lines) >= 50
    np.testing.assert_allclose(lines["qx"] - lines["gx"], 7.0, atol=0.01)
    np.testing.assert_allclose(lines["qy"] - lines["gy"], -3.0, atol=0.01)
    assert queue["summary"] == {"keypoint_width": 320, "keypoint_margin": 0.1, "items": 3, "test_photos": 4}


def test_decided_identities_prefer_the_review():
    queue = build_queue(*world())
    model = first_choices(queue["candidates"], queue["photos"])
    reviews = pd.DataFrame(
        [["q2.jpg", "same", "w_a", "ann", "t"], ["q1.jpg", "unsure", "", "bob", "t"]], columns=REVIEW_COLUMNS
    )
    table = decided_identities(["q1.jpg", "q2.jpg", "q3.jpg", "q4.jpg"], reviews, model).set_index("image")
    assert table.loc["q2.jpg"].tolist() == ["w_a", "review:ann", 1.0]
    assert table.loc["q1.jpg"].tolist() == ["w_a", "model (review unsure)", 0.97]
    assert table.loc["q3.jpg", "individual"] == "new_whale" and table.loc["q3.jpg", "decided_by"] == "model"
