"""Opening and inspecting one photo: whether the pipeline can use it as it is, and if not, why not.

A photo is opened read-only and never written. What was learned about a file is cached under a key made of its
path, size and modification time, so a rerun opens only new or rewritten files.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
from PIL import Image

from core.caches import RecordCache, cached_map
from core.digests import stable_digest
from core.parallel import parallel_map

# Real photos are about 1 MP; anything past this is a decompression bomb, refused before decoding.
MAX_PIXELS = 40_000_000
EXIF_ORIENTATION = 0x0112
# Bump when `inspect_image` could judge an unchanged file differently: the per-file cache key includes it.
INSPECT_VERSION = "inspect-1"
HIGH_BIT_DEPTH_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}

# Why a photo is rejected (the `reason` of a rejected row); scan.py adds the reasons of train.csv and folders.
REJECTION_REASONS = (
    "missing_file",
    "zero_bytes",
    "decompression_bomb",
    "corrupt_image",
    "high_bit_depth",
    "not_jpeg",
    "cmyk_image",
    "unsupported_mode",
    "exif_rotation",
    "truncated_image",
)


@dataclass(frozen=True)
class ImageReport:
    """What `inspect_image` learned about one file: either its properties or why it is rejected."""

    width: int = 0
    height: int = 0
    mode: str = ""
    is_grayscale: bool = False
    bytes: int = 0
    content_hash: str = ""
    reason: str = ""
    detail: str = ""


# The cache stores one column per report field next to `key` (the layout of existing cache files).
REPORT_COLUMNS = [field.name for field in fields(ImageReport)]


def inspect_image(path: Path) -> ImageReport:
    """Open one photo read-only and check that the pipeline can use it as it is."""
    path = Path(path)
    if not path.exists():
        return ImageReport(reason="missing_file", detail=f"{path.name} is listed but not in the folder")
    data = path.read_bytes()
    size = len(data)
    content_hash = hashlib.sha256(data).hexdigest()
    base = {"bytes": size, "content_hash": content_hash}
    if size == 0:
        return ImageReport(**base, reason="zero_bytes", detail="file is empty")
    try:
        image = Image.open(path)
    except Image.DecompressionBombError as error:
        return ImageReport(**base, reason="decompression_bomb", detail=str(error))
    except Exception as error:  # noqa: BLE001 - an unreadable header is a rejection, never a crash
        return ImageReport(**base, reason="corrupt_image", detail=f"unreadable header: {error}"[:200])
    with image:
        fmt, mode, (width, height) = image.format, image.mode, image.size
        if mode in HIGH_BIT_DEPTH_MODES:
            return ImageReport(
                **base, reason="high_bit_depth", detail=f"{fmt} in mode {mode}; expected 8-bit L or RGB"
            )
        if fmt != "JPEG":
            return ImageReport(**base, reason="not_jpeg", detail=f"format is {fmt}, expected JPEG")
        if width * height > MAX_PIXELS:
            return ImageReport(
                **base, reason="decompression_bomb", detail=f"{width}x{height} exceeds {MAX_PIXELS} pixels"
            )
        if mode not in ("L", "RGB"):
            reason = "cmyk_image" if mode == "CMYK" else "unsupported_mode"
            return ImageReport(**base, reason=reason, detail=f"mode {mode}; expected L or RGB")
        orientation = image.getexif().get(EXIF_ORIENTATION, 1)
        if orientation not in (0, 1):
            return ImageReport(
                **base,
                reason="exif_rotation",
                detail=f"EXIF orientation {orientation}: pixels are stored rotated; boxes would not match",
            )
        try:
            # Decode at 1/8 scale: libjpeg still walks the whole entropy stream, so truncation is caught.
            image.draft(mode, (max(1, width // 8), max(1, height // 8)))
            image.load()
            small = np.asarray(image)
        except Exception as error:  # noqa: BLE001 - any decoder failure is a rejection, never a crash
            reason = "truncated_image" if "truncated" in str(error).lower() else "corrupt_image"
            return ImageReport(**base, reason=reason, detail=f"{type(error).__name__}: {error}"[:200])
    grayscale = mode == "L" or bool(
        np.abs(small[..., 0].astype(np.int16) - small[..., 1]).mean() < 2
        and np.abs(small[..., 1].astype(np.int16) - small[..., 2]).mean() < 2
    )
    return ImageReport(width=width, height=height, mode=mode, is_grayscale=grayscale, **base)


def inspection_cache(path: Path) -> RecordCache:
    """The per-file inspection cache (`storage/cache/raw_images/inspected.parquet`): one report per key."""
    return RecordCache(path, REPORT_COLUMNS)


def inspection_key(path: Path) -> str:
    """The cache key of one file: its path, size and modification time; "" (never cached) when it is missing."""
    try:
        stat = path.stat()
    except OSError:
        return ""  # missing: inspected (and rejected) every time, never cached
    return stable_digest(INSPECT_VERSION, str(path), stat.st_size, stat.st_mtime_ns)


def inspect_images(
    paths: list[Path], cache: RecordCache | None = None, workers: int | None = None
) -> tuple[list[ImageReport], int]:
    """`inspect_image` over many files, in parallel; with a cache, a file whose name, size and modification time
    are unchanged is not read again. Returns the reports and how many files were inspected now."""
    if cache is None:
        return parallel_map(inspect_image, paths, workers=workers), len(paths)

    def inspect_missing(positions: list[int]) -> list[dict]:
        reports = parallel_map(inspect_image, [paths[i] for i in positions], workers=workers)
        return [asdict(report) for report in reports]

    keys = [inspection_key(path) for path in paths]
    records, inspected = cached_map(keys, inspect_missing, cache)
    return [
        ImageReport(**{column: record[column] for column in REPORT_COLUMNS}) for record in records
    ], inspected
