"""Atomic file writes and file digests.

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


def to_npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()
