"""Every cache entry carries a checksum: a damaged entry (truncated, zero bytes, same-size garbage) is logged with
its path, discarded (parquet tables moved aside, nothing lost) and recomputed; a run never crashes on a cache and
never uses a damaged entry."""

import hashlib
import json
import logging
import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from core.caches import ArrayCache, RecordCache, ValueCache, cached_map, memoized_artifact, memoized_digests
from core.files import seal_path

DAMAGE = ["truncated", "zero_bytes", "same_size_garbage"]


def damage(path, how: str) -> bytes:
    """Damage the file at `path` one way; returns the bytes it now holds."""
    data = path.read_bytes()
    if how == "truncated":
        data = data[: len(data) // 2]
    elif how == "zero_bytes":
        data = b""
    else:  # other bytes, same size: what a disk error or a stray write leaves
        data = np.random.default_rng(0).integers(0, 256, len(data), dtype=np.uint8).tobytes()
    path.write_bytes(data)
    return data


def _compute_squares(keys):
    calls = []

    def compute(positions):
        calls.extend(positions)
        return [int(keys[i][1:]) ** 2 for i in positions]

    return compute, calls


@pytest.mark.parametrize("how", DAMAGE)
def test_a_damaged_table_cache_is_logged_moved_aside_and_recomputed(tmp_path, caplog, how):
    path = tmp_path / "cache" / "values.parquet"
    keys = ["k1", "k2", "k3"]
    compute, calls = _compute_squares(keys)
    values, computed = cached_map(keys, compute, ValueCache(path))
    assert values == [1, 4, 9] and computed == 3 and seal_path(path).exists()
    damaged = damage(path, how)
    compute, calls = _compute_squares(keys)
    with caplog.at_level(logging.WARNING, logger="flukeid"):
        values, computed = cached_map(keys, compute, ValueCache(path))
    assert values == [1, 4, 9] and computed == 3 and len(calls) == 3, "the damaged table was not used"
    assert any(str(path) in record.getMessage() for record in caplog.records), "the warning names the file"
    aside = [p for p in path.parent.iterdir() if ".corrupt-" in p.name and not p.name.endswith(".sha256")]
    assert len(aside) == 1 and aside[0].read_bytes() == damaged, "moved aside as it was: nothing lost"
    # rewritten sound: the next run reads it
    again, computed = cached_map(keys, _compute_squares(keys)[0], ValueCache(path))
    assert again == [1, 4, 9] and computed == 0


def test_a_record_cache_survives_garbage_that_still_reads_as_parquet(tmp_path, caplog):
    # The footer intact, a value in the data changed: parquet reads it; only the checksum tells.
    path = tmp_path / "boxes.parquet"
    cache = RecordCache(path, ["x0", "x1"])
    cache.store({"a": {"x0": 1.0, "x1": 2.0}})
    table = pd.read_parquet(path)
    table.loc[0, "x1"] = 999.0
    seal = seal_path(path).read_bytes()
    table.to_parquet(path, index=False)  # same layout, other numbers, and the old digest left in place
    seal_path(path).write_bytes(seal)
    with caplog.at_level(logging.WARNING, logger="flukeid"):
        assert cache.lookup(["a"]) == {}
    assert any("damaged file" in r.getMessage() and str(path) in r.getMessage() for r in caplog.records)


def test_a_table_written_before_checksums_is_accepted_once_and_sealed(tmp_path):
    path = tmp_path / "inspected.parquet"
    pd.DataFrame({"key": ["a"], "value": [3]}).to_parquet(path, index=False)  # as the old code wrote it
    cache = ValueCache(path)
    assert cache.lookup(["a"]) == {"a": 3}
    assert seal_path(path).exists()
    path.write_bytes(path.read_bytes()[:-10])
    assert cache.lookup(["a"]) == {}


@pytest.mark.parametrize("how", DAMAGE)
def test_a_damaged_array_entry_is_logged_and_recomputed(tmp_path, caplog, how):
    cache = ArrayCache(tmp_path / "crops")
    arrays = {"ab01": np.arange(24, dtype=np.uint8).reshape(1, 4, 6), "cd02": np.ones((1, 4, 6), np.uint8)}
    cache.store(arrays)
    assert np.array_equal(np.load(cache.path("ab01")), arrays["ab01"]), "plain np.load still reads an entry"
    damage(cache.path("ab01"), how)
    calls = []

    def compute(positions):
        calls.extend(positions)
        return [arrays[["ab01", "cd02"][i]] for i in positions]

    with caplog.at_level(logging.WARNING, logger="flukeid"):
        values, computed = cached_map(["ab01", "cd02"], compute, cache)
    assert calls == [0] and computed == 1 and np.array_equal(values[0], arrays["ab01"])
    assert any(str(cache.path("ab01")) in r.getMessage() for r in caplog.records)
    assert np.array_equal(cache.get("ab01"), arrays["ab01"]), "stored again, sound"


def test_a_same_shape_array_with_other_pixels_is_not_used(tmp_path):
    cache = ArrayCache(tmp_path)
    cache.put("ab01", np.zeros((1, 4, 6), np.uint8))
    data = bytearray(cache.path("ab01").read_bytes())
    data[-60] ^= 0xFF  # one pixel, inside the array (the trailer is the last 48 bytes)
    cache.path("ab01").write_bytes(bytes(data))
    assert cache.get("ab01") is None


def test_an_array_entry_written_before_checksums_is_a_miss(tmp_path):
    cache = ArrayCache(tmp_path)
    cache.path("ab01").parent.mkdir(parents=True)
    np.save(cache.path("ab01"), np.ones((2, 2), np.uint8))  # the old format: no trailer
    assert cache.lookup(["ab01"]) == {}
    _, computed = cached_map(["ab01"], lambda positions: [np.ones((2, 2), np.uint8)], cache)
    assert computed == 1 and cache.get("ab01").sum() == 4


def _train(calls):
    def train():
        calls.append(1)
        return bytes(range(256)) * 64, {"trained": True, "mAP50": 0.5}  # 16 KiB of "weights"

    return train


def test_memoized_weights_with_4_kib_zeroed_are_discarded_and_retrained(tmp_path, caplog):
    calls = []
    weights, info, reused = memoized_artifact(tmp_path, "k", _train(calls))
    assert not reused and json.loads((tmp_path / "k.json").read_text())["weights_sha256"]
    data = bytearray((tmp_path / "k.bin").read_bytes())
    data[4096:8192] = bytes(4096)
    (tmp_path / "k.bin").write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="flukeid"):
        again, _, reused = memoized_artifact(tmp_path, "k", _train(calls))
    assert not reused and len(calls) == 2 and again == weights
    assert any(str(tmp_path / "k.bin") in r.getMessage() for r in caplog.records)
    assert len(list(tmp_path.glob("k.bin.corrupt-*"))) == 1, "moved aside, not deleted"
    assert memoized_artifact(tmp_path, "k", _train(calls))[2] and len(calls) == 2


