"""Dagster side of the keypoints stage: `fluke_keypoints` and `fluke_outlines` (the local features of every photo's
fluke box: keypoints and the trailing edge), their checks, configs and metadata."""

from dataclasses import fields
from functools import partial

import numpy as np
import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetIn,
    Config,
    DataVersion,
    MetadataValue,
    Output,
    asset,
    asset_check,
)
from pydantic import Field

from assets.keypoints.features import (
    CODE_VERSION,
    extract_keypoints,
    keypoint_cache,
    keypoint_problems,
)
from assets.keypoints.outlines import CODE_VERSION as OUTLINES_CODE_VERSION
from assets.keypoints.outlines import outline_problems, trace_outlines
from assets.keypoints.sheets import keypoint_sheet, outline_sheet
from core.caches import ArrayCache
from core.dagster_types import FlukeKeypoints, FlukeOutlines, RawImages
from core.digests import content_version
from core.profiles import asset_version
from core.reporting import figure_metadata, image_metadata
from core.resources import FlukeData, FlukeStorage
from models.keypoints import KeypointSettings
from models.outline import OutlineSettings

FEW_KEYPOINTS = 20  # a photo with fewer can hardly be verified (a homography needs a good share of inliers)


class FlukeKeypointsConfig(Config):
    """Where keypoints are taken (the fluke box plus a margin, resized to a width) and how many;
    `models.keypoints.KeypointSettings`."""

    width: int = Field(
        default=KeypointSettings.width, ge=64, le=2048, description="pixels across the resized box"
    )
    margin: float = Field(
        default=KeypointSettings.margin,
        ge=0.0,
        le=1.0,
        description="added around the box, share of its size per side",
    )
    max_features: int = Field(
        default=KeypointSettings.max_features, ge=16, le=5000, description="SIFT keypoints kept per photo"
    )
    contrast_threshold: float = Field(
        default=KeypointSettings.contrast_threshold,
        gt=0.0,
        le=1.0,
        description="SIFT's contrast threshold (lower finds more, weaker keypoints)",
    )
    root_sift: bool = Field(default=KeypointSettings.root_sift, description="RootSIFT instead of SIFT")
    workers: int = Field(
        default=KeypointSettings.workers,
        ge=0,
        description="worker processes; 0 means FLUKEID_WORKERS or all cores",
    )

    def settings(self) -> KeypointSettings:
        return KeypointSettings(
            **{field.name: getattr(self, field.name) for field in fields(KeypointSettings)}
        )


@asset(
    code_version=asset_version("fluke_keypoints", CODE_VERSION),
    group_name="detect",
    description="RootSIFT keypoints of every photo's fluke box at a fixed width: flat points and descriptors "
    "plus a per-photo index.",
)
def fluke_keypoints(
    config: FlukeKeypointsConfig,
    data: FlukeData,
    storage: FlukeStorage,
    raw_images: RawImages,
    fluke_boxes: pd.DataFrame,
) -> Output[FlukeKeypoints]:
    settings = config.settings()
    stats: dict = {}
    value = extract_keypoints(
        raw_images["images"],
        fluke_boxes,
        data.root,
        settings,
        cache=keypoint_cache(storage.cache_dir("fluke_keypoints")),
        workers=settings.workers or None,
        stats=stats,
    )
    metadata = keypoints_metadata(value, stats, settings)
    if len(value["index"]):
        sheet = keypoint_sheet(raw_images["images"], fluke_boxes, value, data.root, settings)
        metadata["keypoint_sheet"] = image_metadata(
            sheet,
            f"Where do the keypoints fall? Fluke boxes at {settings.width} px wide, keypoints in orange",
        )
    return Output(value, metadata=metadata, data_version=DataVersion(content_version(value)))


def keypoints_metadata(value: FlukeKeypoints, stats: dict, settings: KeypointSettings) -> dict:
    counts = value["index"]["count"].to_numpy()
    few = float((counts < FEW_KEYPOINTS).mean()) if len(counts) else 0.0
    return {
        "photos": int(len(counts)),
        "keypoints": int(counts.sum()),
        "mean_keypoints_per_photo": round(float(counts.mean()) if len(counts) else 0.0, 1),
        "min_keypoints_per_photo": int(counts.min()) if len(counts) else 0,
        f"share_under_{FEW_KEYPOINTS}_keypoints": round(few, 4),
        "computed": int(stats["computed"]),
        "cached": int(stats["cached"]),
        "seconds": round(stats["seconds"], 2),
        # Throughput of the photos actually computed this run (cached ones cost a file read).
        "photos_per_second": round(stats["computed"] / max(stats["extract_seconds"], 1e-9), 1),
        "bytes": int(value["points"].nbytes + value["descriptors"].nbytes),
        "keypoint_histogram": figure_metadata(
            partial(draw_keypoint_counts, counts=counts, max_features=settings.max_features),
            f"Does every photo have enough keypoints to verify? Mean {counts.mean() if len(counts) else 0:.0f} "
            f"per photo, {few:.1%} under {FEW_KEYPOINTS}",
        ),
    }


