"""The dedup stage in Dagster: both assets and their checks materialize; the truth comparison is a check, which
passes saying so on a data folder without the generator's duplicates.csv."""

import shutil

import pytest
from dagster import instance_for_test, materialize

RUN_CONFIG = {
    "ops": {
        "image_hashes": {"config": {"workers": 2, "full_decode_sample": 10}},
        "duplicate_groups": {"config": {"workers": 2}},
    }
}


def _materialize(data_dir, storage_dir):
    # Imported here: loading the whole Definitions is the slow part, and only this test needs it.
    from pipelines.definitions import build_resources, chain_part

    resources = build_resources(data_dir=str(data_dir), storage_dir=str(storage_dir), device="cpu")
    with instance_for_test() as instance:
        result = materialize(
            chain_part("raw_images", "image_hashes", "duplicate_groups"),
            resources=resources,
            run_config=RUN_CONFIG,
            instance=instance,
        )
    assert result.success
    metadata = {
        e.asset_key.to_user_string(): e.materialization.metadata
        for e in result.get_asset_materialization_events()
    }
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    return metadata, checks


@pytest.mark.parametrize("with_truth", [True, False], ids=["truth", "no_truth"])
def test_dedup_assets_and_checks_materialize(real_photo_folder, tmp_path, with_truth):
    data = tmp_path / "data"
    shutil.copytree(real_photo_folder, data)
    if not with_truth:
        (data / "duplicates.csv").unlink()
    metadata, checks = _materialize(data, tmp_path / "storage")
    assert metadata["image_hashes"]["hashed"].value > 0
    assert metadata["image_hashes"]["reduced_vs_full_max_distance"].value <= 6
    dedup = metadata["duplicate_groups"]
    assert dedup["duplicate_groups"].value == 6 and dedup["label_aliases"].value == 1
    assert "hamming_histogram" in dedup and "duplicate_pairs" in dedup
    # Ground truth stays out of the artifact's metadata: it is the check's.
    assert not [key for key in dedup if key.startswith("truth_")]
    assert checks["duplicate_groups_aliases_recorded"].passed
    truth = checks["duplicate_groups_match_generator_truth"]
    assert truth.passed
    if with_truth:
        assert truth.metadata["truth_precision"].value == 1.0 and truth.metadata["truth_recall"].value == 1.0
        assert truth.metadata["truth_true_pairs"].value == truth.metadata["truth_correct_pairs"].value
    else:
        assert truth.metadata["truth_source"].value == "no truth file"
    assert (tmp_path / "storage" / "cache" / "image_hashes" / "hashes.parquet").exists()
    assert (tmp_path / "storage" / "duplicate_groups" / "groups.parquet").exists()
