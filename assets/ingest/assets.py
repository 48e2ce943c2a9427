"""Dagster definitions of the ingest stage: the data folder as an observable source, and `raw_images`."""

import time
from functools import partial

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    DataVersion,
    MetadataValue,
    ObserveResult,
    Output,
    asset,
    asset_check,
    observable_source_asset,
)

from assets.ingest.encounters import encounter_counts, encounters_version, find_encounters
from assets.ingest.inspection import inspection_cache
from assets.ingest.reviews import apply_reviews, review_counts, with_files, with_rejections
from assets.ingest.scan import (
    converted_counts,
    data_folder_fingerprint,
    known_photos_per_individual,
    label_statistics,
    scan_data_folder,
    source_counts,
    well_formed_counts,
)
from core.dagster_types import RawImages
from core.digests import content_version
from core.profiles import asset_version
from core.reporting import draw_photos_per_individual, figure_metadata, table_metadata
from core.resources import FlukeData, FlukeStorage


def draw_image_sizes(ax, images: pd.DataFrame) -> None:
    ax.scatter(images["width"], images["height"], s=4, alpha=0.4, color="#86bbd8")
    ax.set_xlabel("width (px)")
    ax.set_ylabel("height (px)")


def raw_images_metadata(value: RawImages, scan_stats: dict, seconds: float) -> dict:
    """Counts, rejections by reason, photos per whale and photo sizes, and how much the inspection cache saved."""
    manifest, rejected = value["images"], value["rejected"]
    stats = label_statistics(manifest)
    per_id = known_photos_per_individual(manifest)
    reasons = rejected["reason"].value_counts()
    converted = converted_counts(manifest)
    return {
        **stats,
        "rejected": int(len(rejected)),
        **source_counts(value.get("source"), rejected),
        **review_counts(value.get("reviews")),
        **encounter_counts(value.get("encounters")),
        "rejected_by_reason": MetadataValue.json({str(k): int(v) for k, v in reasons.items()}),
        "converted": int((manifest["converted"].fillna("") != "").sum()),
        "converted_by_kind": MetadataValue.json(converted),
        "images_per_individual": figure_metadata(
            partial(
                draw_photos_per_individual,
                photos_per_individual=per_id,
                xlabel="train photos of the individual",
            ),
            f"How many photos per whale? {per_id.size} known individuals, "
            f"new_whale {stats['new_whale_share']:.0%} of train",
        ),
        "image_sizes": figure_metadata(
            partial(draw_image_sizes, images=manifest),
            f"What sizes are the photos? {len(manifest)} accepted",
            width=4.5,
            height=3.5,
        ),
        "median_size": f"{int(manifest['width'].median()) if len(manifest) else 0}x"
        f"{int(manifest['height'].median()) if len(manifest) else 0}",
        "most_frequent_individuals": table_metadata(
            per_id.head(10).rename_axis("label").reset_index(name="photos")
        ),
        "rejected_examples": table_metadata(rejected, max_rows=15),
        "inspected": scan_stats["inspected"],
        "from_cache": scan_stats["from_cache"],
        "seconds": round(seconds, 2),
        "images_per_second": round(len(manifest) / max(seconds, 1e-9), 1),
    }


@observable_source_asset(
    group_name="ingest", description="The data folder as it is on disk; observed, never written."
)
def raw_image_files(data: FlukeData) -> ObserveResult:
    root = data.root
    if not (root / "train.csv").exists():
        raise FileNotFoundError(
            f"FLUKEID_DATA_DIR={root} holds no train.csv (expected a Kaggle layout: 2019 or Happywhale's)"
        )
    fingerprint = data_folder_fingerprint(root, data.allow_outside_links, species=data.species)
    version = with_files(fingerprint, [data.decisions_path])
    version = encounters_version(version, root, data.encounter_window_minutes)
    return ObserveResult(data_version=DataVersion(version))


@asset(
    deps=[raw_image_files],
    # -2: photos converted on read (PNG, CMYK, 16-bit, palette, EXIF rotation) are accepted, with `converted`;
    # paths resolving outside the data folder are rejected unread. -3: review decisions are applied (`reviews`);
    # encounters are read from encounters.csv and, when the window is on, EXIF times (`encounters`); the 2022
    # Happywhale layout is read too, filtered to `FlukeData.species` (`other_species`), and named in `source`.
    code_version=asset_version("raw_images", "raw_images-3"),
    group_name="ingest",
    description="Manifest of accepted photos (split, label, size, mode, content hash, conversion) and rejected "
    "inputs with reasons.",
)
def raw_images(context: AssetExecutionContext, data: FlukeData, storage: FlukeStorage) -> Output[RawImages]:
    started = time.perf_counter()
    cache = inspection_cache(storage.cache_dir("raw_images") / "inspected.parquet")
    scan_stats: dict = {}
    manifest, rejected = scan_data_folder(
        data.root,
        cache=cache,
        stats=scan_stats,
        allow_outside_links=data.allow_outside_links,
        species=data.species,
    )
    manifest, reviews, refused = apply_reviews(manifest, data.decisions_path)
    rejected = with_rejections(rejected, refused)
    encounters, unplaced = find_encounters(manifest, data.root, data.encounter_window_minutes, cache)
    rejected = with_rejections(rejected, unplaced)
    value: RawImages = {
        "images": manifest,
        "rejected": rejected,
        "reviews": reviews,
        "encounters": encounters,
        "source": scan_stats["source"],
    }
    metadata = raw_images_metadata(value, scan_stats, time.perf_counter() - started)
    return Output(value, metadata=metadata, data_version=DataVersion(content_version(value)))


@asset_check(
    asset=raw_images,
    description="Every accepted photo has a unique name within its split and a label in train.",
)
def raw_images_well_formed(raw_images: RawImages) -> AssetCheckResult:
    counts = well_formed_counts(raw_images["images"])
    return AssetCheckResult(
        passed=counts["repeated_names"] == 0 and counts["unlabelled_train"] == 0, metadata=counts
    )
