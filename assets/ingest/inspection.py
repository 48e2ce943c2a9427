"""Opening and inspecting one photo: whether the pipeline can decode it, what decoding converts, and if it cannot,
why not.

A photo is opened read-only and never written; it is decoded the way every stage decodes it
(`core.images.decode`), so a photo accepted here is one the stages can read. What was learned about a file is
cached under a key made of its path, size and modification time, so a rerun opens only new or rewritten files.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from pathlib import Path

import numpy as np
from PIL import Image

from core.caches import RecordCache, cached_map
from core.digests import stable_digest
from core.images import conversions, decode, upright_size
from core.parallel import parallel_map

# Real photos are about 1 MP; anything past this is a decompression bomb, refused before decoding.
MAX_PIXELS = 40_000_000
# Bump when `inspect_image` could judge an unchanged file differently: the per-file cache key includes it.
# -2: PNG, CMYK, 16-bit, palette and EXIF-rotated photos are converted (`converted`) instead of rejected; sizes
# are the upright photo's; non-regular files are rejected unread. -3: the EXIF capture time is read (`taken`),
# which encounters by time need: a cached report of an unchanged file lacks it, so every file is read once again.
INSPECT_VERSION = "inspect-3"
# EXIF tags of when the photo was taken: DateTimeOriginal in the Exif IFD, else the file's DateTime in IFD0.
EXIF_IFD, DATE_TIME_ORIGINAL, DATE_TIME = 0x8769, 36867, 306

# Why a photo is rejected (the `reason` of a rejected row); scan.py adds the reasons of train.csv and folders.
# Only what cannot be decoded is rejected: every format and mode `core.images.open_photo` converts is used.
REJECTION_REASONS = (
    "missing_file",
    "not_a_file",
    "zero_bytes",
    "decompression_bomb",
    "corrupt_image",
    "unsupported_mode",
    "truncated_image",
)


@dataclass(frozen=True)
class ImageReport:
    """What `inspect_image` learned about one file: either its properties or why it is rejected.

    `width` x `height` is the photo upright (after its EXIF orientation), the frame every stage's boxes and crops
    use; `mode` is the file's own PIL mode; `converted` what decoding changes (`core.images.conversions`, joined
    by `+`: e.g. `png`, `cmyk`, `16-bit`, `palette`, `exif-rotation`), empty for a plain L or RGB JPEG;
    `taken` when the photo was taken, from its EXIF (`2019-07-01T08:30:00`), "" when it carries no date."""

    width: int = 0
    height: int = 0
    mode: str = ""
    is_grayscale: bool = False
    bytes: int = 0
    content_hash: str = ""
    reason: str = ""
    detail: str = ""
    converted: str = ""
    taken: str = ""


# The cache stores one column per report field next to `key`.
REPORT_COLUMNS = [field.name for field in fields(ImageReport)]


def inspect_image(path: Path) -> ImageReport:
    """Open one photo read-only and check that the pipeline can decode it (converting it where needed)."""
    path = Path(path)
    if not path.exists():
        return ImageReport(reason="missing_file", detail=f"{path.name} is listed but not in the folder")
    if not path.is_file():
        # A FIFO, device or folder: reading it could block or never end, so it is not opened at all.
        return ImageReport(reason="not_a_file", detail=f"{path.name} is not a regular file")
    data = path.read_bytes()
    size = len(data)
    base = {"bytes": size, "content_hash": hashlib.sha256(data).hexdigest()}
    if size == 0:
        return ImageReport(**base, reason="zero_bytes", detail="file is empty")
    try:
        image = Image.open(io.BytesIO(data))  # the bytes just hashed, not a second read of the file
    except Image.DecompressionBombError as error:
        return ImageReport(**base, reason="decompression_bomb", detail=str(error))
    except Exception as error:  # noqa: BLE001 - an unreadable header is a rejection, never a crash
        return ImageReport(**base, reason="corrupt_image", detail=f"unreadable header: {error}"[:200])
    with image:
        mode = image.mode
        width, height = upright_size(image)
        if width * height > MAX_PIXELS:
            return ImageReport(
                **base, reason="decompression_bomb", detail=f"{width}x{height} exceeds {MAX_PIXELS} pixels"
            )
        converted = "+".join(conversions(image))
        taken = taken_at(image)
        try:
            # Decode at 1/8 scale the way the stages decode: libjpeg still walks the whole entropy stream, so
            # truncation is caught, and every conversion a stage will make is made here once.
            small = np.asarray(decode(image, "RGB", (max(1, width // 8), max(1, height // 8))).image)
        except Exception as error:  # noqa: BLE001 - any decoder failure is a rejection, never a crash
            return ImageReport(**base, **decode_failure(error, mode))
    grayscale = bool(
        np.abs(small[..., 0].astype(np.int16) - small[..., 1]).mean() < 2
        and np.abs(small[..., 1].astype(np.int16) - small[..., 2]).mean() < 2
    )
    return ImageReport(
        width=width,
        height=height,
        mode=mode,
        is_grayscale=grayscale,
        converted=converted,
        taken=taken,
        **base,
    )


def taken_at(image: Image.Image) -> str:
    """When an opened photo was taken, as ISO-8601 without a zone (EXIF stores local camera time), or "" when its
    EXIF has no well-formed date. EXIF writes `YYYY:MM:DD HH:MM:SS`; anything else (blank `0000:00:00`, a
    truncated string, an unreadable EXIF block) says nothing about the time and is ignored, never a rejection."""
    try:
        exif = image.getexif()
        values = [exif.get_ifd(EXIF_IFD).get(DATE_TIME_ORIGINAL), exif.get(DATE_TIME)]
    except Exception:  # noqa: BLE001 - a damaged EXIF block is a photo without a date
        return ""
    for value in values:
        if isinstance(value, bytes):
            value = value.decode("ascii", "replace")
        if not isinstance(value, str):
            continue
        try:
            return datetime.strptime(value.strip().rstrip("\x00"), "%Y:%m:%d %H:%M:%S").isoformat()
        except ValueError:
            continue
    return ""


def decode_failure(error: Exception, mode: str) -> dict:
    """The reason and detail of a photo whose pixels could not be decoded or converted."""
    message = str(error)
    if isinstance(error, ValueError) and "conversion" in message:
        return {"reason": "unsupported_mode", "detail": f"mode {mode}: {message}"[:200]}
    reason = "truncated_image" if "truncated" in message.lower() else "corrupt_image"
    return {"reason": reason, "detail": f"{type(error).__name__}: {message}"[:200]}


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
