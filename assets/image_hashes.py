"""Stage 2: a perceptual hash (imagehash's pHash, 64 bits) of every accepted photo.

A pHash looks at a 32x32 grayscale picture only, so a photo is decoded at reduced scale: libjpeg's DCT scaling
(Pillow's `draft`) decodes the luma channel at 1/2, 1/4 or 1/8 size, skipping most of the inverse DCT work and all
of the chroma. Work is spread over processes and cached per photo by content hash, so unchanged photos are
never hashed twice and a new photo costs only itself.
"""

import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import imagehash
import numpy as np
import pandas as pd
from dagster import AssetExecutionContext, Config, DataVersion, MetadataValue, Output, asset
from PIL import Image

from core.caches import TableCache
from core.digests import content_version, stable_digest
from core.parallel import parallel_map
from core.profiles import asset_version
from core.reporting import figure_metadata, table_metadata
from core.resources import FlukeData, FlukeStorage

# Bump when the hash of a given file could change: the cache key includes it.
HASH_VERSION = "phash-1"
HASH_COLUMNS = ["image", "split", "content_hash", "phash"]


@dataclass(frozen=True)
class HashSettings:
    """What decides a hash's value; part of every cache key."""

    hash_size: int = 8
    highfreq_factor: int = 4
    # The decoder picks the largest 1/2^k scale whose short side is still >= this: 4x pHash's 32 px input.
    draft_side: int = 128

    def key_parts(self) -> dict:
        return {
            "hash_size": self.hash_size,
            "highfreq_factor": self.highfreq_factor,
            "draft_side": self.draft_side,
        }


# ---------------------------------------------------------------------------------------------------------------
# plain functions


def open_reduced_grayscale(path: Path, min_side: int) -> Image.Image:
    """Decode a JPEG as grayscale at the smallest DCT scale whose sides stay >= `min_side`."""
    with Image.open(path) as image:
        image.draft("L", (min_side, min_side))
        return image.convert("L")


def open_full_grayscale(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("L")


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


def compute_image_hashes(
    images: pd.DataFrame,
    root: Path,
    cache: TableCache | None = None,
    settings: HashSettings = HashSettings(),
    workers: int | None = None,
) -> tuple[pd.DataFrame, dict]:
    """pHash of every row of `raw_images["images"]`; photos already in `cache` are not decoded again.

    Returns the hash table (image, split, content_hash, phash) and counts: `hashed` (decoded now), `from_cache`,
    `same_content` (rows sharing a file content decoded now), `seconds`.
    """
    root = Path(root)
    started = time.perf_counter()
    keys = [cache_key(h, settings) for h in images["content_hash"]]
    cached = cache.lookup(keys) if cache is not None else pd.DataFrame()
    known = dict(zip(cached["key"], cached["phash"])) if "phash" in cached else {}
    from_cache = sum(key in known for key in keys)
    # Identical files (exact duplicates) share a key: decode each content once.
    missing_keys: dict[str, str] = {}
    for key, rel_path in zip(keys, images["path"]):
        if key not in known and key not in missing_keys:
            missing_keys[key] = str(root / rel_path)
    fresh = hash_files(list(missing_keys.values()), settings, workers=workers)
    fresh_rows = pd.DataFrame({"key": list(missing_keys), "phash": fresh})
    if cache is not None:
        cache.store(fresh_rows)
    known.update(zip(fresh_rows["key"], fresh_rows["phash"]))
    table = pd.DataFrame(
        {
            "image": images["image"].to_numpy(),
            "split": images["split"].to_numpy(),
            "content_hash": images["content_hash"].to_numpy(),
            "phash": [known[k] for k in keys],
        },
        columns=HASH_COLUMNS,
    )
    seconds = time.perf_counter() - started
    stats = {
        "hashed": len(missing_keys),
        "from_cache": int(from_cache),
        # Identical files (exact duplicates) share a key: one decode serves them all.
        "same_content": len(images) - len(missing_keys) - int(from_cache),
        "seconds": seconds,
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


# ---------------------------------------------------------------------------------------------------------------
# Dagster


class ImageHashesConfig(Config):
    hash_size: int = 8
    """pHash side in bits (8 -> 64-bit hash, 16 hex chars; the downstream contract expects 8)."""
    draft_side: int = 128
    """Short side (px) the JPEG decoder reduces to at most; pHash itself works on 32x32."""
    workers: int = 0
    """Processes for decoding; 0 uses FLUKEID_WORKERS or every core."""
    full_decode_sample: int = 200
    """Photos also hashed from a full-size decode to report how far reduced-scale hashes are from those (0: skip)."""


@asset(
    code_version=asset_version("image_hashes", "image_hashes-1"),
    group_name="dedup",
    description="64-bit perceptual hash (pHash) of every accepted photo, decoded at reduced scale, cached per photo.",
)
def image_hashes(
    context: AssetExecutionContext,
    config: ImageHashesConfig,
    raw_images: dict,
    data: FlukeData,
    storage: FlukeStorage,
) -> Output[pd.DataFrame]:
    images = raw_images["images"]
    settings = HashSettings(hash_size=config.hash_size, draft_side=config.draft_side)
    workers = config.workers or None
    cache = TableCache(storage.cache_dir("image_hashes") / "hashes.parquet")
    table, stats = compute_image_hashes(images, data.root, cache, settings, workers=workers)
    context.log.info(
        f"hashed {stats['hashed']} photos, {stats['from_cache']} from cache in {stats['seconds']:.1f}s"
    )

    metadata: dict = {
        "images": len(table),
        "hashed": stats["hashed"],
        "from_cache": stats["from_cache"],
        "same_content": stats["same_content"],
        "seconds": round(stats["seconds"], 2),
        "images_per_second": round(stats["hashed"] / max(stats["seconds"], 1e-9), 1),
        "distinct_hashes": int(table["phash"].nunique()),
        "sample": table_metadata(table.head(10)),
    }
    if config.full_decode_sample and len(images):
        sample = images.sample(n=min(config.full_decode_sample, len(images)), random_state=0)
        started = time.perf_counter()
        distances = reduced_vs_full_distances([str(data.root / p) for p in sample["path"]], settings, workers)
        counts = np.bincount(distances, minlength=1)

        def distance_histogram(ax):
            ax.bar(np.arange(counts.size), counts, color="#33658a")
            ax.set_xlabel("Hamming distance, reduced-scale vs full-decode pHash (bits of 64)")
            ax.set_ylabel("photos")

        metadata.update(
            {
                "reduced_vs_full_mean_distance": round(float(distances.mean()), 3),
                "reduced_vs_full_max_distance": int(distances.max()),
                "reduced_vs_full_identical_share": round(float((distances == 0).mean()), 4),
                "reduced_vs_full_histogram": figure_metadata(
                    distance_histogram,
                    f"Does the fast reduced-scale hash agree with a full decode? {len(distances)} photos, "
                    f"mean {distances.mean():.2f} bits apart",
                ),
                "reduced_vs_full_counts": MetadataValue.json(
                    {str(i): int(c) for i, c in enumerate(counts) if c}
                ),
                "reduced_vs_full_seconds": round(time.perf_counter() - started, 2),
            }
        )
    return Output(table, metadata=metadata, data_version=DataVersion(content_version(table)))
