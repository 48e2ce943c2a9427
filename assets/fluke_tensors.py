"""Stage: every photo cropped to its fluke, resized once, and stored as one uint8 array training reads directly.

Follow one photo: `crop_window` grows its box by `margin` and to the output's wide aspect (shifted back inside the
photo where it can be); `crop_and_resize` asks libjpeg for a reduced-scale decode (1/2, 1/4, 1/8) whenever the crop
still has at least the output's pixels at that scale, then crops and resizes in one step. The result is cached per
photo, and lands as one row of the N x C x H x W `tensors` array, with `index` saying which row is which photo.
"""

import time
from dataclasses import dataclass
from pathlib import Path

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
from PIL import Image

from core.caches import ArrayCache
from core.digests import content_version, stable_digest
from core.parallel import parallel_map
from core.profiles import asset_version
from core.reporting import image_metadata
from core.resources import FlukeData, FlukeStorage

CODE_VERSION = "fluke_tensors-1"
RESAMPLE = Image.Resampling.BILINEAR


class FlukeTensorsConfig(Config):
    """Output size (height x width, the fluke's wide aspect), margin around the box (share of its size per side)."""

    height: int = 128
    width: int = 256
    margin: float = 0.1
    grayscale: bool = True
    # Grow the crop to the output aspect (no stretching) instead of resizing the box as it is.
    keep_aspect: bool = True
    # Worker processes; 0 means FLUKEID_WORKERS or all cores.
    workers: int = 0


@dataclass(frozen=True)
class CropSpec:
    """Everything one worker needs for one photo (picklable)."""

    path: str
    window: tuple[float, float, float, float]
    width: int
    height: int
    grayscale: bool
    cache_root: str = ""
    key: str = ""


# ---------------------------------------------------------------------------------------------------------------
# plain functions


def crop_window(
    box: tuple[float, float, float, float],
    image_size: tuple[int, int],
    margin: float,
    aspect: float | None,
) -> tuple[float, float, float, float]:
    """The crop (left, top, right, bottom) around `box`: `margin` of its size added per side, grown to `aspect`
    (width / height) when given, shifted inside the photo where it fits and clipped where it does not."""
    image_w, image_h = image_size
    x0, y0, x1, y1 = box
    w, h = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    w, h = w * (1 + 2 * margin), h * (1 + 2 * margin)
    if aspect:
        if w / h < aspect:
            w = h * aspect
        else:
            h = w / aspect
    left, right = _fit(cx - w / 2, cx + w / 2, image_w)
    top, bottom = _fit(cy - h / 2, cy + h / 2, image_h)
    return left, top, right, bottom


def _fit(low: float, high: float, limit: float) -> tuple[float, float]:
    if high - low >= limit:
        return 0.0, float(limit)
    if low < 0:
        return 0.0, high - low
    if high > limit:
        return limit - (high - low), float(limit)
    return low, high


def crop_and_resize(spec: CropSpec) -> np.ndarray:
    """One photo's crop as uint8 C x H x W, decoded at the smallest JPEG scale that keeps the output's detail."""
    mode = "L" if spec.grayscale else "RGB"
    left, top, right, bottom = spec.window
    with Image.open(spec.path) as image:
        full_w, full_h = image.size
        # draft() picks the largest 1/2^k reduction whose size is still >= the request: ask for the size at which
        # the crop window has exactly the output's pixels.
        request = (
            max(1, int(np.ceil(full_w * spec.width / max(right - left, 1e-6)))),
            max(1, int(np.ceil(full_h * spec.height / max(bottom - top, 1e-6)))),
        )
        image.draft(mode, request)
        sx, sy = image.size[0] / full_w, image.size[1] / full_h
        decoded = image.convert(mode)
        out = decoded.resize(
            (spec.width, spec.height), RESAMPLE, box=(left * sx, top * sy, right * sx, bottom * sy)
        )
    array = np.asarray(out, dtype=np.uint8)
    return array[None] if array.ndim == 2 else np.ascontiguousarray(array.transpose(2, 0, 1))


def naive_crop_and_resize(spec: CropSpec) -> np.ndarray:
    """The baseline: full-resolution decode, crop, resize (for the benchmark and for tests)."""
    mode = "L" if spec.grayscale else "RGB"
    with Image.open(spec.path) as image:
        decoded = image.convert(mode)
    left, top, right, bottom = spec.window
    out = decoded.crop((round(left), round(top), round(right), round(bottom))).resize(
        (spec.width, spec.height), RESAMPLE
    )
    array = np.asarray(out, dtype=np.uint8)
    return array[None] if array.ndim == 2 else np.ascontiguousarray(array.transpose(2, 0, 1))


def _crop_and_cache(spec: CropSpec) -> np.ndarray:
    array = crop_and_resize(spec)
    if spec.cache_root:
        ArrayCache(Path(spec.cache_root)).put(spec.key, array)
    return array


def tensor_settings(config: FlukeTensorsConfig) -> dict:
    """The config fields that change a photo's tensor (the cache key's config half)."""
    return {
        "height": config.height,
        "width": config.width,
        "margin": config.margin,
        "grayscale": config.grayscale,
        "keep_aspect": config.keep_aspect,
    }


