"""Per-item caches every per-image stage shares, and memoized training artifacts.

Entries are keyed by what produced them (content hash + stage version + settings, via `stable_digest`), so new
photos cost only themselves and a changed setting misses the cache instead of reusing a stale entry.

Every entry carries a checksum of its content, written with it and checked on read, so a damaged entry
(truncated, emptied, overwritten) is logged with its path and recomputed, never used, and never crashes a run:
- a parquet table (`TableCache`, and the `ValueCache` / `RecordCache` over it) has a `<name>.sha256` sidecar; a
  table that fails its digest or cannot be read is moved aside as `<name>.corrupt-<time>` and the cache starts
  empty. A table written before checksums is accepted once if it reads whole, and sealed as it is;
- an array entry (`ArrayCache`) ends with a 48-byte trailer (a marker and the sha256 of the `.npy` bytes before
  it; `np.load` ignores it). An entry written before checksums cannot be told from a garbled one of the same
  shape, so it is a miss: recomputed once and rewritten with its checksum;
- a memoized artifact (`memoized_artifact`) records the sha256 of its weights and of its info in its `.json`;
  a mismatch moves both files aside and computes again. An entry written before that is checked against the
  weights digest prefix its info carries as `version` (the detector's), and sealed when it matches.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Protocol, TypeVar

import numpy as np
import pandas as pd

from core.files import (
    check_seal,
    pid_lock,
    quarantine,
    seal_file,
    sealed_write,
    to_npy_bytes,
    write_bytes,
    write_json,
)

K = TypeVar("K")
V = TypeVar("V")
logger = logging.getLogger("flukeid.caches")
# Ends every ArrayCache entry: this marker, then the sha256 (32 raw bytes) of the .npy bytes before it.
NPY_TRAILER = b"\x00flukeid-sha256\x00"
_TRAILER_SIZE = len(NPY_TRAILER) + 32


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

    `lookup` returns the cached rows for the keys asked; `store` merges new rows in and rewrites atomically,
    sealed, under a lock (two runs storing at once merge their rows instead of dropping the other's).
    """

    def __init__(self, path: Path):
        self.path = Path(path)

    def _lock(self):
        return pid_lock(self.path.with_name(f".{self.path.name}.lock"), log=logger.info)

    def load(self) -> pd.DataFrame:
        """The whole table; empty when missing or damaged (then moved aside). Under the table's lock, so a
        concurrent store is never mistaken for damage."""
        with self._lock():
            return self._load()

    def _load(self) -> pd.DataFrame:
        empty = pd.DataFrame({"key": pd.Series(dtype=str)})
        if not self.path.exists():
            return empty
        state = check_seal(self.path)
        if state not in ("ok", "unsealed"):
            quarantine(self.path, state, logger.warning)
            return empty
        try:
            table = pd.read_parquet(self.path)
        except Exception as error:  # ArrowInvalid, OSError, a snappy error...: whatever a torn file raises
            quarantine(self.path, f"unreadable ({type(error).__name__}: {error})", logger.warning)
            return empty
        if "key" not in table.columns:
            quarantine(self.path, "no key column", logger.warning)
            return empty
        if state == "unsealed":
            seal_file(self.path)  # written before checksums, and it reads whole: vouched for from now on
        return table

    def lookup(self, keys: Iterable[str]) -> pd.DataFrame:
        table = self.load()
        wanted = set(keys)
        return table[table["key"].isin(wanted)].drop_duplicates("key").reset_index(drop=True)

    def store(self, rows: pd.DataFrame) -> None:
        if rows.empty:
            return
        with self._lock():
            table = pd.concat([self._load(), rows], ignore_index=True)
            table = table.drop_duplicates("key", keep="last").reset_index(drop=True)
            with sealed_write(self.path) as tmp:
                table.to_parquet(tmp, index=False)


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


def seal_npy(array: np.ndarray) -> bytes:
    """The bytes of an ArrayCache entry: the `.npy` of `array`, then `NPY_TRAILER` and its sha256."""
    body = to_npy_bytes(np.ascontiguousarray(array))
    return body + NPY_TRAILER + hashlib.sha256(body).digest()


def unseal_npy(data: bytes) -> tuple[np.ndarray | None, str]:
    """(array, 'ok') for a sound entry; (None, 'unsealed') for a readable entry without a trailer (written before
    checksums); (None, why) for a damaged one."""
    if len(data) >= _TRAILER_SIZE and data[-_TRAILER_SIZE:-32] == NPY_TRAILER:
        body = data[:-_TRAILER_SIZE]
        if hashlib.sha256(body).digest() != data[-32:]:
            return None, "its content does not match its checksum"
        state = "ok"
    else:
        body, state = data, "unsealed"
    try:
        array = np.load(io.BytesIO(body), allow_pickle=False)
    except Exception as error:  # EOFError, ValueError...: a torn or emptied entry
        return None, f"unreadable ({type(error).__name__}: {error})"
    return (array, state) if state == "ok" else (None, state)


