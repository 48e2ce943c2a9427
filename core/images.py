"""Decoding a photo the one way every stage does: upright, 8-bit, in the mode the stage asks for.

A photo may come as a PNG (or another format Pillow reads) named `.jpg`, as a CMYK JPEG, with 16 bits per
channel, as a palette image, or with its pixels stored rotated and an EXIF orientation saying how to show it.
`open_photo` turns each of them into what a plain 8-bit L or RGB JPEG would give, so the stages see the same
pixels (and boxes, crops and keypoints the same coordinates): the upright photo, as a person sees it. What was
converted is named by `conversions` (the manifest's `converted` column). A plain upright L or RGB JPEG is decoded
exactly as before: no copy, no conversion beyond the mode asked for.

Reduced-scale decoding (libjpeg's 1/2, 1/4, 1/8 through Pillow's `draft`) stays available: `request` is the size
the caller needs in upright pixels, and is turned to the stored orientation before the decoder sees it.
"""

from __future__ import annotations

from collections.abc import Callable
from os import PathLike
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageOps

Size = tuple[int, int]

EXIF_ORIENTATION = 0x0112
# EXIF orientations 5-8 store the photo turned by a quarter: width and height swap when it is shown upright.
QUARTER_TURNS = frozenset({5, 6, 7, 8})
HIGH_BIT_DEPTH_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
PALETTE_MODES = frozenset({"P", "PA"})
PLAIN_MODES = frozenset({"L", "RGB"})
# A camera's multi-picture JPEG (MPO) is a JPEG whose first picture is the photo: nothing to convert.
JPEG_FORMATS = frozenset({"JPEG", "MPO"})


class DecodedPhoto(NamedTuple):
    """A decoded photo and the full upright size (width, height) its pixel coordinates refer to."""

    image: Image.Image
    size: Size


def orientation(image: Image.Image) -> int:
    """The EXIF orientation (1 = upright; 0 or missing counts as upright)."""
    try:
        value = image.getexif().get(EXIF_ORIENTATION, 1)
    except Exception:  # noqa: BLE001 - unreadable EXIF says nothing about orientation
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def upright_size(image: Image.Image) -> Size:
    """The full size (width, height) of an opened photo as shown upright."""
    width, height = image.size
    return (height, width) if orientation(image) in QUARTER_TURNS else (width, height)


def conversions(image: Image.Image) -> list[str]:
    """What `open_photo` changes in an opened (not yet decoded) photo, beyond the L/RGB mode asked for:
    the format when not JPEG (`png`, `tiff`, ...), `cmyk`, `16-bit`, `palette`, another mode by name
    (`rgba`, `la`, `1`, ...), and `exif-rotation`. Empty for a plain upright L or RGB JPEG."""
    found = []
    if image.format not in JPEG_FORMATS:
        found.append(str(image.format or "unknown").lower())
    mode = image.mode
    if mode == "CMYK":
        found.append("cmyk")
    elif mode in HIGH_BIT_DEPTH_MODES:
        found.append("16-bit")
    elif mode in PALETTE_MODES:
        found.append("palette")
    elif mode not in PLAIN_MODES:
        found.append(mode.lower())
    if orientation(image) != 1:
        found.append("exif-rotation")
    return found


def eight_bit(image: Image.Image) -> Image.Image:
    """A 16-bit (or 32-bit integer / float) grey image as 8-bit L, its range scaled instead of clipped (Pillow's
    own `convert("L")` clips everything above 255 to white)."""
    values = np.asarray(image, dtype=np.float64)
    low, high = float(values.min(initial=0.0)), float(values.max(initial=0.0))
    if image.mode == "F" and low >= 0.0 and high <= 1.0:
        scale = 255.0  # floats in [0, 1]
    elif high <= 255.0 and image.mode not in ("I;16", "I;16B", "I;16L", "I;16N"):
        scale = 1.0  # an integer image that only holds 8-bit values
    else:
        scale = 255.0 / (65535.0 if high <= 65535.0 else high)
    return Image.fromarray(np.clip(np.rint(values * scale), 0, 255).astype(np.uint8), mode="L")


def decode(
    image: Image.Image, mode: str = "RGB", request: Size | Callable[[Size], Size] | None = None
) -> DecodedPhoto:
    """Decode an opened photo upright in `mode` (L or RGB), at reduced JPEG scale when `request` (the upright
    size needed, or a function of the full upright size giving it) allows."""
    turn = orientation(image)
    full = upright_size(image)
    if request is not None:
        wanted = request(full) if callable(request) else request
        wanted = (max(1, int(wanted[0])), max(1, int(wanted[1])))
        # draft() is libjpeg's DCT scaling (a no-op for other formats); it works in stored pixels.
        stored = wanted[::-1] if turn in QUARTER_TURNS else wanted
        image.draft(mode if image.mode in PLAIN_MODES else None, stored)
    image.load()
    if turn != 1:
        image = ImageOps.exif_transpose(image)
    if image.mode in HIGH_BIT_DEPTH_MODES:
        image = eight_bit(image)
    elif image.mode in PALETTE_MODES:
        image = image.convert("RGBA")  # the palette's transparency, if any, is honoured before it is dropped
    return DecodedPhoto(image if image.mode == mode else image.convert(mode), full)


def decode_photo(
    path: str | PathLike, mode: str = "RGB", request: Size | Callable[[Size], Size] | None = None
) -> DecodedPhoto:
    """`decode` of the photo at `path`: the pixels and the full upright size they refer to."""
    with Image.open(path) as image:
        decoded = decode(image, mode, request)
        # A photo that needed no conversion is still the opened file's image: load it before the file closes.
        decoded.image.load()
        return decoded


def open_photo(
    path: str | PathLike, mode: str = "RGB", request: Size | Callable[[Size], Size] | None = None
) -> Image.Image:
    """The photo at `path` upright, 8-bit, in `mode` (see `decode`)."""
    return decode_photo(path, mode, request).image
