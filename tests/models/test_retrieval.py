"""MAP@5, the ranking rule, indexes and the threshold sweep, on hand-made numbers."""

import numpy as np
import pandas as pd
import pytest

from core.constants import NEW_WHALE
from core.metrics import map_at_5, rank_statistics
from models.retrieval import (
    build_index,
    choose_threshold,
    exact_index,
    index_from_bytes,
    index_to_bytes,
    individual_candidates,
    most_frequent_labels,
    place_new_whale,
    rank_individuals,
    search,
    sweep_thresholds,
    threshold_sweep,
    tune_threshold,
)


def kaggle_apk(actual: list[str], predicted: list[str], k: int = 5) -> float:
    """Independent MAP@k term, as in the `ml_metrics` package Kaggle's metric is taken from."""
    if len(predicted) > k:
        predicted = predicted[:k]
    score, hits = 0.0, 0.0
    for i, p in enumerate(predicted):
        if p in actual and p not in predicted[:i]:
            hits += 1.0
            score += hits / (i + 1.0)
    return score / min(len(actual), k) if actual else 0.0


# ---------------------------------------------------------------------------------------------------------------
# MAP@5


@pytest.mark.parametrize(
    ("row", "truth", "expected"),
    [
        (["a", "b", "c", "d", "e"], "a", 1.0),
        (["a", "b", "c", "d", "e"], "c", 1 / 3),
        (["a", "b", "c", "d", "e"], "e", 1 / 5),
        (["a", "b", "c", "d", "e"], "z", 0.0),
        (["a", "a", "a", "a", "a"], "a", 1.0),  # the evaluation page's own examples
        (["a", "b", "a", "c", "a"], "a", 1.0),
        (["a", "a", "b", "c", "d"], "b", 1 / 3),  # a repeat still takes its position
        (["a", "b", "c", "d", "e", "f"], "f", 0.0),  # only the first five count
        (["a", "b"], "b", 1 / 2),  # short rows are allowed
        ([], "a", 0.0),
    ],
)
def test_map_at_5_hand_worked(row, truth, expected):
    assert map_at_5([row], [truth]) == pytest.approx(expected)


def test_map_at_5_averages_rows():
    rows = [["a", "b", "c", "d", "e"], ["new_whale", "x", "y", "z", "w"], ["p", "q", "r", "s", "t"]]
    assert map_at_5(rows, ["b", "new_whale", "zz"]) == pytest.approx((0.5 + 1.0 + 0.0) / 3)


def test_map_at_5_matches_independent_implementation():
    rng = np.random.default_rng(0)
    alphabet = list("abcdefgh")
    rows = [list(rng.choice(alphabet, size=rng.integers(1, 8))) for _ in range(500)]
    truths = list(rng.choice(alphabet, size=500))
    expected = np.mean([kaggle_apk([t], r) for r, t in zip(rows, truths)])
    assert map_at_5(rows, truths) == pytest.approx(expected)
    assert 0.1 < expected < 0.9  # the random case exercises hits at several ranks and misses


def test_map_at_5_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="2 prediction rows for 1 truths"):
        map_at_5([["a"], ["b"]], ["a"])


# ---------------------------------------------------------------------------------------------------------------
# the ranking rule

LABELS = ["A", "A", "B", "C", "D", "E", "F", NEW_WHALE]


def test_rank_aggregates_to_best_similarity_per_individual():
    sims = np.array([[0.9, 0.85, 0.8, 0.7, 0.6, 0.5, 0.4]])
    ids = np.array([[0, 1, 2, 3, 4, 5, 6]])  # A twice: counted once
    assert rank_individuals(sims, ids, LABELS, threshold=0.0) == [["A", "B", "C", "D", "E"]]
    assert individual_candidates(sims, ids, LABELS)[0][:2] == [
        ("A", pytest.approx(0.9)),
        ("B", pytest.approx(0.8)),
    ]


@pytest.mark.parametrize(
    ("threshold", "expected"),
    [
        (0.95, [NEW_WHALE, "A", "B", "C", "D"]),  # nothing is close: new_whale first
        (0.82, ["A", NEW_WHALE, "B", "C", "D"]),  # goes in front of the first individual below it
        (0.65, ["A", "B", "C", NEW_WHALE, "D"]),
        (0.55, ["A", "B", "C", "D", NEW_WHALE]),
        (0.10, ["A", "B", "C", "D", "E"]),  # everything is close: no room left for new_whale
    ],
)
def test_rank_places_new_whale_by_threshold(threshold, expected):
    sims = np.array([[0.9, 0.8, 0.7, 0.6, 0.5]])
    ids = np.array([[0, 2, 3, 4, 5]])
    assert rank_individuals(sims, ids, LABELS, threshold=threshold) == [expected]


def test_rank_skips_new_whale_gallery_photos_and_fills_short_rows():
    sims = np.array([[0.9, 0.8, 0.7, -np.inf]])
    ids = np.array([[7, 0, 1, -1]])  # a new_whale photo, A twice, then faiss ran out of gallery
    rows = rank_individuals(sims, ids, LABELS, threshold=0.1, fill_labels=["A", "Z", "Y", "X"])
    assert rows == [["A", NEW_WHALE, "Z", "Y", "X"]]
    assert all(len(set(row)) == 5 for row in rows)


