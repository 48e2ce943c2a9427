"""Geometric verification: a warped copy of a pattern keeps its inliers, another pattern does not."""

import cv2
import numpy as np
import pytest

from models.verification import (
    LocalFeatures,
    VerificationSettings,
    count_inliers,
    local_features,
    photos_to_compare,
    rescore,
    verify_candidates,
)

HEIGHT, WIDTH = 128, 256


def blotch_pattern(seed: int) -> np.ndarray:
    """A fluke-like grey crop: dark blotches and scratches on a light shape over darker water (1 x H x W)."""
    rng = np.random.default_rng(seed)
    image = np.full((HEIGHT, WIDTH), 60, np.uint8)
    cv2.fillPoly(image, [np.array([[10, 20], [246, 20], [140, 110], [116, 110]], np.int32)], 200)
    for _ in range(14):
        centre = (int(rng.integers(30, 226)), int(rng.integers(25, 80)))
        axes = (int(rng.integers(3, 12)), int(rng.integers(2, 8)))
        cv2.ellipse(image, centre, axes, float(rng.uniform(0, 180)), 0, 360, int(rng.integers(0, 60)), -1)
    for _ in range(5):
        start = (int(rng.integers(30, 226)), int(rng.integers(25, 80)))
        end = (start[0] + int(rng.integers(-20, 20)), start[1] + int(rng.integers(-10, 10)))
        cv2.line(image, start, end, 250, 1)
    return image[None]


def warped(crop: np.ndarray, shift: float = 8.0) -> np.ndarray:
    """The same pattern seen from a slightly different angle: a perspective warp plus a little noise."""
    source = np.float32([[0, 0], [WIDTH, 0], [WIDTH, HEIGHT], [0, HEIGHT]])
    target = source + np.float32([[shift, 4], [-shift, 6], [-4, -3], [5, -2]])
    matrix = cv2.getPerspectiveTransform(source, target)
    out = cv2.warpPerspective(crop[0], matrix, (WIDTH, HEIGHT), borderMode=cv2.BORDER_REFLECT)
    noise = np.random.default_rng(0).normal(0, 3, out.shape)
    return np.clip(out + noise, 0, 255).astype(np.uint8)[None]


def test_warped_copy_keeps_many_inliers_and_another_pattern_few():
    a, b = blotch_pattern(1), blotch_pattern(2)
    same = count_inliers(local_features(a), local_features(warped(a)))
    other = count_inliers(local_features(a), local_features(b))
    assert same >= 20
    assert other <= 8
    assert same > 3 * max(other, 1)


def test_featureless_crops_have_no_inliers():
    blank = np.full((1, HEIGHT, WIDTH), 128, np.uint8)
    features = local_features(blank)
    assert len(features) == 0
    assert count_inliers(features, local_features(blotch_pattern(1))) == 0
    assert count_inliers(local_features(blotch_pattern(1)), features) == 0


def test_local_features_of_colour_crops_and_their_storage_types():
    grey = blotch_pattern(3)
    colour = np.repeat(grey, 3, axis=0)
    a, b = local_features(grey, max_features=50), local_features(colour, max_features=50)
    assert isinstance(a, LocalFeatures)
    assert 0 < len(a) <= 50 and a.descriptors.dtype == np.uint8 and a.points.dtype == np.float32
    np.testing.assert_array_equal(a.points, b.points)  # a grey crop in three channels is the same crop


def test_rescore_with_weight_zero_keeps_the_embedding_order_and_scores():
    verified = [[("a", 0.9, 2), ("b", 0.8, 40), ("c", 0.7, 0)]]
    assert rescore(verified, 0.0, cap=20) == [[("a", 0.9), ("b", 0.8), ("c", 0.7)]]


def test_rescore_promotes_verified_candidates_and_caps_the_bonus():
    verified = [[("a", 0.9, 2), ("b", 0.8, 40), ("c", 0.7, 25)]]
    (row,) = rescore(verified, 0.02, cap=20)
    assert [label for label, _ in row] == ["b", "c", "a"]
    assert row[0][1] == pytest.approx(0.8 + 0.4)  # 40 inliers count as the cap, 20
    assert row[1][1] == pytest.approx(0.7 + 0.4)
    assert row[2][1] == pytest.approx(0.9 + 0.04)
    # Equal scores keep the embedding's order (stable sort).
    (tied,) = rescore([[("x", 0.5, 10), ("y", 0.5, 10)]], 0.02, cap=20)
    assert [label for label, _ in tied] == ["x", "y"]


def test_photos_to_compare_takes_the_individuals_photos_most_similar_to_the_query():
    gallery = np.eye(4, dtype=np.float32)
    rows_of = {"w": np.array([0, 1, 2, 3])}
    query = np.array([0.1, 0.9, 0.0, 0.5], np.float32)
    np.testing.assert_array_equal(photos_to_compare(query, "w", rows_of, gallery, 2), [1, 3])
    np.testing.assert_array_equal(photos_to_compare(query, "w", rows_of, gallery, 9), [0, 1, 2, 3])


