"""P(same whale) from evidence, rows ordered by it, and the companion table."""

import numpy as np
import pandas as pd

from assets.identify.calibrated import (
    apply_calibrated,
    exhaustive_baseline,
    recall_table,
    validate_calibrated,
)
from assets.identify.decision import FEATURES, MATCH_COLUMNS, decide, matches_table, same_whale
from assets.identify.matching import MatchGallery, MatchSettings
from core.constants import NEW_WHALE
from core.metrics import map_at_5
from models.calibration import MatchCalibrator
from tests.assets.identify.keypoint_world import keypoint_world


def evidence_frame(rows: list[tuple[int, str, float]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["query", "label", "inliers"])
    for name in FEATURES:
        if name not in frame:
            frame[name] = 0.0
    return frame


def test_rows_follow_the_probabilities_and_new_whale_falls_where_its_probability_does():
    evidence = evidence_frame([(0, "a", 30), (0, "b", 2), (1, "c", 1), (1, "d", 0)])
    probabilities = np.array([0.9, 0.05, 0.1, 0.02])
    rows, new_whale = decide(evidence, probabilities, 3, fill=["x", "y", "z", "a"])
    assert rows[0][:3] == ["a", NEW_WHALE, "b"]  # P(new) = 0.1 * 0.95 lies between a and b
    assert rows[1][0] == NEW_WHALE and rows[1][1:3] == ["c", "d"]
    assert rows[2] == [NEW_WHALE, "x", "y", "z", "a"]  # no evidence at all: new_whale, then the fill
    assert np.isclose(new_whale[0], 0.1 * 0.95) and new_whale[2] == 1.0
    assert all(len(row) == 5 and len(set(row)) == 5 for row in rows)
    last, _ = decide(evidence, probabilities, 3, fill=["x", "y", "z"], new_whale_last=True)
    assert last[1][:2] == ["c", "d"] and last[1].index(NEW_WHALE) == 2


def test_the_companion_table_gives_each_rank_its_probability_and_evidence():
    evidence = evidence_frame([(0, "a", 30), (0, "b", 2)])
    probabilities = np.array([0.9, 0.05])
    rows, _ = decide(evidence, probabilities, 1, fill=["x", "y"])
    table = matches_table(["q.jpg"], evidence, probabilities, rows)
    assert list(table.columns) == MATCH_COLUMNS
    assert table["rank"].tolist() == [1, 2, 3, 4, 5] and table["label"].tolist() == rows[0]
    assert table.loc[0, "probability"] == 0.9 and table.loc[0, "inliers"] == 30
    new_row = table[table["label"] == NEW_WHALE].iloc[0]
    assert np.isclose(new_row["probability"], 0.1 * 0.95) and np.isnan(new_row["inliers"])
    assert (table[table["label"].isin(["x", "y"])]["probability"] == 0.0).all()


def test_validation_fits_a_calibrated_decision_that_the_submission_applies():
    world = keypoint_world(seed=1, whales=10, queries_new=6)
    gallery = MatchGallery(world["gallery_features"], world["gallery_labels"], world["gallery_embeddings"])
    settings, truths = MatchSettings(candidates=5, photos=2, workers=2), world["truths"]
    fill = ["w_0", "w_1", "w_2", "w_3"]
    run = validate_calibrated(
        world["query_features"], world["query_embeddings"], gallery, truths, fill, settings
    )
    assert run.calibrator.fitted and run.calibration.same_pairs == 10
    assert (
        map_at_5(run.rows, truths) > 0.9
    )  # out-of-fold probabilities: no query scored by a model that saw it
    assert 0.0 <= run.calibration.ece <= 0.2 and run.calibration.reliability["pairs"].sum() == len(
        run.probabilities
    )
    assert np.mean([row[0] == NEW_WHALE for row in run.rows]) > 0.2
    recall = recall_table(run.matching, truths).set_index("generator")
    assert recall.loc["keypoint votes", "recall@1"] == 1.0
    # The calibrator travels as JSON; applied to the same queries it gives the same kind of rows.
    calibrator = MatchCalibrator.from_dict(run.calibrator.to_dict())
    applied = apply_calibrated(
        world["query_features"], world["query_embeddings"], gallery, calibrator, fill, settings
    )
    assert np.allclose(
        applied.probabilities, run.calibrator.predict(run.matching.evidence[FEATURES].to_numpy())
    )
    assert map_at_5(applied.rows, truths) >= map_at_5(run.rows, truths) - 0.05
    assert same_whale(run.matching.evidence, truths).sum() == 10


def test_the_exhaustive_matcher_scores_a_sample_of_queries_against_every_gallery_photo():
    world = keypoint_world(seed=2, whales=5, queries_new=3)
    gallery = MatchGallery(world["gallery_features"], world["gallery_labels"], world["gallery_embeddings"])
    rows = [[t, "w_0", "w_1", "w_2", "w_3"] for t in world["truths"]]
    baseline = exhaustive_baseline(
        world["query_features"], gallery, world["truths"], rows, ["w_0"], MatchSettings(), sample=4
    )
    assert baseline.queries == 4 and baseline.pairs == 4 * len(gallery.labels)
    assert baseline.chain_map5 == 1.0 and 0.5 <= baseline.map5 <= 1.0 and baseline.seconds_per_query > 0
    assert (
        exhaustive_baseline(world["query_features"], gallery, world["truths"], rows, [], MatchSettings(), 0)
        is None
    )
