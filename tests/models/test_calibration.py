"""P(same whale) calibration, its measures, its JSON form and the row it implies, on synthetic pairs."""

import json

import numpy as np
import pytest

from core.constants import NEW_WHALE
from models.calibration import (
    MatchCalibrator,
    cross_validated_probabilities,
    expected_calibration_error,
    new_whale_probability,
    rank_with_new_whale,
    reliability_table,
)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def synthetic_pairs(count: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x ~ N(0.5, 1.5); P(same | x) = sigmoid(2x - 1) exactly; a second column of pure noise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.5, 1.5, count)
    truth = sigmoid(2 * x - 1)
    same = rng.random(count) < truth
    return np.column_stack([x, rng.normal(size=count)]), same, truth


def test_fitted_probabilities_match_the_truth_and_are_calibrated_on_held_out_pairs():
    features, same, _ = synthetic_pairs(6000, seed=1)
    model = MatchCalibrator.fit(features, same, feature_names=["evidence", "noise"])
    assert model.fitted and model.pairs == 6000
    held_out, held_same, held_truth = synthetic_pairs(20000, seed=2)
    predicted = model.predict(held_out)
    assert np.abs(predicted - held_truth).max() < 0.05
    assert expected_calibration_error(predicted, held_same) < 0.03
    # the slope in the original units is 2: coefficient / scale
    assert model.coefficients[0] / model.scales[0] == pytest.approx(2.0, rel=0.1)


def test_a_miscalibrated_probability_has_a_large_error():
    _, same, truth = synthetic_pairs(20000, seed=3)
    assert expected_calibration_error(truth, same) < 0.02
    overconfident = np.where(truth > 0.5, 0.99, 0.01)
    assert expected_calibration_error(overconfident, same) > 0.1
    assert expected_calibration_error(truth**4, same) > 0.1


def test_reliability_table():
    prob = np.array([0.05, 0.05, 0.15, 0.95, 1.0])
    same = np.array([False, True, False, True, True])
    table = reliability_table(prob, same, bins=10)
    assert list(table.columns) == ["bin", "lower", "upper", "mean_probability", "observed_share", "pairs"]
    assert len(table) == 10 and table.pairs.sum() == 5
    assert table.loc[0, "observed_share"] == 0.5 and table.loc[0, "mean_probability"] == pytest.approx(0.05)
    assert table.loc[9, "pairs"] == 2 and table.loc[9, "mean_probability"] == pytest.approx(0.975)  # 1.0 kept
    assert table.loc[5, "pairs"] == 0 and np.isnan(table.loc[5, "observed_share"])
    expected = (2 * abs(0.05 - 0.5) + abs(0.15 - 0) + 2 * abs(0.975 - 1)) / 5
    assert expected_calibration_error(prob, same) == pytest.approx(expected)
    assert expected_calibration_error([], []) == 0.0


def test_cross_validated_probabilities_keep_a_query_together():
    features, same, truth = synthetic_pairs(3000, seed=4)
    groups = np.arange(3000) // 10  # 300 queries of 10 pairs
    held_out = cross_validated_probabilities(features, same, groups, folds=5)
    assert held_out.shape == (3000,) and np.abs(held_out - truth).mean() < 0.03
    assert expected_calibration_error(held_out, same) < 0.05
    # one query: nothing to hold out, the in-sample fit is returned
    one = cross_validated_probabilities(features[:50], same[:50], np.zeros(50))
    assert one.shape == (50,) and ((one >= 0) & (one <= 1)).all()


def test_the_json_form_predicts_identically():
    features, same, _ = synthetic_pairs(2000, seed=5)
    features = np.column_stack(
        [features, np.abs(features[:, 0]) * 10, np.full(2000, 3.0)]
    )  # a count, a constant
    names = ["evidence", "noise", "inliers", "constant"]
    model = MatchCalibrator.fit(features, same, feature_names=names, transforms={"inliers": "log1p"})
    text = json.dumps(model.to_dict())
    again = MatchCalibrator.from_dict(json.loads(text))
    assert again == model and again.transforms == ["identity", "identity", "log1p", "identity"]
    assert np.array_equal(again.predict(features), model.predict(features))
    assert np.isfinite(model.predict(features)).all() and model.scales[3] == 1.0
    with pytest.raises(ValueError, match="unknown"):
        MatchCalibrator.fit(features, same, feature_names=names, transforms={"inliers": "cube"})
    with pytest.raises(ValueError, match="format"):
        MatchCalibrator.from_dict({"feature_names": []})


