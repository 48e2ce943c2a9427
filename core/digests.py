"""Digests: cache keys from settings, and data versions from an artifact's content."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd


def stable_digest(*parts: object) -> str:
    """A short hex digest of JSON-serialisable parts (configs, versions): the key half of a cache entry."""
    payload = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(payload).hexdigest()[:16]


def content_version(value: object) -> str:
    """A data version derived from an artifact's content, so identical output leaves downstream fresh."""
    digest = hashlib.sha256()
    _feed(digest, value)
    return digest.hexdigest()[:20]


def rows_version(array: np.ndarray, rows: np.ndarray, chunk: int = 4096) -> str:
    """`content_version(array[rows])`, the same digest, read `chunk` rows at a time: the rows of a memory-mapped
    store are never all in memory at once."""
    rows = np.asarray(rows, dtype=np.int64)
    digest = hashlib.sha256()
    digest.update(str(((len(rows), *array.shape[1:]), array.dtype.str)).encode())
    for start in range(0, len(rows), chunk):
        digest.update(np.ascontiguousarray(array[rows[start : start + chunk]]).tobytes())
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