def crop_specs(
    manifest: pd.DataFrame, boxes: pd.DataFrame, data_root: Path, config: FlukeTensorsConfig
) -> list[CropSpec]:
    """One CropSpec per manifest row, in manifest order (photos with no box row use their whole frame)."""
    by_image = boxes.drop_duplicates(["image", "split"]).set_index(["image", "split"])
    aspect = config.width / config.height if config.keep_aspect else None
    specs = []
    for photo in manifest.itertuples(index=False):
        key = (photo.image, photo.split)
        if key in by_image.index:
            row = by_image.loc[key]
            box = (float(row["x0"]), float(row["y0"]), float(row["x1"]), float(row["y1"]))
        else:
            box = (0.0, 0.0, float(photo.width), float(photo.height))
        window = crop_window(box, (int(photo.width), int(photo.height)), config.margin, aspect)
        specs.append(
            CropSpec(str(Path(data_root) / photo.path), window, config.width, config.height, config.grayscale)
        )
    return specs


def build_tensors(
    manifest: pd.DataFrame,
    boxes: pd.DataFrame,
    data_root: Path,
    config: FlukeTensorsConfig,
    cache: ArrayCache | None = None,
    workers: int | None = None,
) -> tuple[np.ndarray, pd.DataFrame, dict]:
    """(uint8 N x C x H x W tensors, index (row, image, split), stats: computed, cached, seconds).

    Per-photo results are cached by (content hash, box, config, version): a new photo or a moved box costs only itself.
    """
    started = time.perf_counter()
    specs = crop_specs(manifest, boxes, data_root, config)
    settings = tensor_settings(config)
    channels = 1 if config.grayscale else 3
    tensors = np.empty((len(specs), channels, config.height, config.width), dtype=np.uint8)
    todo: list[int] = []
    todo_specs: list[CropSpec] = []
    for i, (spec, content_hash) in enumerate(zip(specs, manifest["content_hash"])):
        key = stable_digest(content_hash, [round(v, 2) for v in spec.window], settings, CODE_VERSION)
        found = cache.get(key) if cache is not None else None
        if found is not None and found.shape == tensors.shape[1:]:
            tensors[i] = found
            continue
        todo.append(i)
        todo_specs.append(
            CropSpec(
                spec.path,
                spec.window,
                spec.width,
                spec.height,
                spec.grayscale,
                str(cache.root) if cache is not None else "",
                key,
            )
        )
    decode_started = time.perf_counter()
    for i, array in zip(todo, parallel_map(_crop_and_cache, todo_specs, workers=workers)):
        tensors[i] = array
    decode_seconds = time.perf_counter() - decode_started
    index = pd.DataFrame(
        {
            "row": np.arange(len(specs), dtype=np.int64),
            "image": manifest["image"].to_numpy(),
            "split": manifest["split"].to_numpy(),
        }
    )
    stats = {
        "computed": len(todo),
        "cached": len(specs) - len(todo),
        "seconds": time.perf_counter() - started,
        "decode_seconds": decode_seconds,
    }
    return tensors, index, stats


def tensor_contact_sheet(
    tensors: np.ndarray, photos: int = 16, seed: int = 0, columns: int = 4
) -> Image.Image:
    """Random crops tiled in a grid, as the model will see them."""
    n = len(tensors)
    chosen = np.sort(np.random.default_rng(seed).choice(n, size=min(photos, n), replace=False)) if n else []
    _, channels, height, width = tensors.shape
    rows = max(1, -(-len(chosen) // columns))
    sheet = Image.new("RGB", (columns * width, rows * height), (30, 30, 30))
    for i, row in enumerate(chosen):
        array = np.asarray(tensors[row])
        tile = Image.fromarray(array[0] if channels == 1 else array.transpose(1, 2, 0))
        sheet.paste(tile.convert("RGB"), ((i % columns) * width, (i // columns) * height))
    return sheet


def missing_tensor_rows(tensors: np.ndarray, index: pd.DataFrame, manifest: pd.DataFrame) -> pd.DataFrame:
    """Accepted photos without a tensor row (or an index pointing past the array)."""
    valid = index[(index["row"] >= 0) & (index["row"] < len(tensors))]
    merged = manifest[["image", "split"]].merge(valid[["image", "split"]], how="left", indicator=True)
    return merged[merged["_merge"] == "left_only"][["image", "split"]]


# ---------------------------------------------------------------------------------------------------------------
# Dagster


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
    raw_images: dict,
    fluke_boxes: pd.DataFrame,
) -> Output[dict]:
    manifest = raw_images["images"]
    tensors, index, stats = build_tensors(
        manifest,
        fluke_boxes,
        data.root,
        config,
        cache=ArrayCache(storage.cache_dir("fluke_tensors")),
        workers=config.workers or None,
    )
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
    value = {"tensors": tensors, "index": index}
    return Output(value, metadata=metadata, data_version=DataVersion(content_version(value)))


@asset_check(
    asset=fluke_tensors,
    additional_ins={"raw_images": AssetIn("raw_images")},
    description="Every accepted photo has a tensor row, and the index matches the array.",
)
def fluke_tensors_complete(fluke_tensors: dict, raw_images: dict) -> AssetCheckResult:
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
