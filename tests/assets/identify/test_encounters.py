"""Pooling an encounter's evidence (assets/identify/encounters.py): the photos of one encounter get the labels
their evidence supports together, photos outside encounters keep their rows, probabilities stay in [0, 1], and
the calibrated path on keypoint photos lets a clear photo carry one without keypoints."""

import numpy as np
import pandas as pd
import pytest

from assets.identify.calibrated import apply_calibrated, validate_calibrated
from assets.identify.decision import FEATURES, decide, matches_table
from assets.identify.encounters import (
    DEFAULT_RULE,
    POOLING_RULES,
    encounter_groups,
    pool_encounters,
    pool_probabilities,
    pooled_run,
)
from assets.identify.matching import MatchGallery, MatchSettings
from core.constants import NEW_WHALE
from models.verification import EMPTY
from tests.assets.identify.keypoint_world import keypoint_world

FILL = ["f1", "f2", "f3", "f4", "f5"]


def evidence_frame(rows: list[tuple[int, str, float]]) -> tuple[pd.DataFrame, np.ndarray]:
    """(evidence with `inliers` set per row and the other features 0, P(same) per row)."""
    frame = pd.DataFrame([(q, label) for q, label, _ in rows], columns=["query", "label"])
    for name in ["fused_rank", *FEATURES]:
        frame[name] = 0.0
    frame["inliers"] = np.arange(len(rows), dtype=float) + 10
    return frame, np.array([p for _, _, p in rows])


# Query 0: a clear photo of w_a. Query 1: the same whale, a poor photo: w_a missing, a weak wrong w_b. Query 2:
# a photo of another whale, in no encounter. Query 3: no evidence at all, in the encounter of 0 and 1.
DISAGREEING = [(0, "w_a", 0.95), (0, "w_c", 0.05), (1, "w_b", 0.4), (1, "w_c", 0.1), (2, "w_d", 0.7)]


@pytest.mark.parametrize("rule", POOLING_RULES)
def test_an_encounter_whose_photos_disagree_gets_the_label_the_evidence_supports(rule):
    evidence, p = evidence_frame(DISAGREEING)
    alone, _ = decide(evidence, p, 4, FILL)
    assert alone[0][0] == "w_a" and alone[1][0] == NEW_WHALE and alone[1][1] == "w_b"  # the poor photo alone
    pooled = pool_encounters(evidence, p, [[0, 1, 3]], rule)
    rows, new_whale = decide(pooled.evidence, pooled.probabilities, 4, FILL)
    assert rows[0] == rows[1] == rows[3], "every photo of the encounter gets the same five labels"
    assert rows[1][0] == "w_a", f"{rule}: the clear photo's whale wins over the poor photo's guess"
    assert new_whale[0] == new_whale[1] == new_whale[3] < 0.5
    assert (pooled.encounters, pooled.photos) == (1, 3)


@pytest.mark.parametrize("rule", POOLING_RULES)
def test_photos_outside_encounters_keep_their_rows_probabilities_and_evidence(rule):
    evidence, p = evidence_frame(DISAGREEING)
    before_rows, before_new = decide(evidence, p, 4, FILL)
    pooled = pool_encounters(evidence, p, [[0, 1]], rule)
    after_rows, after_new = decide(pooled.evidence, pooled.probabilities, 4, FILL)
    assert after_rows[2] == before_rows[2] and after_new[2] == before_new[2]
    assert after_rows[3] == before_rows[3] == [NEW_WHALE, *FILL[:4]]  # no evidence, in no encounter
    outside = pooled.evidence["query"] == 2
    assert pooled.probabilities[outside.to_numpy()].tolist() == [0.7]
    pd.testing.assert_frame_equal(
        pooled.evidence[outside].reset_index(drop=True),
        evidence[evidence["query"] == 2].reset_index(drop=True),
    )
    unpooled = pool_encounters(evidence, p, [], rule)
    assert unpooled.evidence is evidence and np.array_equal(unpooled.probabilities, p)


def test_a_pooled_row_keeps_the_photos_own_evidence_and_none_it_does_not_have():
    evidence, p = evidence_frame(DISAGREEING)
    pooled = pool_encounters(evidence, p, [[0, 1]])
    rows = pooled.evidence.assign(p=pooled.probabilities)
    poor = rows[rows["query"] == 1].set_index("label")
    assert set(poor.index) == {"w_a", "w_b", "w_c"}
    assert poor.at["w_b", "inliers"] == 12 and np.isnan(poor.at["w_a", "inliers"])
    assert poor.at["w_a", "p"] == pytest.approx(0.95)  # max: the clear photo's probability
    decided, _ = decide(pooled.evidence, pooled.probabilities, 4, FILL)
    table = matches_table(["a", "b", "c", "d"], pooled.evidence, pooled.probabilities, decided)
    first = table[(table["image"] == "b") & (table["rank"] == 1)].iloc[0]
    assert (
        first["label"] == "w_a" and first["probability"] == pytest.approx(0.95) and np.isnan(first["inliers"])
    )


