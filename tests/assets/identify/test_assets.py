"""The identify stage in Dagster: gallery_index, validation_report and submission materialize from stand-in
upstream artifacts (a small untrained embedding model), with their metadata and checks; the score against the
generator's truth is on a check, not on the submission."""

import pandas as pd
import pytest

from tests.assets.identify.stage_run import no_keypoints, no_outlines, run_stage, untrained_model
from tests.assets.identify.world import duplicate_groups_of_world, make_world, truth_file


def upstream(world: dict) -> dict:
    """The world's artifacts for the assets before this stage."""
    groups = {**duplicate_groups_of_world(), "groups": pd.DataFrame({"image": ["w5_0.jpg"], "group": [0]})}
    return {
        "raw_images": world["raw_images"],
        "training_manifest": world["training_manifest"],
        "fluke_tensors": world["fluke_tensors"],
        "embedding_model": untrained_model(pd.DataFrame({"epoch": [1]})),
        "duplicate_groups": groups,
        "fluke_keypoints": no_keypoints(world["raw_images"]["images"]),
        "fluke_outlines": no_outlines(world["raw_images"]["images"]),
    }


@pytest.fixture(scope="module")
def materialized(tmp_path_factory):
    work = tmp_path_factory.mktemp("identify")
    world = make_world(work / "data")
    truth_file(world)
    result = run_stage(upstream(world), world["root"], work / "storage")
    events = {
        e.asset_key.to_user_string(): e.materialization.metadata
        for e in result.get_asset_materialization_events()
    }
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    return {"events": events, "checks": checks, "storage": work / "storage"}


def test_the_stage_materializes_with_its_metadata(materialized):
    events = materialized["events"]
    gallery = events["gallery_index"]
    assert gallery["gallery_size"].value == 19 and gallery["embedded"].value == 19
    report = events["validation_report"]
    # Keys the UI test, the README and `flukeid outputs` read.
    for key in ("map5", "threshold", "baseline_pixel_nn", "threshold_sweep", "per_rank_plot", "comparison"):
        assert key in report
    assert (
        report["verified_pairs"].value
        == report["verified_pairs_from_cache"].value + report["verified_pairs"].value
    )
    assert "verification_weights" in report
    submission = events["submission"]
    assert submission["rows"].value == 9 and submission["rows_fallback"].value == 1
    assert "test_map5" not in submission  # ground truth stays out of the production asset
    assert (materialized["storage"] / "submission.csv").exists()
    assert (materialized["storage"] / "validation_report" / "summary.json").exists()


def test_the_checks_run_and_the_truth_check_scores(materialized):
    checks = materialized["checks"]
    assert {
        "validation_beats_new_whale_baseline",
        "submission_complete",
        "submission_well_formed",
        "submission_known_labels",
        "submission_matches_generator_truth",
    } <= set(checks)
    for name in ("submission_complete", "submission_well_formed", "submission_known_labels"):
        assert checks[name].passed, name
    truth = checks["submission_matches_generator_truth"]
    assert truth.passed and 0 <= truth.metadata["test_map5"].value <= 1


def test_the_calibrated_decision_is_validated_applied_and_explained(materialized):
    import json

    import pandas as pd

    from assets.identify.decision import MATCH_COLUMNS

    report = materialized["events"]["validation_report"]
    for key in ("calibration_ece", "recall", "recall_plot", "reliability_plot", "recall@20_fused"):
        assert key in report, key
    assert 0.0 <= report["calibration_ece"].value <= 1.0
    summary = json.loads((materialized["storage"] / "validation_report" / "summary.json").read_text())
    decision = summary["decision"]
    assert decision["method"] == "calibrated" and decision["calibrator"]["format"].startswith("flukeid")
    assert decision["exhaustive"]["queries"] >= 1
    submission = materialized["events"]["submission"]
    assert submission["decision"].value == "calibrated"
    matches = pd.read_parquet(materialized["storage"] / "matches.parquet")
    assert list(matches.columns) == MATCH_COLUMNS
    # Five ranks for every test photo the model identified, probabilities in [0, 1].
    assert matches.groupby("image")["rank"].apply(lambda r: sorted(r) == [1, 2, 3, 4, 5]).all()
    assert matches["probability"].between(0, 1).all()
    assert len(pd.read_csv(materialized["storage"] / "matches.csv")) == len(matches)
