"""The val fold weighted to the test set's mix (`assets.identify.mix`)."""

import numpy as np
import pandas as pd
import pytest

from assets.identify.mix import expected_new_whale_share, mix_statistics, mix_weights, query_mix
from core.constants import NEW_WHALE
from core.metrics import map_at_5


def test_known_whales_weigh_their_photos_and_new_whale_its_share():
    truths = ["a", "b", NEW_WHALE, NEW_WHALE]
    weights = mix_weights(truths, [2, 6, 1, 1], new_whale_share=0.5)
    assert weights.mean() == pytest.approx(1.0)
    assert weights[1] / weights[0] == pytest.approx(3.0)
    assert weights[2:].sum() / weights.sum() == pytest.approx(0.5)
    assert weights[2] == pytest.approx(weights[3])


def test_one_kind_of_query_alone_is_weighted_alone():
    assert np.allclose(mix_weights([NEW_WHALE] * 3, [1, 1, 1], 0.3), 1.0)
    known = mix_weights(["a", "b"], [3, 1], 0.3)
    assert known.tolist() == pytest.approx([1.5, 0.5])
    assert np.allclose(mix_weights([NEW_WHALE, NEW_WHALE], [1, 1], 0.0), 1.0)
    assert mix_weights([], [], 0.3).size == 0
    # Every kept train photo new_whale: a known query (none should be left) weighs nothing.
    assert mix_weights(["a", NEW_WHALE], [2, 1], 1.0).tolist() == [0.0, 2.0]


def test_a_share_outside_zero_to_one_or_mismatched_counts_are_refused():
    with pytest.raises(ValueError, match="new_whale_share"):
        mix_weights(["a"], [2], 1.1)
    with pytest.raises(ValueError, match="new_whale_share"):
        mix_weights(["a"], [2], -0.1)
    with pytest.raises(ValueError, match="photo counts"):
        mix_weights(["a", "b"], [2], 0.3)


def test_weighted_map_is_the_weighted_mean_and_refuses_bad_weights():
    rows, truths = [["a"], ["x", "b"]], ["a", "b"]  # APs 1 and 1/2
    assert map_at_5(rows, truths) == pytest.approx(0.75)
    assert map_at_5(rows, truths, [3, 1]) == pytest.approx((3 * 1 + 0.5) / 4)
    for bad in ([1], [1, -1], [0, 0], [1, float("nan")]):
        with pytest.raises(ValueError, match="weights"):
            map_at_5(rows, truths, bad)


def test_weighted_val_scores_what_an_iid_test_set_would_where_unweighted_val_does_not():
    """A population where a query's AP grows with its whale's photos: the val fold (one photo per whale) weighted
    by photos matches the expectation over test photos drawn like train photos; unweighted it is far below."""
    photos = {f"w{i}": n for i, n in enumerate([2] * 30 + [4] * 10 + [20] * 3)}
    ap = {2: 0.3, 4: 0.7, 20: 1.0}
    truths = list(photos)
    counts = [photos[t] for t in truths]
    scores = np.array([ap[n] for n in counts])
    iid_expectation = sum(n * ap[n] for n in counts) / sum(counts)
    weights = mix_weights(truths, counts, new_whale_share=0.0)
    assert np.dot(weights, scores) / weights.sum() == pytest.approx(iid_expectation)
    assert iid_expectation - scores.mean() > 0.15


def test_the_default_share_is_the_kept_train_photos_and_the_mix_is_reported():
    manifest = pd.DataFrame(
        {
            "image": ["a0", "a1", "a2", "a3", "b0", "b1", "n0", "n1", "n2", "n3"],
            "label": ["a"] * 4 + ["b"] * 2 + [NEW_WHALE] * 4,
            "fold": ["val", "train", "train", "train", "val", "train", "val", "train", "train", "train"],
            "individual_photos": [4] * 4 + [2] * 2 + [1] * 4,
        }
    )
    assert expected_new_whale_share(manifest) == pytest.approx(0.4)
    queries = pd.DataFrame({"image": ["a0", "b0", "n0"], "truth": ["a", "b", NEW_WHALE]})
    train_gallery = manifest[(manifest["fold"] == "train") & (manifest["label"] != NEW_WHALE)]
    mix = query_mix(queries, manifest, train_gallery, share=-1.0)
    assert mix.new_whale_share == pytest.approx(0.4)
    stats = mix.statistics
    assert stats["new_whale_share"] == pytest.approx(1 / 3, abs=1e-4)
    assert stats["new_whale_share_weighted"] == pytest.approx(0.4)
    # a's query sees 3 gallery photos, b's 1; a weighs twice as much as b.
    assert stats["known_gallery_photos_mean"] == pytest.approx(2.0)
    assert stats["known_gallery_photos_mean_weighted"] == pytest.approx((2 * 3 + 1 * 1) / 3, abs=1e-3)
    assert stats["known_with_one_gallery_photo"] == 0.5
    figures = mix.figures([["a"], ["x", "x", "b"], [NEW_WHALE]], ["a", "b", NEW_WHALE])
    assert figures["map5_known"] == pytest.approx((2 * 1 + 1 / 3) / 3, abs=1e-6)
    assert figures["map5"] > map_at_5([["a"], ["x", "x", "b"], [NEW_WHALE]], ["a", "b", NEW_WHALE])
    assert query_mix(queries, manifest, train_gallery, share=0.1).new_whale_share == 0.1


def test_mix_statistics_without_known_queries():
    stats = mix_statistics([NEW_WHALE], [0], np.array([1.0]))
    assert stats["new_whale_share"] == 1.0 and stats["known_gallery_photos_mean_weighted"] == 0.0