def test_rank_and_sweep_path_agree():
    rng = np.random.default_rng(3)
    labels = [f"id{i % 40}" for i in range(200)]
    sims = np.sort(rng.uniform(0, 1, size=(60, 30)), axis=1)[:, ::-1]
    ids = rng.integers(0, 200, size=(60, 30))
    for threshold in (0.3, 0.8, 0.95):
        direct = rank_individuals(sims, ids, labels, threshold, fill_labels=["id0", "id1"])
        two_step = place_new_whale(
            individual_candidates(sims, ids, labels), threshold, fill_labels=["id0", "id1"]
        )
        assert direct == two_step


def test_most_frequent_labels_ignores_new_whale_and_breaks_ties_by_name():
    labels = ["b", "a", NEW_WHALE, NEW_WHALE, NEW_WHALE, "c", "c", "b", "a"]
    assert most_frequent_labels(labels, 3) == ["a", "b", "c"]
    assert most_frequent_labels([NEW_WHALE]) == []


# ---------------------------------------------------------------------------------------------------------------
# threshold sweep and statistics


def test_sweep_finds_the_threshold_separating_known_from_new():
    # Known queries match their individual at 0.9; new_whale queries' best match is at 0.4. Any threshold
    # between 0.4 and 0.9 gives a perfect score; the chosen one must be in that gap.
    candidates = [
        [("A", 0.9), ("B", 0.3)],
        [("B", 0.92), ("A", 0.2)],
        [("A", 0.4), ("B", 0.35)],
        [("B", 0.41)],
    ]
    truths = ["A", "B", NEW_WHALE, NEW_WHALE]
    thresholds = sweep_thresholds(candidates, points=50)
    assert thresholds.min() < 0.2 and thresholds.max() > 0.92
    sweep = threshold_sweep(candidates, truths, thresholds)
    assert list(sweep.columns) == ["threshold", "map5", "new_whale_first_share"]
    assert sweep["map5"].max() == pytest.approx(1.0)
    chosen = choose_threshold(sweep)
    assert 0.41 < chosen <= 0.9
    assert map_at_5(place_new_whale(candidates, chosen), truths) == pytest.approx(1.0)
    # Extremes: above everything new_whale is always first; below everything it is never above a candidate.
    top = sweep.sort_values("threshold").iloc[-1]
    assert top["new_whale_first_share"] == 1.0 and top["map5"] == pytest.approx((0.5 + 0.5 + 1 + 1) / 4)


def test_the_one_tuner_is_the_sweep_then_the_choice():
    candidates = [
        [("A", 0.9), ("B", 0.3)],
        [("B", 0.92), ("A", 0.2)],
        [("A", 0.4), ("B", 0.35)],
        [("B", 0.41)],
    ]
    truths = ["A", "B", NEW_WHALE, NEW_WHALE]
    threshold, sweep = tune_threshold(candidates, truths, ["A", "B"], points=21)
    expected = threshold_sweep(candidates, truths, sweep_thresholds(candidates, 21), ["A", "B"])
    pd.testing.assert_frame_equal(sweep, expected)
    assert threshold == choose_threshold(expected) and 0.41 < threshold <= 0.9


def test_choose_threshold_prefers_the_middle_of_the_longest_best_run():
    sweep = pd.DataFrame(
        {"threshold": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7], "map5": [0.5, 0.8, 0.6, 0.8, 0.8, 0.8, 0.4]}
    )
    assert choose_threshold(sweep) == pytest.approx(0.5)


def test_rank_statistics_counts_first_hits_and_new_whale_share():
    rows = [["A", NEW_WHALE, "B", "C", "D"], [NEW_WHALE, "A", "B", "C", "D"], ["B", "B", "A", "C", "D"]]
    stats = rank_statistics(rows, ["A", "A", "A"])
    assert stats["hits"].tolist() == [1, 1, 1, 0, 0]
    assert stats["new_whale_share"].tolist() == pytest.approx([1 / 3, 1 / 3, 0, 0, 0])
    assert stats["cumulative_hit_share"].iloc[-1] == pytest.approx(1.0)
    without_truth = rank_statistics(rows)
    assert "hits" not in without_truth and len(without_truth) == 5


# ---------------------------------------------------------------------------------------------------------------
# indexes


def unit_rows(rng, count, dim=16):
    x = rng.standard_normal((count, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("index_type", ["flat", "hnsw", "ivf"])
def test_index_types_find_the_exact_neighbours_and_survive_serialisation(index_type):
    rng = np.random.default_rng(1)
    gallery, queries = unit_rows(rng, 800), unit_rows(rng, 40)
    exact_sims, exact_ids = search(exact_index(gallery), queries, 5)
    # Exactness of the brute force itself: compare with numpy.
    assert (exact_ids[:, 0] == np.argmax(queries @ gallery.T, axis=1)).all()
    options = {"ivf_lists": 8, "ivf_probe": 8} if index_type == "ivf" else {}
    index = index_from_bytes(index_to_bytes(build_index(gallery, index_type, **options)))
    sims, ids = search(index, queries, 5)
    recall = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(ids, exact_ids)])
    assert recall >= 0.95
    assert np.allclose(sims[:, 0], exact_sims[:, 0], atol=1e-5)


def test_search_clamps_k_to_the_gallery_and_rejects_unknown_types():
    rng = np.random.default_rng(2)
    sims, ids = search(exact_index(unit_rows(rng, 3)), unit_rows(rng, 2), 50)
    assert ids.shape == (2, 3) and (ids >= 0).all()
    assert (np.diff(sims, axis=1) <= 1e-6).all()  # best first
    with pytest.raises(ValueError, match="index_type"):
        build_index(unit_rows(rng, 3), "annoy")
