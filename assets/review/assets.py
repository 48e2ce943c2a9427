"""Dagster definitions of the review stage: `review_queue` (what `flukeid review` serves) and
`decided_identities` (the export a catalogue imports)."""

import time

import pandas as pd
from dagster import AssetCheckResult, AssetIn, Config, DataVersion, MetadataValue, Output, asset, asset_check
from pydantic import Field

from assets.review.identities import decided_identities as identities_table
from assets.review.identities import first_choices
from assets.review.queue import QueueSettings, build_queue
from core.dagster_types import FlukeKeypoints, GalleryIndex, RawImages, ReviewQueue
from core.digests import content_version
from core.files import atomic_path
from core.profiles import asset_version
from core.reporting import table_metadata
from core.resources import FlukeStorage


class ReviewQueueConfig(Config):
    gallery_photos: int = Field(
        default=QueueSettings.gallery_photos,
        ge=1,
        le=100,
        description="Gallery photos of each candidate compared with the item's photo to pick the one shown.",
    )
    max_lines: int = Field(
        default=QueueSettings.max_lines,
        ge=0,
        le=1000,
        description="Matched keypoint pairs kept per candidate.",
    )

    def settings(self) -> QueueSettings:
        return QueueSettings(gallery_photos=self.gallery_photos, max_lines=self.max_lines)


def queue_metadata(value: ReviewQueue, seconds: float) -> dict:
    """How much there is to review and where the doubt is."""
    items = value["items"]
    top = items.head(10)[["item", "priority", "photos", "top_label", "top_probability"]]
    return {
        "items": int(len(items)),
        "test_photos": int(value["summary"]["test_photos"]),
        "encounter_items": int((items["photos"] > 1).sum()),
        "expected_map5_gain_of_first_50": round(
            float(items["priority"].head(50).sum()) / max(1, len(items)), 4
        ),
        "expected_map5_gain_of_all": round(float(items["priority"].sum()) / max(1, len(items)), 4),
        "most_uncertain": table_metadata(top),
        "review_with": MetadataValue.md("`flukeid review` (or `make review`), then `flukeid update`"),
        "seconds": round(seconds, 2),
    }


@asset(
    code_version=asset_version("review_queue", "review_queue-1"),
    group_name="review",
    description="Test photos to review, most uncertain first (expected MAP@5 gain), each with its five "
    "candidates' best-matching gallery photos and matched keypoints; served by `flukeid review`.",
)
def review_queue(
    config: ReviewQueueConfig,
    submission: pd.DataFrame,
    submission_matches: pd.DataFrame,
    raw_images: RawImages,
    fluke_boxes: pd.DataFrame,
    fluke_keypoints: FlukeKeypoints,
    gallery_index: GalleryIndex,
) -> Output[ReviewQueue]:
    started = time.perf_counter()
    value = build_queue(
        submission_matches,
        submission,
        raw_images,
        fluke_boxes,
        fluke_keypoints,
        gallery_index["gallery"],
        config.settings(),
    )
    metadata = queue_metadata(value, time.perf_counter() - started)
    return Output(value, metadata=metadata, data_version=DataVersion(content_version(value)))


@asset_check(
    asset=review_queue,
    additional_ins={"raw_images": AssetIn("raw_images")},
    description="Every accepted test photo is in exactly one item.",
)
def review_queue_covers_test_photos(review_queue: ReviewQueue, raw_images: RawImages) -> AssetCheckResult:
    images = raw_images["images"]
    test = set(images.loc[images["split"] == "test", "image"])
    queued = review_queue["photos"]["image"]
    missing, repeated = sorted(test - set(queued)), int(queued.duplicated().sum())
    return AssetCheckResult(
        passed=not missing and repeated == 0,
        metadata={
            "missing": MetadataValue.json(missing[:20]),
            "missing_count": len(missing),
            "repeated": repeated,
        },
    )


def identities_metadata(table: pd.DataFrame, path) -> dict:
    by = table["decided_by"].str.split(" ").str[0].str.split(":").str[0].value_counts()
    return {
        "photos": int(len(table)),
        "decided_by_review": int(by.get("review", 0)),
        "decided_by_model": int(by.get("model", 0)),
        "path": str(path),
        "preview": table_metadata(table.head(10)),
    }


@asset(
    code_version=asset_version("decided_identities", "decided_identities-1"),
    group_name="review",
    description="Every test photo's individual as a catalogue imports it (image, individual, decided_by, "
    "probability); also at $FLUKEID_STORAGE_DIR/decided_identities.csv.",
)
def decided_identities(
    storage: FlukeStorage, review_queue: ReviewQueue, raw_images: RawImages
) -> Output[pd.DataFrame]:
    images = raw_images["images"]
    test_images = images.loc[images["split"] == "test", "image"].tolist()
    model = first_choices(review_queue["candidates"], review_queue["photos"])
    table = identities_table(test_images, raw_images.get("reviews"), model)
    target = storage.root / "decided_identities.csv"
    with atomic_path(target) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    metadata = identities_metadata(table, target)
    return Output(table, metadata=metadata, data_version=DataVersion(content_version(table)))
