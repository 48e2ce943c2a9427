"""Dagster side of the crop stage: `fluke_tensors`, its check, its config and metadata."""

from dataclasses import fields

import numpy as np
import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    AssetIn,
    Config,
    DataVersion,
    Output,
    asset,
    asset_check,
)
from pydantic import Field

from assets.crop.crops import (
    CODE_VERSION,
    CropSettings,
    build_tensors,
    missing_tensor_rows,
    tensor_contact_sheet,
)
from core.caches import ArrayCache
from core.dagster_types import FlukeTensors, RawImages
from core.digests import content_version
from core.profiles import asset_version
from core.reporting import image_metadata
from core.resources import FlukeData, FlukeStorage


class FlukeTensorsConfig(Config):
    """Output size (height x width, the fluke's wide aspect), margin around the box (share of its size per side);
    `assets.crop.crops.CropSettings`."""

    height: int = Field(default=CropSettings.height, ge=1, description="output height (pixels)")
    width: int = Field(default=CropSettings.width, ge=1, description="output width (pixels)")
    margin: float = Field(
        default=CropSettings.margin,
        ge=0.0,
        le=1.0,
        description="added around the box, share of its size per side",
    )
    grayscale: bool = Field(default=CropSettings.grayscale, description="one luma channel instead of RGB")
    keep_aspect: bool = Field(
        default=CropSettings.keep_aspect,
        description="grow the crop to the output aspect (no stretching) instead of resizing the box as it is",
    )
    workers: int = Field(
        default=CropSettings.workers,
        ge=0,
        description="worker processes; 0 means FLUKEID_WORKERS or all cores",
    )

    def settings(self) -> CropSettings:
        return CropSettings(**{field.name: getattr(self, field.name) for field in fields(CropSettings)})


@asset(
    code_version=asset_version("fluke_tensors", CODE_VERSION),
    group_name="detect",
    description="Every photo cropped to its fluke box (with margin), resized, uint8 N x C x H x W plus a row index.",
)
def fluke_tensors(
    context: AssetExecutionContext,
    config: FlukeTensorsConfig,
    data: FlukeData,
    storage: FlukeStorage,
    raw_images: RawImages,
    fluke_boxes: pd.DataFrame,
) -> Output[FlukeTensors]:
    settings = config.settings()
    tensors, index, stats = build_tensors(
        raw_images["images"],
        fluke_boxes,
        data.root,
        settings,
        cache=ArrayCache(storage.cache_dir("fluke_tensors")),
        workers=settings.workers or None,
    )
    value: FlukeTensors = {"tensors": tensors, "index": index}
    metadata = tensors_metadata(tensors, stats, fluke_boxes)
    return Output(value, metadata=metadata, data_version=DataVersion(content_version(value)))


def tensors_metadata(tensors: np.ndarray, stats: dict, fluke_boxes: pd.DataFrame) -> dict:
    metadata = {
        "shape": str(tuple(tensors.shape)),
        "bytes": int(tensors.nbytes),
        "computed": int(stats["computed"]),
        "cached": int(stats["cached"]),
        "seconds": round(stats["seconds"], 2),
        # Decode throughput of the photos actually computed this run (cached ones cost a file read).
        "images_per_second": round(stats["computed"] / max(stats["decode_seconds"], 1e-9), 1),
        "fallback_crops": int(fluke_boxes["fallback"].sum()) if "fallback" in fluke_boxes else 0,
    }
    if len(tensors):
        metadata["contact_sheet"] = image_metadata(
            tensor_contact_sheet(tensors),
            f"What does the embedding model see? Sample crops, {tensors.shape[2]} x {tensors.shape[3]} px",
        )
    return metadata


@asset_check(
    asset=fluke_tensors,
    additional_ins={"raw_images": AssetIn("raw_images")},
    description="Every accepted photo has a tensor row, and the index matches the array.",
)
def fluke_tensors_complete(fluke_tensors: FlukeTensors, raw_images: RawImages) -> AssetCheckResult:
    tensors, index = fluke_tensors["tensors"], fluke_tensors["index"]
    missing = missing_tensor_rows(tensors, index, raw_images["images"])
    rows_match = len(index) == len(tensors) and index["row"].is_unique
    return AssetCheckResult(
        passed=missing.empty and rows_match,
        metadata={
            "missing": int(len(missing)),
            "index_rows": int(len(index)),
            "tensor_rows": int(len(tensors)),
            "dtype": str(tensors.dtype),
        },
    )
