"""The keypoints stage materialized through Dagster: stored parts, its check, its metadata, its cache."""

import json
import shutil

import numpy as np
import pandas as pd
from dagster import instance_for_test, materialize

from core.resources import ComputeDevice, FlukeData, FlukeStorage
from pipelines.definitions import chain_part
from pipelines.io_managers import ArtifactIOManager


def test_keypoints_stage_materializes_and_reuses_its_cache(tiny_dataset, tmp_path):
    # No annotations: no detector, every photo falls back to its whole frame, whose keypoints are taken.
    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data, ignore=shutil.ignore_patterns("annotations"))
    storage = tmp_path / "storage"
    resources = {
        "data": FlukeData(data_dir=str(data)),
        "storage": FlukeStorage(storage_dir=str(storage)),
        "device": ComputeDevice(device="cpu"),
        "io_manager": ArtifactIOManager(storage_dir=str(storage)),
    }
    run_config = {"ops": {"fluke_keypoints": {"config": {"width": 128, "max_features": 100, "workers": 2}}}}
    part = chain_part("raw_images", "fluke_detector", "fluke_boxes", "fluke_keypoints")
    with instance_for_test() as instance:
        result = materialize(part, resources=resources, instance=instance, run_config=run_config)
        assert result.success
        checks = {check.check_name: check for check in result.get_asset_check_evaluations()}
        assert checks["fluke_keypoints_complete"].passed
        events = {e.asset_key.to_user_string(): e for e in result.get_asset_materialization_events()}
        metadata = events["fluke_keypoints"].materialization.metadata
        photos = metadata["photos"].value
        assert metadata["computed"].value == photos and metadata["cached"].value == 0
        assert metadata["mean_keypoints_per_photo"].value > 20
        assert {
            "keypoint_histogram",
            "keypoint_sheet",
            "share_under_20_keypoints",
            "photos_per_second",
        } <= set(metadata)
        again = materialize(part, resources=resources, instance=instance, run_config=run_config)
        events = {e.asset_key.to_user_string(): e for e in again.get_asset_materialization_events()}
        metadata = events["fluke_keypoints"].materialization.metadata
        assert metadata["computed"].value == 0 and metadata["cached"].value == photos
    stored = storage / "fluke_keypoints"
    assert sorted(path.name for path in stored.iterdir()) == [
        "descriptors.npy",
        "index.parquet",
        "points.npy",
        "settings.json",
    ]
    assert json.loads((stored / "settings.json").read_text())["width"] == 128
    index = pd.read_parquet(stored / "index.parquet")
    descriptors = np.load(stored / "descriptors.npy", mmap_mode="r")
    assert len(index) == photos and descriptors.dtype == np.uint8 and len(descriptors) == index["count"].sum()
    assert any((storage / "cache" / "fluke_keypoints").rglob("*.npy"))