@pytest.mark.parametrize("rule", POOLING_RULES)
def test_pooled_probabilities_stay_in_zero_to_one(rule):
    rng = np.random.default_rng(0)
    extremes = [0.0, 1.0, 1e-12, 1 - 1e-12]
    for _ in range(50):
        photos = [
            {f"w_{j}": float(rng.choice([*extremes, rng.random()])) for j in rng.choice(6, 3, replace=False)}
            for _ in range(int(rng.integers(1, 5)))
        ]
        pooled = pool_probabilities(photos, rule)
        assert pooled and all(0.0 <= value <= 1.0 for value in pooled.values())
        assert set(pooled) == {label for photo in photos for label in photo}
    assert pool_probabilities([{}, {}], rule) == {}


def test_each_rule_combines_as_documented():
    photos = [{"a": 0.9, "b": 0.2}, {"a": 0.5}]
    assert pool_probabilities(photos, "max") == {"a": 0.9, "b": 0.2}
    noisy = pool_probabilities(photos, "noisy_or")
    assert noisy["a"] == pytest.approx(1 - 0.1 * 0.5) and noisy["b"] == pytest.approx(0.2)
    logit = lambda x: np.log(x / (1 - x))  # noqa: E731
    mean = pool_probabilities(photos, "mean_log_odds")
    assert logit(mean["a"]) == pytest.approx((logit(0.9) + logit(0.5)) / 2)
    # b is missing from the second photo: it counts there at that photo's lowest candidate (0.5)
    assert logit(mean["b"]) == pytest.approx((logit(0.2) + logit(0.5)) / 2)
    assert DEFAULT_RULE in POOLING_RULES
    with pytest.raises(ValueError, match="rule"):
        pool_probabilities(photos, "vote")


def test_encounter_groups_hold_two_or_more_queries_of_the_split():
    encounters = pd.DataFrame(
        {
            "image": ["q1", "q2", "q3", "t1", "q4", "gone", "q5", "q6"],
            "split": ["test", "test", "test", "train", "test", "test", "test", "test"],
            "encounter": ["e1", "e1", "e2", "e2", "e3", "e3", "e4", "e4"],
            "source": ["file"] * 6 + ["exif"] * 2,
        }
    )
    images = ["q6", "q1", "q2", "q3", "q4", "q5"]
    assert encounter_groups(images, encounters) == [[0, 5], [1, 2]]  # e2: one test query; e3: one found
    assert encounter_groups(images, None) == [] and encounter_groups(images, encounters.iloc[:0]) == []


def test_the_calibrated_path_lets_a_clear_photo_carry_one_without_keypoints():
    world = keypoint_world(seed=3, whales=6, queries_new=2)
    gallery = MatchGallery(world["gallery_features"], world["gallery_labels"], world["gallery_embeddings"])
    settings, fill = MatchSettings(candidates=5, photos=2, workers=1), ["w_0", "w_1", "w_2", "w_3"]
    fitted = validate_calibrated(
        world["query_features"], world["query_embeddings"], gallery, world["truths"], fill, settings
    )
    # The queries again, and one more photo of w_2 with no keypoints and an embedding pointing elsewhere.
    features = [*world["query_features"], EMPTY]
    embeddings = np.vstack([world["query_embeddings"], world["query_embeddings"][-1:]])
    images = [f"q{i}.jpg" for i in range(len(features))]
    run = apply_calibrated(features, embeddings, gallery, fitted.calibrator, fill, settings)
    blind = len(features) - 1
    assert run.rows[2][0] == "w_2" and run.rows[blind][0] != "w_2", "alone, the blind photo misses w_2"
    encounters = pd.DataFrame(
        {"image": ["q2.jpg", images[blind]], "split": "test", "encounter": "boat", "source": "file"}
    )
    pooled = pooled_run(run, images, encounters, fill)
    assert pooled.rows[blind] == pooled.rows[2] and pooled.rows[blind][0] == "w_2"
    others = [q for q in range(len(images)) if q not in (2, blind)]
    assert [pooled.rows[q] for q in others] == [run.rows[q] for q in others]
    assert np.allclose(pooled.new_whale[others], run.new_whale[others])
    assert ((pooled.probabilities >= 0) & (pooled.probabilities <= 1)).all()
    assert pooled.matching.stats["encounters_pooled"] == 1
    assert pooled.matching.stats["encounter_photos_pooled"] == 2
    untouched = pooled_run(run, images, None, fill)
    assert untouched.rows == run.rows and untouched.matching.stats["encounters_pooled"] == 0
