"""Stored artifacts carry their content digests: a part whose bytes no longer match fails on load with its path
and "rematerialize <asset>", instead of flowing downstream (e.g. a model trained on random tensors)."""

import numpy as np
import pandas as pd
import pytest
from dagster import asset, materialize

from core.files import read_digests, write_digests
from pipelines.io_managers import (
    ArtifactIOManager,
    DamagedArtifact,
    digest_path,
    load_artifact,
    store_parts,
    store_table,
)


def _tensors() -> dict:
    index = pd.DataFrame({"row": [0, 1, 2], "image": ["a.jpg", "b.jpg", "c.jpg"]})
    return {
        "tensors": np.arange(3 * 16, dtype=np.uint8).reshape(3, 1, 4, 4),
        "index": index,
        "info": {"h": 4},
    }


def test_parts_are_sealed_and_load_back(tmp_path):
    base = tmp_path / "fluke_tensors"
    store_parts(_tensors(), base)
    digests = read_digests(digest_path(base))
    assert set(digests) == {
        "fluke_tensors/tensors.npy",
        "fluke_tensors/index.parquet",
        "fluke_tensors/info.json",
    }
    assert all(len(accepted) == 1 for accepted in digests.values())
    loaded = load_artifact(base, "fluke_tensors")
    assert np.array_equal(loaded["tensors"], _tensors()["tensors"]) and loaded["info"] == {"h": 4}


@pytest.mark.parametrize("how", ["random_same_shape", "truncated", "zero_bytes"])
def test_overwritten_tensors_fail_on_load_with_the_path_and_rematerialize(tmp_path, how):
    base = tmp_path / "fluke_tensors"
    store_parts(_tensors(), base)
    load_artifact(base, "fluke_tensors")  # verified once in this process ...
    path = base / "tensors.npy"
    stored = np.load(path)
    if how == "random_same_shape":  # ... and a later write is still caught (its ctime moved)
        np.save(path, np.random.default_rng(0).integers(0, 256, stored.shape, dtype=np.uint8))
    elif how == "truncated":
        path.write_bytes(path.read_bytes()[:-7])
    else:
        path.write_bytes(b"")
    with pytest.raises(DamagedArtifact) as error:
        load_artifact(base, "fluke_tensors")
    assert str(path) in str(error.value) and "rematerialize fluke_tensors" in str(error.value)


def test_a_damaged_table_artifact_fails_on_load(tmp_path):
    base = tmp_path / "fluke_boxes"
    store_table(pd.DataFrame({"image": ["a.jpg"], "x0": [1.0]}), base)
    assert load_artifact(base, "fluke_boxes")["x0"].tolist() == [1.0]
    pd.DataFrame({"image": ["a.jpg"], "x0": [2.0]}).to_parquet(base.with_suffix(".parquet"), index=False)
    with pytest.raises(DamagedArtifact, match="rematerialize fluke_boxes"):
        load_artifact(base, "fluke_boxes")


def test_an_artifact_stored_before_digests_is_sealed_on_first_load(tmp_path):
    base = tmp_path / "fluke_boxes"
    pd.DataFrame({"image": ["a.jpg"]}).to_parquet(base.with_suffix(".parquet"), index=False)  # the old layout
    assert not digest_path(base).exists()
    assert load_artifact(base, "fluke_boxes")["image"].tolist() == ["a.jpg"]
    assert digest_path(base).exists()
    base.with_suffix(".parquet").write_bytes(b"")
    with pytest.raises(DamagedArtifact, match="rematerialize fluke_boxes"):
        load_artifact(base, "fluke_boxes")


def test_a_kill_between_digest_and_swap_leaves_a_loadable_artifact(tmp_path):
    base = tmp_path / "fluke_tensors"
    store_parts(_tensors(), base)
    old = read_digests(digest_path(base))
    store_parts({**_tensors(), "info": {"h": 5}}, base)
    new = read_digests(digest_path(base))
    # What a kill after the first sidecar write and before the folder swap leaves: old folder, both digests.
    both = {name: new[name] + [d for d in old.get(name, []) if d not in new[name]] for name in new}
    store_parts(_tensors(), base)
    write_digests(digest_path(base), both)
    assert load_artifact(base, "fluke_tensors")["info"] == {"h": 4}


def test_the_io_manager_stores_digests_beside_the_artifact(tmp_path):
    @asset
    def parts() -> dict:
        return _tensors()

    @asset
    def reader(parts: dict) -> pd.DataFrame:
        return parts["index"]

    resources = {"io_manager": ArtifactIOManager(storage_dir=str(tmp_path))}
    assert materialize([parts, reader], resources=resources).success
    assert digest_path(tmp_path / "parts").exists() and digest_path(tmp_path / "reader").exists()
    assert sorted(p.name for p in (tmp_path / "parts").iterdir()) == [
        "index.parquet",
        "info.json",
        "tensors.npy",
    ]
    with open(tmp_path / "parts" / "tensors.npy", "r+b") as handle:  # same size, other bytes
        handle.seek(-4, 2)
        handle.write(b"\xff\xff\xff\xff")
    result = materialize([parts, reader], selection=[reader], resources=resources, raise_on_error=False)
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error
    assert "rematerialize parts" in str(failure) and "tensors.npy" in str(failure)


def test_a_partition_is_stored_in_its_own_folder_and_a_reader_gets_the_stored_ones(tmp_path):
    """experiment_run's layout: `<asset>/<variant>/<seed>/`; the unpartitioned comparison reads a dict of the
    partitions stored, without the ones never materialized."""
    from dagster import AssetIn, MultiPartitionKey, MultiPartitionsDefinition, StaticPartitionsDefinition

    partitions = MultiPartitionsDefinition(
        {
            "variant": StaticPartitionsDefinition(["a.x", "a.y"]),
            "seed": StaticPartitionsDefinition(["0", "1"]),
        }
    )

    @asset(partitions_def=partitions)
    def runs(context) -> dict:
        return {"summary": {"key": context.partition_key}}

    @asset(ins={"stored": AssetIn("runs")})
    def comparison(stored: dict) -> pd.DataFrame:
        return pd.DataFrame(
            {"key": sorted(stored), "summary": [stored[k]["summary"]["key"] for k in sorted(stored)]}
        )

    io = ArtifactIOManager(storage_dir=str(tmp_path))
    for variant in ("a.x", "a.y"):
        key = MultiPartitionKey({"variant": variant, "seed": "0"})
        assert materialize([runs], partition_key=key, resources={"io_manager": io}).success
    assert (tmp_path / "runs" / "a.x" / "0" / "summary.json").exists()
    assert (tmp_path / "runs" / "a.x" / "0.sha256").exists()
    assert materialize([runs, comparison], selection=[comparison], resources={"io_manager": io}).success
    table = pd.read_parquet(tmp_path / "comparison.parquet")
    assert list(table["key"]) == ["0|a.x", "0|a.y"] and list(table["summary"]) == ["0|a.x", "0|a.y"]


@pytest.mark.parametrize("key", ["0|../up", "0|a/b", "a.b", "|x"])
def test_a_partition_key_that_cannot_name_a_folder_is_refused(key):
    from pipelines.io_managers import partition_parts

    with pytest.raises(ValueError, match="partition key"):
        partition_parts(key)
