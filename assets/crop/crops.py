"""Every photo cropped to its fluke, resized once, and stored as one uint8 array training reads directly.

Follow one photo: `crop_window` grows its box by `margin` and to the output's wide aspect (shifted back inside the
photo where it can be); `crop_and_resize` asks libjpeg for a reduced-scale decode (1/2, 1/4, 1/8) whenever the crop
still has at least the output's pixels at that scale, then crops and resizes in one step. The result is cached per
photo, and lands as one row of the N x C x H x W `tensors` array, with `index` saying which row is which photo.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from core.artifacts import TENSOR_INDEX_COLUMNS
from core.caches import ArrayCache, cached_map
from core.digests import stable_digest
from core.images import decode_photo, open_photo
from core.parallel import parallel_map

CODE_VERSION = "fluke_tensors-1"
RESAMPLE = Image.Resampling.BILINEAR


@dataclass(frozen=True)
class CropSettings:
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

    def request(full: tuple[int, int]) -> tuple[int, int]:
        # draft() picks the largest 1/2^k reduction whose size is still >= the request: ask for the size at which
        # the crop window has exactly the output's pixels.
        return (
            max(1, int(np.ceil(full[0] * spec.width / max(right - left, 1e-6)))),
            max(1, int(np.ceil(full[1] * spec.height / max(bottom - top, 1e-6)))),
        )

    # Upright and 8-bit whatever the file (core.images): the window is in the upright photo's pixels.
    decoded, (full_w, full_h) = decode_photo(spec.path, mode, request)
    sx, sy = decoded.size[0] / full_w, decoded.size[1] / full_h
    out = decoded.resize(
        (spec.width, spec.height), RESAMPLE, box=(left * sx, top * sy, right * sx, bottom * sy)
    )
    array = np.asarray(out, dtype=np.uint8)
    return array[None] if array.ndim == 2 else np.ascontiguousarray(array.transpose(2, 0, 1))


def naive_crop_and_resize(spec: CropSpec) -> np.ndarray:
    """The baseline: full-resolution decode, crop, resize (for the benchmark and for tests)."""
    mode = "L" if spec.grayscale else "RGB"
    decoded = open_photo(spec.path, mode)
    left, top, right, bottom = spec.window
    out = decoded.crop((round(left), round(top), round(right), round(bottom))).resize(
        (spec.width, spec.height), RESAMPLE
    )
    array = np.asarray(out, dtype=np.uint8)
    return array[None] if array.ndim == 2 else np.ascontiguousarray(array.transpose(2, 0, 1))


def tensor_settings(settings: CropSettings) -> dict:
    """The settings that change a photo's tensor (the cache key's settings half)."""
    return {
        "height": settings.height,
        "width": settings.width,
        "margin": settings.margin,
        "grayscale": settings.grayscale,
        "keep_aspect": settings.keep_aspect,
    }


def tensor_cache_key(content_hash: str, spec: CropSpec, settings: CropSettings) -> str:
    return stable_digest(
        content_hash, [round(v, 2) for v in spec.window], tensor_settings(settings), CODE_VERSION
    )


def crop_specs(
    manifest: pd.DataFrame, boxes: pd.DataFrame, data_root: Path, settings: CropSettings
) -> list[CropSpec]:
    """One CropSpec per manifest row, in manifest order (photos with no box row use their whole frame)."""
    by_image = boxes.drop_duplicates(["image", "split"]).set_index(["image", "split"])
    aspect = settings.width / settings.height if settings.keep_aspect else None
    specs = []
    for photo in manifest.itertuples(index=False):
        key = (photo.image, photo.split)
        if key in by_image.index:
            row = by_image.loc[key]
            box = (float(row["x0"]), float(row["y0"]), float(row["x1"]), float(row["y1"]))
        else:
            box = (0.0, 0.0, float(photo.width), float(photo.height))
        window = crop_window(box, (int(photo.width), int(photo.height)), settings.margin, aspect)
        specs.append(
            CropSpec(
                str(Path(data_root) / photo.path), window, settings.width, settings.height, settings.grayscale
            )
        )
    return specs


class _ShapedArrays:
    """An ArrayCache that answers only entries of the expected shape (anything else is recomputed)."""

    def __init__(self, cache: ArrayCache, shape: tuple[int, ...]):
        self.cache, self.shape = cache, shape

    def lookup(self, keys: Iterable[str]) -> dict:
        return {key: array for key, array in self.cache.lookup(keys).items() if array.shape == self.shape}

    def store(self, values: dict) -> None:
        self.cache.store(values)


def build_tensors(
    manifest: pd.DataFrame,
    boxes: pd.DataFrame,
    data_root: Path,
    settings: CropSettings,
    cache: ArrayCache | None = None,
    workers: int | None = None,
) -> tuple[np.ndarray, pd.DataFrame, dict]:
    """(uint8 N x C x H x W tensors, index (`TENSOR_INDEX_COLUMNS`), stats: computed, cached, seconds,
    decode_seconds).

    Per-photo results are cached by (content hash, crop window, settings, version): a new photo or a moved box
    costs only itself. The missing crops are made over `workers` processes.
    """
    started = time.perf_counter()
    specs = crop_specs(manifest, boxes, data_root, settings)
    keys = [tensor_cache_key(h, spec, settings) for spec, h in zip(specs, manifest["content_hash"])]
    shape = (1 if settings.grayscale else 3, settings.height, settings.width)
    decode = {"seconds": 0.0}

    def crop(positions: list[int]) -> list[np.ndarray]:
        decode_started = time.perf_counter()
        arrays = parallel_map(crop_and_resize, [specs[i] for i in positions], workers=workers)
        decode["seconds"] = time.perf_counter() - decode_started
        return arrays

    arrays, computed = cached_map(keys, crop, _ShapedArrays(cache, shape) if cache is not None else None)
    tensors = np.empty((len(specs), *shape), dtype=np.uint8)
    for i, array in enumerate(arrays):
        tensors[i] = array
    index = pd.DataFrame(
        {
            "row": np.arange(len(specs), dtype=np.int64),
            "image": manifest["image"].to_numpy(),
            "split": manifest["split"].to_numpy(),
        },
        columns=TENSOR_INDEX_COLUMNS,
    )
    stats = {
        "computed": computed,
        "cached": len(specs) - computed,
        "seconds": time.perf_counter() - started,
        "decode_seconds": decode["seconds"],
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