def test_one_class_gives_the_base_rate_without_fitting():
    features = np.random.default_rng(6).normal(size=(30, 3))
    for same, rate in ((np.zeros(30, bool), 0.0), (np.ones(30, bool), 1.0)):
        model = MatchCalibrator.fit(features, same)
        assert not model.fitted and model.base_rate == rate
        assert np.array_equal(model.predict(features[:4]), np.full(4, rate))
        assert (
            MatchCalibrator.from_dict(json.loads(json.dumps(model.to_dict()))).predict(features[:2]).tolist()
            == [rate] * 2
        )
    empty = MatchCalibrator.fit(np.zeros((0, 3)), np.zeros(0, bool))
    assert not empty.fitted and empty.predict(np.zeros((2, 3))).tolist() == [0.0, 0.0]
    # folds whose training part is one class are no crash either
    assert (
        cross_validated_probabilities(features, np.zeros(30, bool), np.arange(30) // 3).tolist() == [0.0] * 30
    )


def test_missing_evidence_is_refused():
    with pytest.raises(ValueError, match="NaN"):
        MatchCalibrator.fit(np.array([[np.nan], [1.0]]), [True, False])


def test_new_whale_probability():
    assert new_whale_probability([]) == 1.0
    assert new_whale_probability([0.5, 0.5]) == pytest.approx(0.25)
    assert new_whale_probability([0.9, 0.2]) <= 1 - 0.9
    assert new_whale_probability([0.5, 0.5], rule="sum") == 0.0
    assert new_whale_probability([0.3, 0.2], rule="sum") == pytest.approx(0.5)
    with pytest.raises(ValueError):
        new_whale_probability([0.1], rule="max")


def test_rank_with_new_whale_orders_by_probability_and_fills_to_five():
    candidates = [("b", 0.2), ("a", 0.7), ("c", 0.05), ("b", 0.3)]
    fill = ["a", "f1", NEW_WHALE, "f2", "f3", "f4"]
    row = rank_with_new_whale(candidates, 0.25, fill)
    assert row == ["a", "b", NEW_WHALE, "c", "f1"]
    assert rank_with_new_whale(candidates, 0.9, fill) == [NEW_WHALE, "a", "b", "c", "f1"]
    assert rank_with_new_whale(candidates, 0.0, fill) == ["a", "b", "c", NEW_WHALE, "f1"]
    assert rank_with_new_whale([], 0.5, fill) == [NEW_WHALE, "a", "f1", "f2", "f3"]
    many = [(f"w{i}", 0.5 - i / 100) for i in range(8)]
    assert NEW_WHALE not in rank_with_new_whale(many, 0.1, fill)
    for row in (rank_with_new_whale(candidates, p, fill) for p in (0.0, 0.25, 0.9)):
        assert len(row) == 5 and len(set(row)) == 5
    assert rank_with_new_whale([("a", 0.5), (NEW_WHALE, 0.9)], 0.1, [], top=5) == ["a", NEW_WHALE]


def test_integer_weights_fit_as_repeated_pairs_would_and_move_the_base_rate():
    features, same, _ = synthetic_pairs(800, seed=5)
    repeats = np.where(same, 3, 1)  # the same-whale pairs weigh three times
    weighted = MatchCalibrator.fit(features, same, weights=repeats.astype(float))
    repeated = MatchCalibrator.fit(np.repeat(features, repeats, axis=0), np.repeat(same, repeats))
    grid = np.column_stack([np.linspace(-3, 4, 15), np.zeros(15)])
    # Standardisation uses the unweighted columns, so regularisation differs slightly: close, not equal.
    assert np.abs(weighted.predict(grid) - repeated.predict(grid)).max() < 0.02
    assert weighted.base_rate == pytest.approx(np.repeat(same, repeats).mean())
    unweighted = MatchCalibrator.fit(features, same)
    assert (weighted.predict(grid) > unweighted.predict(grid)).all()
    with pytest.raises(ValueError, match="weights"):
        MatchCalibrator.fit(features, same, weights=np.ones(3))
    with pytest.raises(ValueError, match="weights"):
        MatchCalibrator.fit(features, same, weights=-np.ones(len(same)))


def test_cross_validated_probabilities_carry_each_pairs_weight_into_its_folds():
    features, same, _ = synthetic_pairs(600, seed=6)
    groups = np.arange(600) // 6
    plain = cross_validated_probabilities(features, same, groups)
    heavier_same = cross_validated_probabilities(features, same, groups, weights=np.where(same, 4.0, 1.0))
    assert heavier_same.mean() > plain.mean() + 0.05
