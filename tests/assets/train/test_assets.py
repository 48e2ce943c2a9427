"""The embedding_model asset: its Config mirrors TrainingConfig, and one tiny materialization through Dagster."""

import dataclasses

import pytest
from dagster import IOManager, SourceAsset, instance_for_test, materialize

from core.resources import ComputeDevice, FlukeStorage
from models.training import TrainingConfig
from pipelines.definitions import chain_part
from tests.assets.train.test_run import TINY, _store


class UpstreamValues(IOManager):
    """Hands the asset its inputs from memory and keeps what it returns."""

    def __init__(self, values: dict):
        self.values, self.stored = values, {}

    def handle_output(self, context, obj):
        self.stored[context.asset_key.to_user_string()] = obj

    def load_input(self, context):
        return self.values[context.asset_key.to_user_string()]


def _config_fields():
    (definition,) = chain_part("embedding_model", checks=False)
    return definition.op.config_schema.config_type.fields


def test_config_mirrors_training_config_field_for_field():
    asset_defaults = {name: field.default_value for name, field in _config_fields().items()}
    assert asset_defaults == dataclasses.asdict(TrainingConfig())


def _materialize(tmp_path, config: dict):
    tensors, index, manifest = _store()
    io = UpstreamValues(
        {"fluke_tensors": {"tensors": tensors, "index": index}, "training_manifest": manifest}
    )
    resources = {
        "io_manager": io,
        "device": ComputeDevice(device="cpu"),
        "storage": FlukeStorage(storage_dir=str(tmp_path)),
    }
    with instance_for_test() as instance:
        result = materialize(
            # the two inputs come from memory (`UpstreamValues`), as sources
            [*chain_part("embedding_model"), SourceAsset("fluke_tensors"), SourceAsset("training_manifest")],
            resources=resources,
            run_config={"ops": {"embedding_model": {"config": config}}},
            instance=instance,
        )
    return result, io, tensors


def test_asset_trains_and_returns_a_loadable_model_and_history(tmp_path):
    result, io, tensors = _materialize(tmp_path, TINY)
    assert result.success
    value = io.stored["embedding_model"]
    assert set(value) == {"weights", "config", "history"}
    assert list(value["history"]["epoch"]) == [1, 2]
    assert value["config"]["training"] == dataclasses.asdict(TrainingConfig(**TINY))
    metadata = result.asset_materializations_for_node("embedding_model")[0].metadata
    for key in (
        "val_map5",
        "baseline_pixel_nn_map5",
        "baseline_new_whale_map5",
        "val_map5_vs_baselines",
        "loss_curves",
        "val_map5_curve",
        "parameters",
        "device",
        "wall_seconds",
        "train_seconds",
        "config",
        "history",
        "same_label_pair_share",
        "training_photos",
        "validation_photos",
    ):
        assert key in metadata
    assert list((tmp_path / "work" / "embedding_model").glob("*/last.pt"))


def test_out_of_range_config_is_refused_before_training(tmp_path):
    # The declared ranges are checked (pydantic) when the run builds the config, before any epoch.
    with pytest.raises(ValueError, match="warmup_fraction"):
        _materialize(tmp_path, {**TINY, "warmup_fraction": 1.5})
    assert not (tmp_path / "work" / "embedding_model").exists()


def test_a_time_budget_stops_training_early_and_a_rerun_reuses_the_cut_run(tmp_path):
    # 1000 epochs cannot fit in 0.6 s; validation only at the end (or where the budget cuts).
    budgeted = {**TINY, "epochs": 1000, "validate_every": 1000, "max_minutes": 0.01}
    first, io, _ = _materialize(tmp_path, budgeted)
    assert first.success
    metadata = first.asset_materializations_for_node("embedding_model")[0].metadata
    completed = metadata["epochs_completed"].value
    assert metadata["stopped_by_budget"].value is True and 1 <= completed < 1000
    assert metadata["epochs_configured"].value == 1000 and metadata["max_minutes"].value == 0.01
    assert (
        metadata["steps_completed"].value == int(io.stored["embedding_model"]["history"]["steps"].sum()) > 0
    )
    assert metadata["training_minutes"].value > 0 and metadata["process_peak_rss_mb"].value > 0
    assert "cuda_max_memory_mb" not in metadata  # recorded on CUDA only
    info = io.stored["embedding_model"]["config"]
    assert info["budget"] == {
        "max_minutes": 0.01,
        "stopped_by_budget": True,
        "epochs_configured": 1000,
        "epochs_completed": completed,
        "steps_completed": metadata["steps_completed"].value,
    }
    assert "training_minutes" not in info["budget"]  # wall-clock: not part of the artifact's version

    again, io_again, _ = _materialize(tmp_path, budgeted)
    rerun = again.asset_materializations_for_node("embedding_model")[0]
    # nothing trained: the cut run's checkpoint is found, and the data version is unchanged
    assert rerun.metadata["resumed_from_epoch"].value == completed == rerun.metadata["epochs_completed"].value
    first_version = first.asset_materializations_for_node("embedding_model")[0].tags["dagster/data_version"]
    assert rerun.tags["dagster/data_version"] == first_version
    assert io_again.stored["embedding_model"]["weights"] == io.stored["embedding_model"]["weights"]


def test_a_negative_time_budget_is_refused_before_training(tmp_path):
    with pytest.raises(ValueError, match="max_minutes"):
        _materialize(tmp_path, {**TINY, "max_minutes": -1.0})
    assert not (tmp_path / "work" / "embedding_model").exists()
