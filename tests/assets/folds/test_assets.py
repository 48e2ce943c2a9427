"""training_manifest in Dagster: the dedup chain up to it materializes, its checks pass, hashes come from cache."""

import pandas as pd
from dagster import instance_for_test, materialize

from core.resources import ComputeDevice, FlukeData, FlukeStorage
from pipelines.definitions import chain_part
from pipelines.io_managers import ArtifactIOManager


def test_dedup_chain_materializes_with_checks(tiny_dataset, tmp_path):
    storage = tmp_path / "storage"
    resources = {
        "data": FlukeData(data_dir=str(tiny_dataset)),
        "storage": FlukeStorage(storage_dir=str(storage)),
        "device": ComputeDevice(device="cpu"),
        "io_manager": ArtifactIOManager(storage_dir=str(storage)),
    }
    run_config = {
        "ops": {
            "image_hashes": {"config": {"workers": 2, "full_decode_sample": 20}},
            "duplicate_groups": {"config": {"workers": 2}},
            "training_manifest": {"config": {"seed": 0}},
        }
    }
    selection = chain_part("raw_images", "image_hashes", "duplicate_groups", "training_manifest")
    with instance_for_test() as instance:
        result = materialize(selection, resources=resources, instance=instance, run_config=run_config)
        assert result.success
        checks = {check.check_name: check for check in result.get_asset_check_evaluations()}
        assert {"duplicate_groups_aliases_recorded", "training_manifest_val_individuals_trained"} <= set(
            checks
        )
        assert all(check.passed for check in checks.values()), [n for n, c in checks.items() if not c.passed]
        events = {
            e.asset_key.to_user_string(): e.materialization.metadata
            for e in result.get_asset_materialization_events()
        }
        assert events["image_hashes"]["from_cache"].value == 0
        assert events["image_hashes"]["reduced_vs_full_max_distance"].value <= 6
        dedup = events["duplicate_groups"]
        # The comparison with the generator's duplicates.csv is a check on duplicate_groups, not the asset's.
        truth = next(c.metadata for c in checks.values() if "truth_precision" in c.metadata)
        assert truth["truth_precision"].value >= 0.98 and truth["truth_recall"].value >= 0.95
        assert dedup["duplicate_groups"].value >= 3
        assert "hamming_histogram" in dedup and "duplicate_pairs" in dedup
        manifest_meta = events["training_manifest"]
        assert manifest_meta["val_known"].value > 0 and manifest_meta["val_new_whale"].value > 0

        # Rematerializing hashes finds every photo in the cache.
        again = materialize(
            chain_part("raw_images", "image_hashes", checks=False),
            resources=resources,
            instance=instance,
            run_config={"ops": {"image_hashes": {"config": {"full_decode_sample": 0}}}},
        )
        hashes_meta = {
            e.asset_key.to_user_string(): e.materialization.metadata
            for e in again.get_asset_materialization_events()
        }["image_hashes"]
        assert hashes_meta["hashed"].value == 0
    manifest = pd.read_parquet(storage / "training_manifest.parquet")
    groups = pd.read_parquet(storage / "duplicate_groups" / "groups.parquet")
    assert len(manifest) == groups.loc[groups["split"] == "train", "group"].nunique()