class ArrayCache:
    """Per-image arrays as small `.npy` files named by key, sharded by the key's first two characters; each
    ends with its checksum (see `seal_npy`)."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npy"

    def read(self, key: str) -> tuple[np.ndarray | None, str]:
        """(array, 'ok'), (None, 'missing'), (None, 'unsealed') or (None, why it is damaged)."""
        try:
            data = self.path(key).read_bytes()
        except FileNotFoundError:
            return None, "missing"
        except OSError as error:
            return None, f"unreadable ({error})"
        return unseal_npy(data)

    def get(self, key: str) -> np.ndarray | None:
        return self.lookup([key]).get(key)

    def put(self, key: str, array: np.ndarray) -> None:
        write_bytes(seal_npy(array), self.path(key))

    def lookup(self, keys: Iterable[str]) -> dict:
        """The sound entries among `keys`; damaged ones are logged with their paths (and recomputed by the
        caller, whose store overwrites them)."""
        found, damaged, unsealed = {}, [], 0
        for key in keys:
            array, state = self.read(key)
            if array is not None:
                found[key] = array
            elif state == "unsealed":
                unsealed += 1
            elif state != "missing":
                damaged.append((self.path(key), state))
        for path, why in damaged[:10]:
            logger.warning(f"damaged cache entry {path}: {why}; recomputing it")
        if len(damaged) > 10:
            logger.warning(f"... and {len(damaged) - 10} more damaged entries under {self.root}")
        if unsealed:
            logger.info(
                f"{unsealed} entries under {self.root} have no checksum (older format): recomputing them"
            )
        return found

    def store(self, values: dict) -> None:
        for key, array in values.items():
            self.put(key, array)


def _info_digest(info: object) -> str:
    return hashlib.sha256(json.dumps(info, sort_keys=True).encode()).hexdigest()


def _memo_entry(info: dict, weights: bytes | None) -> dict:
    canonical = json.loads(json.dumps(info, sort_keys=True, default=str))  # as it will read back
    return {
        "info": canonical,
        "has_weights": weights is not None,
        "weights_sha256": hashlib.sha256(weights).hexdigest() if weights is not None else None,
        "info_sha256": _info_digest(canonical),
    }


def _memoized(info_path: Path, weights_path: Path) -> tuple[bytes | None, dict] | None:
    """The stored (weights, info) when sound; None (a miss) when absent, or damaged (then moved aside)."""
    if not info_path.exists():
        return None

    def discard(why: str) -> None:
        quarantine(info_path, why, logger.warning)
        quarantine(weights_path, f"its entry {info_path.name} is damaged", logger.warning)

    try:
        entry = json.loads(info_path.read_text())
        info, has_weights = entry["info"], bool(entry.get("has_weights", False))
    except (OSError, ValueError, KeyError, TypeError) as error:
        discard(f"unreadable ({type(error).__name__}: {error})")
        return None
    sealed = "info_sha256" in entry
    if sealed and entry["info_sha256"] != _info_digest(info):
        discard("its info does not match its checksum")
        return None
    weights = None
    if has_weights:
        if not weights_path.exists():
            return None  # killed between the two writes: compute again
        weights = weights_path.read_bytes()
        actual = hashlib.sha256(weights).hexdigest()
        version = info.get("version") if isinstance(info, dict) else None
        if sealed and entry.get("weights_sha256") != actual:
            discard(f"the weights {weights_path.name} do not match their checksum")
            return None
        if not sealed and not (isinstance(version, str) and len(version) >= 8 and actual.startswith(version)):
            discard(f"the weights {weights_path.name} do not match the version their info records")
            return None
    if not sealed:
        write_json(_memo_entry(info, weights), info_path)  # checked against its version: sealed from now on
    return weights, info


def memoized_artifact(
    folder: Path, key: str, compute: Callable[[], tuple], log: Callable[[str], None] | None = None
) -> tuple[bytes | None, dict, bool]:
    """Reuse a trained artifact (weights bytes + info) made from exactly the same inputs, else `compute()` it.

    Training stages depend on more than they learn from (e.g. the detector sees the whole manifest but learns
    only from annotated photos). Keyed by what they learn from, a rerun caused by unrelated new photos returns the
    same bytes, so the asset keeps its data version and nothing downstream turns stale. One process at a time
    looks up and computes a key (the lock file `.<key>.lock` holds its pid): a second run wanting the same
    training waits for it, then reuses it. A damaged entry is moved aside and computed again. Returns
    (weights, info, reused).
    """
    folder = Path(folder)
    info_path, weights_path = folder / f"{key}.json", folder / f"{key}.bin"
    with pid_lock(folder / f".{key}.lock", log=log or logger.info):
        found = _memoized(info_path, weights_path)
        if found is not None:
            return found[0], found[1], True
        weights, info = compute()
        if weights is not None:
            write_bytes(weights, weights_path)
        write_json(_memo_entry(info, weights), info_path)
    return weights, info, False


def memoized_digests(folder: Path | None, keep: Callable[[dict], bool] = lambda info: True) -> set[str]:
    """The sha256 of every weights file memoized (and sealed) under `folder` whose info passes `keep`: what this
    project made itself."""
    found = set()
    for info_path in (
        sorted(Path(folder).glob("*.json")) if folder is not None and Path(folder).is_dir() else []
    ):
        try:
            entry = json.loads(info_path.read_text())
            digest, info = entry.get("weights_sha256"), entry.get("info")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(digest, str) and len(digest) == 64 and isinstance(info, dict) and keep(info):
            found.add(digest)
    return found
