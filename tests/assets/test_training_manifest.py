"""training_manifest: duplicates removed, aliases merged, folds deterministic per seed; the dedup chain in Dagster."""

import pandas as pd
from dagster import instance_for_test, materialize

import assets.duplicate_groups as dg
import assets.image_hashes as ih
import assets.raw_images as ri
import assets.training_manifest as tm
from assets.training_manifest import NEW_WHALE, assign_folds, build_training_manifest
from core.resources import ComputeDevice, FlukeData, FlukeStorage
from pipelines.io_managers import ArtifactIOManager


def _groups() -> pd.DataFrame:
    """A duplicate_groups["groups"] table: 12 individuals with 1..4 photos, 10 new_whale photos, and groups
    with removed duplicates (one of them a new_whale copy of w_00, one a test photo)."""
    rows, group = [], 0
    for index in range(12):
        for photo in range(1 + index % 4):
            rows.append((f"id{index:02d}_{photo}.jpg", "train", group, True, f"w_{index:02d}"))
            group += 1
    for photo in range(10):
        rows.append((f"new_{photo}.jpg", "train", group, True, NEW_WHALE))
        group += 1
    # Duplicates of the first photos: never kept; the group's label is the canonical known id.
    rows.append(("copy_of_id00.jpg", "train", 0, False, "w_00"))
    rows.append(("copy_of_id01.jpg", "train", 1, False, "w_01"))
    rows.append(("test_copy.jpg", "test", 1, False, "w_01"))
    rows.append(("test_alone.jpg", "test", group, True, None))
    return pd.DataFrame(rows, columns=["image", "split", "group", "representative", "label"])


def test_one_row_per_group_with_canonical_labels():
    manifest = build_training_manifest(_groups(), seed=0)
    assert list(manifest.columns) == ["image", "label", "fold", "individual_photos"]
    assert manifest["image"].is_unique
    assert not manifest["image"].str.startswith(("copy_of", "test_")).any()
    assert len(manifest) == 30 + 10
    counts = manifest[manifest["label"] != NEW_WHALE]["label"].value_counts()
    known = manifest[manifest["label"] != NEW_WHALE]
    assert (known["individual_photos"] == known["label"].map(counts)).all()
    assert (manifest.loc[manifest["label"] == NEW_WHALE, "individual_photos"] == 1).all()


def test_folds_hold_out_one_photo_per_individual_with_two_or_more():
    manifest = build_training_manifest(_groups(), seed=3, val_individual_share=1.0, val_new_whale_share=0.2)
    known = manifest[manifest["label"] != NEW_WHALE]
    val_per_id = known[known["fold"] == "val"].groupby("label").size()
    multi = known["label"].value_counts()
    assert set(val_per_id.index) == set(multi[multi >= 2].index)
    assert (val_per_id == 1).all()
    singletons = multi[multi == 1].index
    assert (known.loc[known["label"].isin(singletons), "fold"] == "train").all()
    new_whale_val = ((manifest["label"] == NEW_WHALE) & (manifest["fold"] == "val")).sum()
    assert new_whale_val == 2
    assert set(manifest["fold"]) == {"train", "val"}


def test_folds_are_deterministic_per_seed_and_change_with_it():
    groups = _groups()
    first = build_training_manifest(groups, seed=1)
    assert first.equals(build_training_manifest(groups, seed=1))
    assert first.equals(build_training_manifest(groups.sample(frac=1.0, random_state=5), seed=1))
    others = [build_training_manifest(groups, seed=seed) for seed in range(2, 6)]
    assert any(not (other["fold"].to_numpy() == first["fold"].to_numpy()).all() for other in others)


def test_validation_fold_always_holds_known_and_new_whale():
    photos = pd.DataFrame({"image": ["a.jpg", "b.jpg", "c.jpg"], "label": ["w_1", "w_1", NEW_WHALE]})
    folds = assign_folds(photos, seed=0, val_individual_share=0.1, val_new_whale_share=0.01)
    assert folds.tolist().count("val") == 2
    assert folds[2] == "val"
    assert (assign_folds(photos, seed=0, val_individual_share=0.0, val_new_whale_share=0.0) == "train").all()


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
    selection = [
        ri.raw_images,
        ih.image_hashes,
        dg.duplicate_groups,
        tm.training_manifest,
        dg.duplicate_groups_aliases_recorded,
        tm.training_manifest_val_individuals_trained,
    ]
    with instance_for_test() as instance:
        result = materialize(selection, resources=resources, instance=instance, run_config=run_config)
        assert result.success
        checks = result.get_asset_check_evaluations()
        assert len(checks) == 2 and all(check.passed for check in checks)
        events = {
            e.asset_key.to_user_string(): e.materialization.metadata
            for e in result.get_asset_materialization_events()
        }
        assert events["image_hashes"]["from_cache"].value == 0
        assert events["image_hashes"]["reduced_vs_full_max_distance"].value <= 6
        dedup = events["duplicate_groups"]
        assert dedup["truth_precision"].value >= 0.98 and dedup["truth_recall"].value >= 0.95
        assert dedup["duplicate_groups"].value >= 3
        assert "hamming_histogram" in dedup and "duplicate_pairs" in dedup
        manifest_meta = events["training_manifest"]
        assert manifest_meta["val_known"].value > 0 and manifest_meta["val_new_whale"].value > 0

        # Rematerializing hashes finds every photo in the cache.
        again = materialize(
            [ri.raw_images, ih.image_hashes],
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
