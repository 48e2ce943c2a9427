"""Per-item caches every per-image stage shares, and memoized training artifacts.

Entries are keyed by what produced them (content hash + stage version + settings, via `stable_digest`), so new
photos cost only themselves and a changed setting misses the cache instead of reusing a stale entry.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Protocol, TypeVar

import numpy as np
import pandas as pd

from core.files import write_bytes, write_json, write_npy, write_parquet

K = TypeVar("K")
V = TypeVar("V")


class KeyValueCache(Protocol):
    def lookup(self, keys: Iterable[str]) -> dict: ...

    def store(self, values: dict) -> None: ...


def cached_map(
    keys: Sequence[str], compute: Callable[[list[int]], list], cache: KeyValueCache | None
) -> tuple[list, int]:
    """The one look-up / compute / store loop: values for `keys` (one per item, in order), taken from `cache`
    where present; `compute(positions)` makes the missing ones (for the items at those positions, in order), which
    are then stored. Returns (values, number computed). Items with an empty key are always computed and never
    stored. Without a cache every item is computed."""
    known = cache.lookup([k for k in keys if k]) if cache is not None else {}
    values = [known.get(key) if key else None for key in keys]
    missing = [i for i, value in enumerate(values) if value is None]
    if missing:
        fresh = compute(missing)
        if len(fresh) != len(missing):
            raise ValueError(f"compute returned {len(fresh)} values for {len(missing)} items")
        for i, value in zip(missing, fresh):
            values[i] = value
        if cache is not None:
            cache.store({keys[i]: values[i] for i in missing if keys[i]})
    return values, len(missing)


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


class RecordCache:
    """Several named values per key (e.g. a box: x0, y0, x1, y1, confidence) over a `TableCache`:
    `lookup(keys) -> {key: {column: value}}`, `store({key: {column: value}})`."""

    def __init__(self, path: Path, columns: Sequence[str]):
        self.table, self.columns = TableCache(path), list(columns)

    def lookup(self, keys: Iterable[str]) -> dict:
        rows = self.table.lookup(keys)
        if rows.empty or any(column not in rows for column in self.columns):
            return {}
        records = rows[self.columns].to_dict(orient="records")
        return dict(zip(rows["key"], records))

    def store(self, values: dict) -> None:
        if values:
            rows = pd.DataFrame(
                [{column: record[column] for column in self.columns} for record in values.values()]
            )
            self.table.store(rows.assign(key=list(values)))


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

    def lookup(self, keys: Iterable[str]) -> dict:
        found = {key: self.get(key) for key in keys}
        return {key: array for key, array in found.items() if array is not None}

    def store(self, values: dict) -> None:
        for key, array in values.items():
            self.put(key, array)


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
