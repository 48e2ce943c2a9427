"""The dedup stage in Dagster: `image_hashes`, `duplicate_groups`, their configs and checks."""

import time
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetIn,
    Config,
    DataVersion,
    MetadataValue,
    Output,
    asset,
    asset_check,
)
from pydantic import Field

from assets.dedup.groups import alias_conflicts, find_duplicates, group_statistics
from assets.dedup.pairs import DedupSettings
from assets.dedup.phash import HashSettings, hash_cache, hash_images
from assets.dedup.sheets import pairs_contact_sheet
from assets.dedup.truth import TRUTH_FILE, meets_truth, truth_scores
from core.dagster_types import DuplicateGroups, RawImages
from core.digests import content_version
from core.profiles import asset_version
from core.reporting import figure_metadata, image_metadata, table_metadata
from core.resources import FlukeData, FlukeStorage

# ---------------------------------------------------------------------------------------------------------------
# image_hashes


class ImageHashesConfig(Config):
    hash_size: int = Field(
        default=HashSettings.hash_size,
        ge=2,
        description="pHash side in bits (8 -> 64-bit hash, 16 hex chars; the downstream contract expects 8).",
    )
    draft_side: int = Field(
        default=HashSettings.draft_side,
        ge=1,
        description="Short side (px) the JPEG decoder reduces to at most; pHash itself works on 32x32.",
    )
    workers: int = Field(
        default=0, ge=0, description="Processes for decoding; 0 uses FLUKEID_WORKERS or every core."
    )
    full_decode_sample: int = Field(
        default=200,
        ge=0,
        description="Photos also hashed from a full-size decode to report how far reduced-scale hashes are "
        "from those (0: skip).",
    )

    def settings(self) -> HashSettings:
        return HashSettings(hash_size=self.hash_size, draft_side=self.draft_side)


def draw_full_decode_distances(ax, counts: np.ndarray) -> None:
    ax.bar(np.arange(counts.size), counts, color="#33658a")
    ax.set_xlabel("Hamming distance, reduced-scale vs full-decode pHash (bits of 64)")
    ax.set_ylabel("photos")


def image_hashes_metadata(table: pd.DataFrame, stats: dict) -> dict:
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
    distances = stats["reduced_vs_full"]
    if distances is None:
        return metadata
    counts = np.bincount(distances, minlength=1)
    return {
        **metadata,
        "reduced_vs_full_mean_distance": round(float(distances.mean()), 3),
        "reduced_vs_full_max_distance": int(distances.max()),
        "reduced_vs_full_identical_share": round(float((distances == 0).mean()), 4),
        "reduced_vs_full_histogram": figure_metadata(
            partial(draw_full_decode_distances, counts=counts),
            f"Does the fast reduced-scale hash agree with a full decode? {len(distances)} photos, "
            f"mean {distances.mean():.2f} bits apart",
        ),
        "reduced_vs_full_counts": MetadataValue.json({str(i): int(c) for i, c in enumerate(counts) if c}),
        "reduced_vs_full_seconds": round(stats["reduced_vs_full_seconds"], 2),
    }


@asset(
    code_version=asset_version("image_hashes", "image_hashes-1"),
    group_name="dedup",
    description="64-bit perceptual hash (pHash) of every accepted photo, decoded at reduced scale, cached per photo.",
)
def image_hashes(
    context: AssetExecutionContext,
    config: ImageHashesConfig,
    raw_images: RawImages,
    data: FlukeData,
    storage: FlukeStorage,
) -> Output[pd.DataFrame]:
    # The table's columns: `core.artifacts.HASH_COLUMNS`.
    cache = hash_cache(storage.cache_dir("image_hashes"))
    table, stats = hash_images(
        raw_images["images"],
        data.root,
        cache,
        config.settings(),
        config.workers or None,
        config.full_decode_sample,
    )
    context.log.info(
        f"hashed {stats['hashed']} photos, {stats['from_cache']} from cache in {stats['seconds']:.1f}s"
    )
    return Output(
        table, metadata=image_hashes_metadata(table, stats), data_version=DataVersion(content_version(table))
    )


# ---------------------------------------------------------------------------------------------------------------
# duplicate_groups


class DuplicateGroupsConfig(Config):
    max_distance: int = Field(
        default=DedupSettings.max_distance,
        ge=0,
        le=64,
        description="pHash Hamming distance (bits of 64) within which a pair becomes a candidate.",
    )
    min_similarity: float = Field(
        default=DedupSettings.min_similarity,
        ge=0.0,
        le=1.0,
        description="Correlation of the aligned detail views (64 px, high-pass) a candidate needs to count as "
        "a duplicate.",
    )
    max_crop: float = Field(
        default=DedupSettings.max_crop,
        ge=0.0,
        lt=0.5,
        description="Largest crop per side (fraction) the verification undoes.",
    )
    max_neighbours: int = Field(
        default=DedupSettings.max_neighbours,
        ge=0,
        le=1024,
        description="Candidates per photo: its nearest pHashes within max_distance (0: all of them, whose "
        "count can grow as the square of the photos).",
    )
    min_coarse: float = Field(
        default=DedupSettings.min_coarse,
        ge=0.0,
        le=1.0,
        description="Best coarse (16 px, blurred) crop correlation below which a candidate is rejected "
        "without the fine crop search.",
    )
    workers: int = Field(
        default=0, ge=0, description="Processes for thumbnail decoding; 0 uses FLUKEID_WORKERS or every core."
    )

    def settings(self) -> DedupSettings:
        return DedupSettings(
            max_distance=self.max_distance,
            min_similarity=self.min_similarity,
            max_crop=self.max_crop,
            max_neighbours=self.max_neighbours,
            min_coarse=self.min_coarse,
        )