def test_verify_candidates_finds_the_whale_the_embedding_ranked_second():
    patterns = {label: blotch_pattern(seed) for label, seed in (("w_a", 11), ("w_b", 12), ("w_c", 13))}
    gallery_labels = ["w_a", "w_b", "w_b", "w_c"]
    gallery_crops = np.stack(
        [patterns["w_a"], blotch_pattern(99), patterns["w_b"], patterns["w_c"]]
    )  # w_b's first photo shows another pattern: the best of its photos must count
    gallery_embeddings = np.eye(4, dtype=np.float32)
    query_crops = np.stack([warped(patterns["w_b"])])
    query_embeddings = np.array([[0.8, 0.3, 0.6, 0.1]], np.float32)
    candidates = [[("w_a", 0.8), ("w_b", 0.6), ("w_c", 0.1)]]
    settings = VerificationSettings(candidates=3, photos_per_individual=2, workers=2)
    asked = []

    def crops_of(rows):
        asked.append(list(rows))
        return gallery_crops[rows]

    verified = verify_candidates(
        candidates, query_embeddings, query_crops, gallery_embeddings, gallery_labels, crops_of, settings
    )
    (row,) = verified
    assert [label for label, _, _ in row] == ["w_a", "w_b", "w_c"]
    inliers = {label: n for label, _, n in row}
    # Other whales share the fluke outline, so a few chance inliers; the same pattern has many more.
    assert inliers["w_b"] >= 20
    assert inliers["w_b"] > 2 * max(inliers["w_a"], inliers["w_c"])
    assert asked == [[0, 1, 2, 3], [0, 1, 2, 3]]  # digests first, then features of the pairs not cached
    (best,) = rescore(verified, 0.04, settings.inlier_cap)
    assert best[0][0] == "w_b"


def test_verify_candidates_reads_gallery_crops_in_chunks_with_the_same_result(monkeypatch):
    import models.verification as verification

    crops = np.stack([blotch_pattern(seed) for seed in range(5)])
    labels = ["a", "b", "c", "d", "e"]
    query_crops = np.stack([warped(crops[3])])
    args = (
        [[(label, 0.5) for label in labels]],
        np.ones((1, 5), np.float32),
        query_crops,
        np.eye(5, dtype=np.float32),
        labels,
    )
    settings = VerificationSettings(candidates=5, photos_per_individual=1, workers=1)
    whole = verify_candidates(*args, lambda rows: crops[rows], settings)
    monkeypatch.setattr(verification, "CROP_CHUNK", 2)
    asked = []
    chunked = verify_candidates(*args, lambda rows: asked.append(list(rows)) or crops[rows], settings)
    assert asked == [[0, 1], [2, 3], [4]] * 2  # digests, then features
    assert chunked == whole
    assert max(whole[0], key=lambda item: item[2])[0] == "d"


class DictCache:
    def __init__(self):
        self.table: dict[str, int] = {}

    def lookup(self, keys):
        return {key: self.table[key] for key in keys if key in self.table}

    def store(self, inliers):
        self.table.update(inliers)


def test_verified_pairs_are_cached_and_only_new_crops_are_matched_again():
    crops = np.stack([blotch_pattern(seed) for seed in range(4)])
    labels = ["a", "b", "c", "d"]
    queries = np.stack([warped(crops[1]), warped(crops[2])])
    candidates = [[(label, 0.5) for label in labels]] * 2
    settings = VerificationSettings(candidates=4, photos_per_individual=1, workers=2)
    cache, stats = DictCache(), {}

    def run(query_crops, settings=settings):
        return verify_candidates(
            candidates,
            np.ones((2, 4), np.float32),
            query_crops,
            np.eye(4, dtype=np.float32),
            labels,
            lambda rows: crops[rows],
            settings,
            cache=cache,
            stats=stats,
        )

    first = run(queries)
    assert stats == {"pairs": 8, "pairs_from_cache": 0, "crops_with_features": 6} and len(cache.table) == 8
    assert run(queries) == first
    assert stats == {"pairs": 8, "pairs_from_cache": 8, "crops_with_features": 0}
    # A new second photo: its four pairs are matched (its features and the four gallery crops'), the rest reused.
    changed = np.stack([queries[0], warped(crops[3])])
    third = run(changed)
    assert stats == {"pairs": 8, "pairs_from_cache": 4, "crops_with_features": 5}
    assert third[0] == first[0] and max(third[1], key=lambda item: item[2])[0] == "d"
    # Other matching settings are other counts: nothing is reused.
    run(queries, VerificationSettings(candidates=4, photos_per_individual=1, workers=2, max_features=100))
    assert stats["pairs_from_cache"] == 0


def test_verify_candidates_only_checks_the_first_candidates():
    crops = np.stack([blotch_pattern(1), blotch_pattern(2)])
    settings = VerificationSettings(candidates=1, photos_per_individual=1, workers=1)
    verified = verify_candidates(
        [[("a", 0.9), ("b", 0.5)]],
        np.array([[1.0, 0.0]], np.float32),
        crops[:1],
        np.eye(2, dtype=np.float32),
        ["a", "b"],
        lambda rows: crops[rows],
        settings,
    )
    assert [label for label, _, _ in verified[0]] == ["a"]


def test_settings_round_trip_and_ignore_extra_keys():
    settings = VerificationSettings(candidates=7, inlier_cap=9)
    assert VerificationSettings.from_dict({**settings.to_dict(), "weight": 0.04}) == settings
    assert not VerificationSettings(candidates=0).enabled
