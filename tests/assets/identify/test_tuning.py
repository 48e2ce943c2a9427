"""Tuning on the held-out fold: the threshold between known and new whales, and the inlier weight."""

import numpy as np
import pytest

from assets.identify.tuning import choose_verification_weight, evaluate
from core.constants import NEW_WHALE


def test_evaluate_tunes_threshold_between_known_and_new():
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((10, 32)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)

    def near(vectors, noise):
        x = vectors + rng.normal(0, noise, vectors.shape).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    gallery = near(np.repeat(centres, 2, axis=0), 0.05)
    labels = [f"id{i}" for i in range(10) for _ in range(2)]
    strangers = rng.standard_normal((5, 32)).astype(np.float32)
    queries = np.concatenate(
        [near(centres, 0.05), strangers / np.linalg.norm(strangers, axis=1, keepdims=True)]
    )
    truths = [f"id{i}" for i in range(10)] + [NEW_WHALE] * 5
    result = evaluate(gallery, labels, queries, truths, k=10, sweep_points=41)
    assert result.map5 == pytest.approx(1.0)
    assert result.map5_at_no_new_whale < 0.8  # without new_whale the strangers score nothing
    assert result.per_rank["hits"].sum() == 15
    assert result.per_rank["new_whale_share"].iloc[0] == pytest.approx(5 / 15)
    assert len(result.sweep) >= 20


def test_choose_verification_weight_takes_the_weight_that_ranks_verified_whales_first():
    # Two queries whose true whale the embedding ranks second but verification supports; one new whale query
    # whose candidates verification does not support.
    verified = [
        [("a", 0.9, 3), ("b", 0.85, 30), ("c", 0.5, 0)],
        [("c", 0.8, 2), ("a", 0.75, 25), ("b", 0.4, 1)],
        [("b", 0.7, 2), ("c", 0.6, 1), ("a", 0.3, 0)],
    ]
    truths = ["b", "a", NEW_WHALE]
    weight, by_weight = choose_verification_weight(verified, truths, ["a", "b", "c"], [0.0, 0.001, 0.05], 20)
    assert weight == 0.05
    assert by_weight[0.05].map5 == pytest.approx(1.0)
    assert by_weight[0.0].map5 < 1.0
    # Ties go to the smaller weight: with no inliers anywhere every weight scores the same.
    flat = [[(label, sim, 0) for label, sim, _ in row] for row in verified]
    tied, _ = choose_verification_weight(flat, truths, ["a", "b", "c"], [0.05, 0.0, 0.01], 20)
    assert tied == 0.0
    with pytest.raises(ValueError):
        choose_verification_weight(verified, truths, [], [], 20)
