"""Edge data sets end with a valid submission: with one known individual the rows hold what exists (new_whale
and that whale), with none every row is `new_whale` alone; the stage's checks pass on both. Materialized in
Dagster from stand-in upstream artifacts, the embedding model an untrained network (what the train stage hands
on when there is nobody to learn)."""

import pandas as pd
import pytest

from assets.identify.checks import beats_frequent_whale_baseline, well_formed
from core.constants import NEW_WHALE
from tests.assets.identify.edge_world import edge_world
from tests.assets.identify.stage_run import no_keypoints, no_outlines, run_stage, untrained_model


def materialize_stage(work, known: set[str]) -> dict:
    world = edge_world(work / "data", known)
    upstream = {
        "raw_images": world["raw_images"],
        "training_manifest": world["training_manifest"],
        "fluke_tensors": world["fluke_tensors"],
        "embedding_model": untrained_model(pd.DataFrame({"epoch": pd.Series(dtype="int64")})),
        "duplicate_groups": world["duplicate_groups"],
        "fluke_keypoints": no_keypoints(world["raw_images"]["images"]),
        "fluke_outlines": no_outlines(world["raw_images"]["images"]),
    }
    result = run_stage(upstream, world["root"], work / "storage")
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    return {"checks": checks, "submission": pd.read_csv(work / "storage" / "submission.csv")}


@pytest.mark.parametrize("known", [{"w_0"}, set()], ids=["one_individual", "all_new_whale"])
def test_edge_data_sets_end_with_a_valid_submission(tmp_path, known):
    found = materialize_stage(tmp_path, known)
    submission, checks = found["submission"], found["checks"]
    assert len(submission) == 9  # 8 test photos and the rejected one
    rows = dict(zip(submission["Image"], submission["Id"].str.split(" ")))
    expected = {NEW_WHALE, *known}
    assert all(set(row) == expected and len(row) == len(expected) for row in rows.values()), rows
    if known:
        assert rows["test0.jpg"][0] == "w_0"  # the duplicate of a w_0 photo names it first
    for name in ("submission_complete", "submission_well_formed", "submission_known_labels"):
        assert checks[name].passed, (name, checks[name].metadata)


@pytest.mark.parametrize(
    "individuals, ids, passed",
    [
        (None, "new_whale w_1 w_2 w_3 w_4", True),
        (None, "new_whale w_1", False),
        (7, "new_whale w_1", False),  # enough individuals exist to fill the row
        (4, "new_whale w_1 w_2 w_3 w_4", True),
        (4, "new_whale w_1 w_2 w_3", False),
        (3, "new_whale w_1 w_2 w_3", True),  # all that exists
        (3, "new_whale w_1 w_2", False),
        (1, "w_0 new_whale", True),
        (1, "new_whale", False),  # w_0 exists and is left out
        (1, "w_0 w_0", False),
        (0, "new_whale", True),
        (0, "new_whale new_whale", False),
        (1, "new_whale w_0 w_a", True),  # a duplicate's alias beside its canonical id may add to a short row
    ],
)
def test_rows_may_be_short_exactly_when_fewer_labels_exist(individuals, ids, passed):
    submission = pd.DataFrame({"Image": ["a.jpg"], "Id": [ids]})
    found = well_formed(submission, individuals)
    assert found["passed"] is passed, found


def test_a_perfect_baseline_can_be_matched_not_beaten():
    def summary(map5, baseline):
        return {"map5": map5, "baselines": {"new_whale_frequent": baseline}}

    assert beats_frequent_whale_baseline(summary(1.0, 1.0))["passed"]
    assert not beats_frequent_whale_baseline(summary(0.6, 0.6))["passed"]
    assert beats_frequent_whale_baseline(summary(0.7, 0.6))["passed"]
