"""A perceptual hash (imagehash's pHash, 64 bits) of every accepted photo, cached per photo.

A pHash looks at a 32x32 grayscale picture only, so a photo is decoded at reduced scale: libjpeg's DCT scaling
(Pillow's `draft`) decodes the luma channel at 1/2, 1/4 or 1/8 size, skipping most of the inverse DCT work and all
of the chroma. Work is spread over processes and cached per photo by content hash, so unchanged photos are
never hashed twice and a new photo costs only itself.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import imagehash
import numpy as np
import pandas as pd
from PIL import Image

from core.artifacts import HASH_COLUMNS
from core.caches import ValueCache, cached_map
from core.digests import stable_digest
from core.images import open_photo
from core.parallel import parallel_map

# Bump when the hash of a given file could change: the cache key includes it.
HASH_VERSION = "phash-1"
# The cache under `storage.cache_dir("image_hashes")`: a parquet table of (key, phash).
HASH_CACHE_FILE = "hashes.parquet"


@dataclass(frozen=True)
class HashSettings:
    """What decides a hash's value; part of every cache key."""

    hash_size: int = 8
    """pHash side in bits (8 -> 64-bit hash, 16 hex chars; the downstream contract expects 8)."""
    highfreq_factor: int = 4
    draft_side: int = 128
    """Short side (px) the JPEG decoder reduces to at most: the largest 1/2^k scale whose short side is still
    >= this, 4x pHash's 32 px input."""

    def key_parts(self) -> dict:
        return {
            "hash_size": self.hash_size,
            "highfreq_factor": self.highfreq_factor,
            "draft_side": self.draft_side,
        }


def open_reduced_grayscale(path: Path, min_side: int) -> Image.Image:
    """Decode a photo upright as grayscale (`core.images.open_photo`), a JPEG at the smallest DCT scale whose sides
    stay >= `min_side`."""
    return open_photo(path, "L", (min_side, min_side))


def open_full_grayscale(path: Path) -> Image.Image:
    return open_photo(path, "L")


def phash_hex(image: Image.Image, settings: HashSettings = HashSettings()) -> str:
    return str(imagehash.phash(image, hash_size=settings.hash_size, highfreq_factor=settings.highfreq_factor))


def hash_file(path: str, settings: HashSettings = HashSettings(), reduced: bool = True) -> str:
    """The pHash of one photo as hex; `reduced=False` decodes full size (the baseline and the accuracy check)."""
    image = (
        open_reduced_grayscale(Path(path), settings.draft_side)
        if reduced
        else open_full_grayscale(Path(path))
    )
    return phash_hex(image, settings)


def hash_files(
    paths: list[str],
    settings: HashSettings = HashSettings(),
    workers: int | None = None,
    reduced: bool = True,
) -> list[str]:
    """pHashes of many photos over `workers` processes, in input order."""
    return parallel_map(partial(hash_file, settings=settings, reduced=reduced), paths, workers=workers)


def cache_key(content_hash: str, settings: HashSettings) -> str:
    return stable_digest(content_hash, HASH_VERSION, settings.key_parts())


def hash_cache(folder: Path) -> ValueCache:
    """The per-photo hash cache in `folder` (the stage's cache folder): one `phash` per key."""
    return ValueCache(Path(folder) / HASH_CACHE_FILE, column="phash")


def compute_image_hashes(
    images: pd.DataFrame,
    root: Path,
    cache: ValueCache | None = None,
    settings: HashSettings = HashSettings(),
    workers: int | None = None,
) -> tuple[pd.DataFrame, dict]:
    """pHash of every row of `raw_images["images"]`; photos already in `cache` (`hash_cache`) are not decoded
    again.

    Returns the hash table (HASH_COLUMNS) and counts: `hashed` (decoded now), `from_cache`, `same_content` (rows
    sharing a file content decoded now), `seconds`.
    """
    root = Path(root)
    started = time.perf_counter()
    keys = [cache_key(h, settings) for h in images["content_hash"]]
    paths = images["path"].tolist()
    decoded: list[int] = []

    def compute(positions: list[int]) -> list[str]:
        # Identical files (exact duplicates) share a key: decode each content once.
        first: dict[str, int] = {}
        for i in positions:
            first.setdefault(keys[i], i)
        decoded.append(len(first))
        fresh = dict(
            zip(first, hash_files([str(root / paths[i]) for i in first.values()], settings, workers))
        )
        return [fresh[keys[i]] for i in positions]

    values, computed = cached_map(keys, compute, cache)
    table = pd.DataFrame(
        {
            "image": images["image"].to_numpy(),
            "split": images["split"].to_numpy(),
            "content_hash": images["content_hash"].to_numpy(),
            "phash": values,
        },
        columns=HASH_COLUMNS,
    )
    hashed = sum(decoded)
    stats = {
        "hashed": hashed,
        "from_cache": len(images) - computed,
        # Identical files (exact duplicates) share a key: one decode serves them all.
        "same_content": computed - hashed,
        "seconds": time.perf_counter() - started,
    }
    return table.reset_index(drop=True), stats


def hamming_distance(hex_a: str, hex_b: str) -> int:
    return int(
        np.unpackbits(
            np.frombuffer(bytes.fromhex(hex_a), np.uint8) ^ np.frombuffer(bytes.fromhex(hex_b), np.uint8)
        ).sum()
    )


def reduced_vs_full_distances(
    paths: list[str], settings: HashSettings = HashSettings(), workers: int | None = None
) -> np.ndarray:
    """Hamming distance between each photo's reduced-scale hash and its full-decode hash: the cost of the speed."""
    reduced = hash_files(paths, settings, workers=workers, reduced=True)
    full = hash_files(paths, settings, workers=workers, reduced=False)
    return np.array([hamming_distance(a, b) for a, b in zip(reduced, full)], dtype=np.int64)


def hash_images(
    images: pd.DataFrame,
    root: Path,
    cache: ValueCache | None,
    settings: HashSettings,
    workers: int | None,
    full_decode_sample: int,
) -> tuple[pd.DataFrame, dict]:
    """The `image_hashes` stage on plain tables: `compute_image_hashes`, then, on a sample of
    `full_decode_sample` photos (0: none), how far the reduced-scale hashes are from full-decode ones.

    The stats of `compute_image_hashes` gain `reduced_vs_full` (the distances, or None) and
    `reduced_vs_full_seconds`.
    """
    table, stats = compute_image_hashes(images, root, cache, settings, workers=workers)
    stats["reduced_vs_full"] = None
    if full_decode_sample and len(images):
        sample = images.sample(n=min(full_decode_sample, len(images)), random_state=0)
        started = time.perf_counter()
        paths = [str(Path(root) / p) for p in sample["path"]]
        stats["reduced_vs_full"] = reduced_vs_full_distances(paths, settings, workers)
        stats["reduced_vs_full_seconds"] = time.perf_counter() - started
    return table, stats
