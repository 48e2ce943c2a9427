"""Atomic writes, content versions and caches: a killed run leaves the last good artifact in place."""

import numpy as np
import pandas as pd
import pytest

from core.caches import ArrayCache, TableCache, ValueCache, memoized_artifact
from core.digests import content_version, rows_version
from core.files import atomic_dir, atomic_path, write_parquet
from pipelines.io_managers import read_parts, write_part


def test_failed_write_keeps_the_previous_file(tmp_path):
    target = tmp_path / "table.parquet"
    write_parquet(pd.DataFrame({"a": [1]}), target)
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half a file")
        raise RuntimeError("killed")
    assert pd.read_parquet(target)["a"].tolist() == [1]
    assert [p.name for p in tmp_path.iterdir()] == ["table.parquet"], "no temporary files left behind"


def test_failed_folder_write_keeps_the_previous_folder(tmp_path):
    target = tmp_path / "artifact"
    with atomic_dir(target) as tmp:
        write_part(tmp / "images", pd.DataFrame({"image": ["a.jpg"]}))
        write_part(tmp / "tensors", np.zeros((2, 1, 4, 8), np.uint8))
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        write_part(tmp / "images", pd.DataFrame({"image": ["b.jpg"]}))
        raise RuntimeError("killed")
    parts = read_parts(target)
    assert parts["images"]["image"].tolist() == ["a.jpg"]
    assert parts["tensors"].shape == (2, 1, 4, 8) and isinstance(parts["tensors"], np.memmap)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["artifact"]


def test_content_version_follows_content_only():
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    assert content_version(frame) == content_version(frame.copy())
    assert content_version(frame) != content_version(frame.assign(a=[1, 3]))
    value = {"t": np.arange(6, dtype=np.uint8).reshape(2, 3), "info": {"k": 1}}
    assert content_version(value) == content_version(
        {"info": {"k": 1}, "t": np.arange(6, dtype=np.uint8).reshape(2, 3)}
    )
    assert content_version(value) != content_version({**value, "info": {"k": 2}})


def test_table_cache_merges_and_looks_up(tmp_path):
    cache = TableCache(tmp_path / "cache.parquet")
    assert cache.lookup(["a"]).empty
    cache.store(pd.DataFrame({"key": ["a", "b"], "v": [1, 2]}))
    cache.store(pd.DataFrame({"key": ["b", "c"], "v": [20, 3]}))
    found = cache.lookup(["b", "c", "zz"]).set_index("key")["v"].to_dict()
    assert found == {"b": 20, "c": 3}


def test_value_cache_returns_the_values_it_holds(tmp_path):
    cache = ValueCache(tmp_path / "cache" / "inliers.parquet", column="inliers")
    assert cache.lookup(["a"]) == {}
    cache.store({"a": 12, "b": 0})
    cache.store({})
    cache.store({"b": 3})  # a later value replaces the earlier one
    again = ValueCache(tmp_path / "cache" / "inliers.parquet", column="inliers")
    assert again.lookup(["a", "b", "c"]) == {"a": 12, "b": 3}


def test_array_cache_treats_a_torn_entry_as_missing(tmp_path):
    cache = ArrayCache(tmp_path)
    cache.put("abcd", np.ones((1, 2, 2), np.uint8))
    assert cache.get("abcd").sum() == 4
    cache.path("abcd").write_bytes(b"\x93NUMPY torn")
    assert cache.get("abcd") is None and cache.get("ffff") is None


def test_memoized_artifact_trains_once_per_key(tmp_path):
    calls = []

    def train():
        calls.append(1)
        return b"weights", {"mAP50": 0.9}

    first = memoized_artifact(tmp_path, "k1", train)
    second = memoized_artifact(tmp_path, "k1", train)
    assert first == (b"weights", {"mAP50": 0.9}, False) and second == (b"weights", {"mAP50": 0.9}, True)
    memoized_artifact(tmp_path, "k2", train)
    assert len(calls) == 2
    untrained = memoized_artifact(tmp_path, "none", lambda: (None, {"trained": False}))
    assert memoized_artifact(tmp_path, "none", train) == (None, {"trained": False}, True)
    assert untrained[2] is False


def test_rows_version_is_the_digest_of_the_selected_rows(tmp_path):
    """A training run's key hashes its rows of the memory-mapped store a block at a time; the digest must be the
    one of the rows gathered whole, in the order given (so checkpoints keyed before stay found)."""
    store = np.lib.format.open_memmap(tmp_path / "store.npy", mode="w+", dtype=np.uint8, shape=(50, 1, 4, 6))
    store[:] = np.random.default_rng(0).integers(0, 255, store.shape, dtype=np.uint8)
    rows = np.array([7, 3, 3, 40, 0, 12])
    assert rows_version(store, rows, chunk=4) == content_version(np.asarray(store[rows]))
    assert rows_version(store, rows[::-1], chunk=4) != rows_version(store, rows, chunk=4)
    assert rows_version(store, rows[:0]) == content_version(np.asarray(store[rows[:0]]))