def draw_keypoint_counts(ax, counts: np.ndarray, max_features: int) -> None:
    ax.hist(counts, bins=40, range=(0, max_features), color="#33658a")
    ax.axvline(FEW_KEYPOINTS, color="#f26419", linestyle="--", label=f"{FEW_KEYPOINTS} (too few to verify)")
    ax.set_xlabel(f"keypoints per photo (at most {max_features})")
    ax.set_ylabel("photos")
    ax.legend(fontsize=8)


@asset_check(
    asset=fluke_keypoints,
    additional_ins={"raw_images": AssetIn("raw_images")},
    description="Every accepted photo has an index row, and the slices tile the keypoint arrays.",
)
def fluke_keypoints_complete(fluke_keypoints: FlukeKeypoints, raw_images: RawImages) -> AssetCheckResult:
    problems = keypoint_problems(fluke_keypoints, raw_images["images"])
    return AssetCheckResult(
        passed=problems["missing"] == 0 and problems["tiled"] and problems["shapes"], metadata=problems
    )


# ---------------------------------------------------------------------------------------------------------------
# fluke_outlines


class FlukeOutlinesConfig(Config):
    """Where the trailing edge is traced (the fluke box plus margins, resized to a width);
    `models.outline.OutlineSettings`."""

    width: int = Field(default=OutlineSettings.width, ge=64, le=1024, description="pixels across the box")
    side: float = Field(
        default=OutlineSettings.side, ge=0.0, le=0.5, description="added left and right, share of the width"
    )
    above: float = Field(
        default=OutlineSettings.above,
        ge=0.05,
        le=1.0,
        description="added above, share of the height: the water GrabCut learns the background from",
    )
    below: float = Field(default=OutlineSettings.below, ge=0.0, le=0.5, description="added below")
    iterations: int = Field(default=OutlineSettings.iterations, ge=1, le=20, description="GrabCut iterations")
    min_columns: float = Field(
        default=OutlineSettings.min_columns,
        gt=0.0,
        le=1.0,
        description="share of the box's columns the fluke must reach, else the trace is refused",
    )
    workers: int = Field(
        default=0, ge=0, description="worker processes; 0 means FLUKEID_WORKERS or all cores"
    )

    def settings(self) -> OutlineSettings:
        return OutlineSettings(**{name: getattr(self, name) for name in OutlineSettings.__dataclass_fields__})


@asset(
    code_version=asset_version("fluke_outlines", OUTLINES_CODE_VERSION),
    group_name="detect",
    description="The trailing edge of every photo's fluke (GrabCut in the box, the fluke's upper boundary): one "
    "row of heights per photo, NaN where it could not be traced, and the reason.",
)
def fluke_outlines(
    config: FlukeOutlinesConfig,
    data: FlukeData,
    storage: FlukeStorage,
    raw_images: RawImages,
    fluke_boxes: pd.DataFrame,
) -> Output[FlukeOutlines]:
    settings = config.settings()
    stats: dict = {}
    value = trace_outlines(
        raw_images["images"],
        fluke_boxes,
        data.root,
        settings,
        cache=ArrayCache(storage.cache_dir("fluke_outlines")),
        workers=config.workers or None,
        stats=stats,
    )
    metadata = outlines_metadata(value, stats)
    if value["index"]["traced"].any():
        sheet = outline_sheet(raw_images["images"], fluke_boxes, value, data.root, settings)
        metadata["outline_sheet"] = image_metadata(
            sheet, "Does the red line follow each fluke's trailing edge? Tracing windows, edges in red"
        )
    return Output(value, metadata=metadata, data_version=DataVersion(content_version(value)))


def outlines_metadata(value: FlukeOutlines, stats: dict) -> dict:
    index = value["index"]
    reasons = index.loc[~index["traced"], "reason"].value_counts()
    return {
        "photos": int(len(index)),
        "traced": int(index["traced"].sum()),
        "traced_share": round(float(index["traced"].mean()) if len(index) else 0.0, 4),
        "not_traced": MetadataValue.json({str(k): int(v) for k, v in reasons.items()}),
        "computed": int(stats["computed"]),
        "cached": int(stats["cached"]),
        "seconds": round(stats["seconds"], 2),
        "photos_per_second": round(stats["computed"] / max(stats["trace_seconds"], 1e-9), 1),
    }


@asset_check(
    asset=fluke_outlines,
    additional_ins={"raw_images": AssetIn("raw_images")},
    description="Every accepted photo has an index row pointing inside the edges, its traced flag true to it.",
)
def fluke_outlines_complete(fluke_outlines: FlukeOutlines, raw_images: RawImages) -> AssetCheckResult:
    problems = outline_problems(fluke_outlines, raw_images["images"])
    passed = problems["missing"] == 0 and problems["rows_inside"] and problems["traced_flags_agree"]
    return AssetCheckResult(passed=passed and problems["shape_ok"], metadata=problems)
