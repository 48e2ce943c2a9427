"""P x K batch sampling: K photos of each of P individuals, new_whale as negatives only, weights, determinism."""

from collections import Counter

import numpy as np
import pytest

from models.sampler import NEGATIVE, PKBatchSampler, same_label_pair_share


def _classes(photos_per_class: list[int], negatives: int) -> np.ndarray:
    classes = [c for c, n in enumerate(photos_per_class) for _ in range(n)] + [NEGATIVE] * negatives
    return np.random.default_rng(0).permutation(classes)


def test_each_batch_holds_k_photos_of_each_of_p_individuals_and_the_negatives():
    classes = _classes([1, 2, 3, 5, 1, 4, 2, 2, 6, 1, 3], negatives=9)
    sampler = PKBatchSampler(classes, p=4, k=3, negatives_per_batch=2, seed=1)
    batches = list(sampler)
    assert batches
    for batch in batches:
        labels = classes[batch]
        per_class = Counter(labels[labels != NEGATIVE].tolist())
        assert len(per_class) == 4 and set(per_class.values()) == {3}
        assert int((labels == NEGATIVE).sum()) == 2
        for cls in per_class:  # individuals with at least K photos give K distinct ones
            photos = [i for i in batch if classes[i] == cls]
            assert len(set(photos)) == min(3, int((classes == cls).sum()))


def test_batches_differ_between_steps_and_epochs_and_replay_for_the_same_epoch():
    classes = _classes([2] * 20, negatives=10)
    sampler = PKBatchSampler(classes, p=4, k=2, negatives_per_batch=2, seed=3)
    sampler.set_epoch(0)
    first = list(sampler)
    assert all(sorted(a) != sorted(b) for a, b in zip(first, first[1:]))
    sampler.set_epoch(1)
    second = list(sampler)
    assert first != second
    sampler.set_epoch(0)
    assert list(sampler) == first


def test_equal_weights_visit_every_individual_once_per_epoch():
    classes = _classes([1, 2, 3, 1, 1, 2, 2, 4, 1, 1], negatives=0)
    sampler = PKBatchSampler(classes, p=3, k=2)
    seen = Counter()
    for batch in sampler:
        seen.update(set(classes[batch].tolist()))
    # the last batch is topped up with other individuals, so a few appear twice
    assert set(seen) == set(range(10))
    assert sum(seen.values()) == 3 * len(list(sampler))
    assert max(seen.values()) <= 2


def test_raised_weight_makes_an_individual_appear_more_often():
    classes = _classes([2] * 12, negatives=0)
    weights = np.ones(12)
    weights[5] = 4.0
    sampler = PKBatchSampler(classes, p=3, k=2, class_weights=weights)
    appearances = Counter()
    for epoch in range(5):
        sampler.set_epoch(epoch)
        for batch in sampler:
            appearances.update(set(classes[batch].tolist()))
    others = np.mean([appearances[c] for c in range(12) if c != 5])
    assert appearances[5] > 2 * others


def test_negatives_are_never_a_class_and_bad_settings_are_refused():
    classes = _classes([2, 2, 2], negatives=5)
    sampler = PKBatchSampler(classes, p=2, k=2, negatives_per_batch=3)
    assert sampler.num_classes == 3
    with pytest.raises(ValueError):
        sampler.set_class_weights(np.ones(5))


def test_no_class_at_all_gives_an_empty_epoch_instead_of_an_error():
    # Every photo new_whale (no known individual): an epoch has no batch, the chain goes on to a submission.
    sampler = PKBatchSampler(np.full(4, NEGATIVE), p=2, k=2)
    assert list(sampler) == [] and len(sampler) == 1


def test_same_label_pair_share_counts_pairs_of_one_individual_only():
    # two individuals with 2 photos each and two negatives: 2 same-label pairs out of 15
    assert same_label_pair_share(np.array([0, 0, 1, 1, NEGATIVE, NEGATIVE])) == pytest.approx(2 / 15)
    assert same_label_pair_share(np.array([NEGATIVE, NEGATIVE, NEGATIVE])) == 0.0
