"""Atomic file writes and the per-image cache every per-image stage shares.

A write goes to a temporary file beside its target and is renamed over it, so a killed run leaves the last
good artifact in place. Folders are swapped the same way (new folder in, old folder out).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd


@contextmanager
def atomic_path(target: Path, suffix: str = ""):
    """Yield a temporary path next to `target`; rename it onto `target` only if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix + ".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_parquet(df: pd.DataFrame, target: Path) -> None:
    with atomic_path(target) as tmp:
        df.to_parquet(tmp, index=False)


def write_npy(array: np.ndarray, target: Path) -> None:
    # np.save(path) would append ".npy" to the temporary name: write through a handle instead.
    with atomic_path(target) as tmp, open(tmp, "wb") as handle:
        np.save(handle, np.ascontiguousarray(array), allow_pickle=False)


def write_bytes(data: bytes, target: Path) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_json(obj: object, target: Path) -> None:
    write_bytes(json.dumps(obj, indent=2, sort_keys=True, default=str).encode(), target)


@contextmanager
def atomic_dir(target: Path):
    """Yield a fresh temporary folder; swap it in for `target` only if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        old = None
        if target.exists():
            old = target.with_name(f".{target.name}.old.{os.getpid()}")
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def stable_digest(*parts: object) -> str:
    """A short hex digest of JSON-serialisable parts (configs, versions): the key half of a cache entry."""
    payload = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(payload).hexdigest()[:16]


def content_version(value: object) -> str:
    """A data version derived from an artifact's content, so identical output leaves downstream fresh."""
    digest = hashlib.sha256()
    _feed(digest, value)
    return digest.hexdigest()[:20]


def _feed(digest, value: object) -> None:
    if isinstance(value, pd.DataFrame):
        digest.update(",".join(map(str, value.columns)).encode())
        digest.update(pd.util.hash_pandas_object(value, index=False).values.tobytes())
    elif isinstance(value, np.ndarray):
        digest.update(str((value.shape, value.dtype.str)).encode())
        # Large arrays (tensor stores) are hashed in blocks to bound memory; memmaps read lazily.
        flat = value.reshape(-1)
        step = 1 << 24
        for start in range(0, flat.size, step):
            digest.update(np.ascontiguousarray(flat[start : start + step]).tobytes())
    elif isinstance(value, bytes):
        digest.update(value)
    elif isinstance(value, dict):
        for key in sorted(value):
            digest.update(str(key).encode())
            _feed(digest, value[key])
    else:
        digest.update(json.dumps(value, sort_keys=True, default=str).encode())


class TableCache:
    """A parquet table of per-image results keyed by a `key` column (content hash + stage version + config).

    `lookup` returns the cached rows for the keys asked; `store` merges new rows in and rewrites atomically.
    """

    def __init__(self, path: Path):
        self.path = Path(path)

    def load(self) -> pd.DataFrame:
        if self.path.exists():
            return pd.read_parquet(self.path)
        return pd.DataFrame({"key": pd.Series(dtype=str)})

    def lookup(self, keys: Iterable[str]) -> pd.DataFrame:
        table = self.load()
        wanted = set(keys)
        return table[table["key"].isin(wanted)].drop_duplicates("key").reset_index(drop=True)

    def store(self, rows: pd.DataFrame) -> None:
        if rows.empty:
            return
        table = pd.concat([self.load(), rows], ignore_index=True)
        table = table.drop_duplicates("key", keep="last").reset_index(drop=True)
        write_parquet(table, self.path)


class ValueCache:
    """One value per key (e.g. an inlier count per pair of crops) over a `TableCache`:
    `lookup(keys) -> {key: value}` for the keys it holds, `store({key: value})`."""

    def __init__(self, path: Path, column: str = "value"):
        self.table, self.column = TableCache(path), column

    def lookup(self, keys: Iterable[str]) -> dict:
        rows = self.table.lookup(keys)
        if rows.empty or self.column not in rows:
            return {}
        return dict(zip(rows["key"], rows[self.column].tolist()))

    def store(self, values: dict) -> None:
        if values:
            self.table.store(pd.DataFrame({"key": list(values), self.column: list(values.values())}))


class ArrayCache:
    """Per-image arrays as small `.npy` files named by key, sharded by the key's first two characters."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npy"

    def get(self, key: str) -> np.ndarray | None:
        path = self.path(key)
        if not path.exists():
            return None
        try:
            return np.load(path, allow_pickle=False)
        except (ValueError, OSError):
            return None  # a torn entry from a killed run: recompute it

    def put(self, key: str, array: np.ndarray) -> None:
        write_npy(array, self.path(key))


def to_npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def memoized_artifact(folder: Path, key: str, compute) -> tuple[bytes | None, dict, bool]:
    """Reuse a trained artifact (weights bytes + info) made from exactly the same inputs, else `compute()` it.

    Training stages depend on more than they learn from (e.g. the detector sees the whole manifest but learns
    only from annotated photos). Keyed by what they learn from, a rerun caused by unrelated new photos returns the
    same bytes, so the asset keeps its data version and nothing downstream turns stale. Returns
    (weights, info, reused).
    """
    folder = Path(folder)
    info_path, weights_path = folder / f"{key}.json", folder / f"{key}.bin"
    if info_path.exists():
        info = json.loads(info_path.read_text())
        weights = weights_path.read_bytes() if weights_path.exists() else None
        if weights is not None or not info.get("has_weights", False):
            return weights, info["info"], True
    weights, info = compute()
    if weights is not None:
        write_bytes(weights, weights_path)
    write_json({"info": info, "has_weights": weights is not None}, info_path)
    return weights, info, False
