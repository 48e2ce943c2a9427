"""The detect and crop stages materialized through Dagster on data with no annotations at all."""

import shutil

import numpy as np
import pandas as pd
from dagster import instance_for_test, materialize

from core.resources import ComputeDevice, FlukeData, FlukeStorage
from pipelines.definitions import chain_part
from pipelines.io_managers import ArtifactIOManager


def test_detect_stage_materializes_without_annotations(tiny_dataset, tmp_path):
    """The chain continues with no annotations at all: no detector, whole photos flagged, one tensor row each."""
    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data, ignore=shutil.ignore_patterns("annotations"))
    storage = tmp_path / "storage"
    resources = {
        "data": FlukeData(data_dir=str(data)),
        "storage": FlukeStorage(storage_dir=str(storage)),
        "device": ComputeDevice(device="cpu"),
        "io_manager": ArtifactIOManager(storage_dir=str(storage)),
    }
    run_config = {"ops": {"fluke_tensors": {"config": {"height": 32, "width": 64, "workers": 2}}}}
    with instance_for_test() as instance:
        result = materialize(
            chain_part("raw_images", "fluke_detector", "fluke_boxes", "fluke_tensors"),
            resources=resources,
            instance=instance,
            run_config=run_config,
        )
        assert result.success
        checks = {check.check_name: check for check in result.get_asset_check_evaluations()}
        ours = ["fluke_boxes_inside_images", "fluke_boxes_match_generator_truth", "fluke_tensors_complete"]
        assert set(ours) <= set(checks) and all(check.passed for check in checks.values())
        # The generator's boxes.csv is there: the comparison lands on the check (whole photos: no worse).
        assert "test_mean_iou" in checks["fluke_boxes_match_generator_truth"].metadata
        events = {e.asset_key.to_user_string(): e for e in result.get_asset_materialization_events()}
        detector_meta = events["fluke_detector"].materialization.metadata
        assert detector_meta["trained"].value is False and "no annotations" in detector_meta["reason"].value
        boxes_meta = events["fluke_boxes"].materialization.metadata
        assert boxes_meta["coverage"].value == 0.0
        assert boxes_meta["fallbacks"].value == boxes_meta["photos"].value
        assert not any(key.startswith("test_") for key in boxes_meta)  # ground truth stays off the asset
    boxes = pd.read_parquet(storage / "fluke_boxes.parquet")
    assert boxes["fallback"].all() and set(boxes["fallback_reason"]) == {"no_detector"}
    tensors = np.load(storage / "fluke_tensors" / "tensors.npy", mmap_mode="r")
    assert tensors.shape[1:] == (1, 32, 64) and len(tensors) == len(boxes)
    assert not (storage / "fluke_detector" / "weights.bin").exists()
