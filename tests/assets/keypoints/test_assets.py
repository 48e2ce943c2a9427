"""The keypoints stage materialized through Dagster: stored parts, checks, metadata and caches of fluke_keypoints and
fluke_outlines."""

import json
import shutil

import numpy as np
import pandas as pd
from dagster import instance_for_test, materialize

from assets.detect.truth import read_true_boxes
from assets.ingest.scan import scan_data_folder
from core.resources import ComputeDevice, FlukeData, FlukeStorage
from pipelines.definitions import chain_part
from pipelines.io_managers import ArtifactIOManager
from tests.assets.identify.stage_run import stand_ins


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


def test_outlines_stage_materializes_with_its_check_sheet_and_cache(tiny_dataset, tmp_path):
    # Stand-in upstream: ingestion's manifest of 12 photos and their true boxes (one dropped: not traced).
    manifest, rejected = scan_data_folder(tiny_dataset, workers=2)[:2]
    manifest = manifest.head(12).reset_index(drop=True)
    truth = read_true_boxes(tiny_dataset)
    boxes = manifest[["image", "split"]].merge(truth, on="image").assign(confidence=1.0, fallback=False)
    boxes = boxes[boxes["image"] != manifest["image"].iloc[0]].reset_index(drop=True)
    values = {"raw_images": {"images": manifest, "rejected": rejected}, "fluke_boxes": boxes}

    storage = tmp_path / "storage"
    resources = {
        "data": FlukeData(data_dir=str(tiny_dataset)),
        "storage": FlukeStorage(storage_dir=str(storage)),
        "io_manager": ArtifactIOManager(storage_dir=str(storage)),
    }
    part = [*stand_ins(values), *chain_part("fluke_outlines")]
    run_config = {"ops": {"fluke_outlines": {"config": {"workers": 1}}}}
    with instance_for_test() as instance:
        result = materialize(part, resources=resources, instance=instance, run_config=run_config)
        assert result.success
        checks = {check.check_name: check for check in result.get_asset_check_evaluations()}
        assert checks["fluke_outlines_complete"].passed
        events = {e.asset_key.to_user_string(): e for e in result.get_asset_materialization_events()}
        metadata = events["fluke_outlines"].materialization.metadata
        assert metadata["photos"].value == 12 and metadata["computed"].value == 11
        assert metadata["traced"].value >= 7 and metadata["not_traced"].value.get("no fluke box") == 1
        assert {"outline_sheet", "traced_share", "photos_per_second"} <= set(metadata)
        again = materialize(part, resources=resources, instance=instance, run_config=run_config)
        events = {e.asset_key.to_user_string(): e for e in again.get_asset_materialization_events()}
        assert events["fluke_outlines"].materialization.metadata["cached"].value == 11
    stored = storage / "fluke_outlines"
    assert sorted(path.name for path in stored.iterdir()) == ["edges.npy", "index.parquet", "settings.json"]
    index = pd.read_parquet(stored / "index.parquet")
    assert index["reason"].iloc[0] == "no fluke box" and not index["traced"].iloc[0]