def draw_pair_distances(ax, pairs: pd.DataFrame, max_distance: int) -> None:
    bins = np.arange(max_distance + 2) - 0.5
    ax.hist(
        [pairs.loc[pairs["verified"], "distance"], pairs.loc[~pairs["verified"], "distance"]],
        bins=bins,
        stacked=True,
        label=["verified duplicate", "rejected by pixel check"],
        color=["#33658a", "#f6ae2d"],
    )
    ax.set_yscale("log")  # the few true duplicates sit under thousands of near misses
    ax.set_xlabel("pHash Hamming distance of the pair (bits of 64)")
    ax.set_ylabel("candidate pairs (log scale)")
    ax.legend(fontsize=8)


def duplicate_groups_metadata(
    value: DuplicateGroups, details: dict, settings: DedupSettings, root: Path, seconds: float
) -> dict:
    groups, aliases, matches = value["groups"], value["aliases"], value["test_matches"]
    pairs = details["pairs"]
    verified = int(pairs["verified"].sum())
    metadata: dict = {
        **group_statistics(groups, aliases, matches),
        "candidate_pairs": int(len(pairs)),
        "verified_pairs": verified,
        "rejected_pairs": int((~pairs["verified"]).sum()),
        "hamming_histogram": figure_metadata(
            partial(draw_pair_distances, pairs=pairs, max_distance=settings.max_distance),
            f"Which near-identical hashes are real duplicates? {verified} of {len(pairs)} candidate pairs verified",
        ),
        "seconds": round(seconds, 2),
        "search_seconds": round(details["search_seconds"], 3),
        "verify_seconds": round(details["verify_seconds"], 3),
        "images_per_second": round(len(groups) / max(seconds, 1e-9), 1),
        "aliases": table_metadata(aliases),
        "test_matches_sample": table_metadata(matches),
    }
    shown = pairs[pairs["verified"]].sort_values("distance", ascending=False)
    if len(shown):
        metadata["duplicate_pairs"] = image_metadata(
            pairs_contact_sheet(shown, root),
            "Are the merged photos really the same picture? Verified pairs, least similar hashes first",
        )
        metadata["hardest_verified_pairs"] = table_metadata(
            shown[["image_a", "image_b", "distance", "similarity"]].round(3), max_rows=10
        )
    rejected = pairs[~pairs["verified"]].sort_values("similarity", ascending=False)
    if len(rejected):
        metadata["closest_rejected_pairs"] = table_metadata(
            rejected[["image_a", "image_b", "distance", "similarity"]].round(3), max_rows=10
        )
    return metadata


@asset(
    code_version=asset_version("duplicate_groups", "duplicate_groups-1"),
    group_name="dedup",
    description="Groups of duplicate photos (faiss pHash search + pixel check), label aliases, test photos that "
    "duplicate train photos.",
)
def duplicate_groups(
    context: AssetExecutionContext,
    config: DuplicateGroupsConfig,
    raw_images: RawImages,
    image_hashes: pd.DataFrame,
    data: FlukeData,
) -> Output[DuplicateGroups]:
    settings = config.settings()
    started = time.perf_counter()
    value, details = find_duplicates(
        raw_images["images"], image_hashes, data.root, settings, workers=config.workers or None
    )
    seconds = time.perf_counter() - started
    metadata = duplicate_groups_metadata(value, details, settings, data.root, seconds)
    context.log.info(
        f"{metadata['duplicate_groups']} duplicate groups, {metadata['label_aliases']} aliases, "
        f"{metadata['test_matches']} test matches in {seconds:.1f}s"
    )
    return Output(value, metadata=metadata, data_version=DataVersion(content_version(value)))


@asset_check(
    asset=duplicate_groups,
    additional_ins={"raw_images": AssetIn("raw_images")},
    description="No duplicate group mixes two known ids unless they are recorded as aliases of one another.",
)
def duplicate_groups_aliases_recorded(
    raw_images: RawImages, duplicate_groups: DuplicateGroups
) -> AssetCheckResult:
    conflicts = alias_conflicts(raw_images["images"], duplicate_groups)
    return AssetCheckResult(
        passed=conflicts.empty,
        metadata={
            "groups_with_unrecorded_aliases": int(conflicts["group"].nunique()),
            "examples": table_metadata(conflicts),
        },
    )


def truth_metadata(scores: dict, path: Path) -> dict:
    return {**{f"truth_{k}": v for k, v in scores.items()}, "truth_source": MetadataValue.path(str(path))}


@asset_check(
    asset=duplicate_groups,
    description="Pairwise precision and recall of the groups against the generator's duplicates.csv, when the "
    "data folder has one (synthetic data only); passes saying so when it has none.",
)
def duplicate_groups_match_generator_truth(
    duplicate_groups: DuplicateGroups, data: FlukeData
) -> AssetCheckResult:
    scores = truth_scores(duplicate_groups["groups"], data.root)
    if scores is None:
        return AssetCheckResult(passed=True, metadata={"truth_source": "no truth file"})
    return AssetCheckResult(
        passed=meets_truth(scores),
        severity=AssetCheckSeverity.WARN,
        metadata=truth_metadata(scores, data.root / TRUTH_FILE),
    )