@pytest.mark.parametrize("how", DAMAGE)
def test_a_damaged_memo_entry_is_recomputed(tmp_path, how):
    calls = []
    memoized_artifact(tmp_path, "k", _train(calls))
    damage(tmp_path / "k.json", how)
    assert memoized_artifact(tmp_path, "k", _train(calls))[2] is False and len(calls) == 2


def test_a_memo_entry_written_before_checksums_is_checked_against_its_version(tmp_path):
    weights = b"w" * 100
    version = hashlib.sha256(weights).hexdigest()[:16]
    (tmp_path / "good.bin").write_bytes(weights)
    (tmp_path / "good.json").write_text(json.dumps({"info": {"version": version}, "has_weights": True}))
    assert memoized_artifact(tmp_path, "good", lambda: pytest.fail("retrained"))[2] is True
    assert (
        json.loads((tmp_path / "good.json").read_text())["weights_sha256"]
        == hashlib.sha256(weights).hexdigest()
    )
    assert memoized_digests(tmp_path) == {hashlib.sha256(weights).hexdigest()}
    (tmp_path / "bad.bin").write_bytes(b"x" * 100)
    (tmp_path / "bad.json").write_text(json.dumps({"info": {"version": version}, "has_weights": True}))
    assert memoized_artifact(tmp_path, "bad", lambda: (b"new", {}))[2] is False


SAME_KEY_TRAINING = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from core.caches import memoized_artifact

    folder, log = Path(sys.argv[1]), Path(sys.argv[2])
    def train():
        with open(log, "a") as handle:
            handle.write(f"{os.getpid()}\\n")
        time.sleep(1.5)
        return b"weights-of-the-one-training", {"trained": True}
    weights, info, reused = memoized_artifact(folder, "key", train)
    print(weights.decode(), reused)
    """
)


def test_two_processes_wanting_the_same_training_train_once(tmp_path):
    log = tmp_path / "trainings.log"
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SAME_KEY_TRAINING, str(tmp_path / "trained"), str(log)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(2)
    ]
    outputs = [proc.communicate(timeout=120) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), [err for _, err in outputs]
    assert len(log.read_text().split()) == 1, "one training"
    results = sorted(out.split()[-1] for out, _ in outputs)
    assert results == ["False", "True"], "the other reused it"
    assert {out.split()[0] for out, _ in outputs} == {"weights-of-the-one-training"}
