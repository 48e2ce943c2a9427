"""Duplicates of a rendered photo, as the real data has them: the same file, re-encoded, resized or cropped.

A duplicate draws from its own image's ``PHOTO`` stream and starts from the JPEG bytes of its source.
"""

from __future__ import annotations

import io
import math

from PIL import Image

from synth.draws import PHOTO, stream

Box = tuple[int, int, int, int]


def encode_jpeg(im: Image.Image, quality: int) -> bytes:
    """The JPEG file of ``im`` at ``quality``."""
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def make_duplicate(
    seed: int, img_index: int, src_bytes: bytes, src_box: Box, src_quality: int, src_gray: bool
) -> tuple[bytes, Box, tuple[int, int], str, int, str, bool]:
    """An exact or near duplicate of a JPEG: same bytes, re-encoded, resized or slightly cropped.

    Returns (JPEG bytes, fluke box, size, mode, quality, kind, grayscale); kind is "exact", "requality",
    "resize" or "crop".
    """
    rng = stream(seed, PHOTO, img_index)
    kind = str(rng.choice(["exact", "requality", "resize", "crop"], p=[0.2, 0.25, 0.25, 0.3]))
    src = Image.open(io.BytesIO(src_bytes))
    src.load()
    W, H = src.size
    if kind == "exact":
        return src_bytes, tuple(src_box), src.size, src.mode, src_quality, kind, src_gray
    x0, y0, x1, y1 = (float(v) for v in src_box)
    im = src
    if kind == "crop":
        cl, cr, ct, cb = (int(round(rng.uniform(0.0, 0.04) * d)) for d in (W, W, H, H))
        cl, ct = min(cl, int(x1) - 1), min(ct, int(y1) - 1)  # never cut the whole fluke away
        cr, cb = min(cr, W - int(x0) - 1), min(cb, H - int(y0) - 1)
        cl, ct, cr, cb = max(cl, 0), max(ct, 0), max(cr, 0), max(cb, 0)
        im = im.crop((cl, ct, W - cr, H - cb))
        x0, x1 = max(0.0, x0 - cl), min(float(W - cr - cl), x1 - cl)
        y0, y1 = max(0.0, y0 - ct), min(float(H - cb - ct), y1 - ct)
    if kind == "resize" or (kind == "crop" and rng.random() < 0.5):
        f = rng.uniform(0.55, 0.92) if kind == "resize" else rng.uniform(0.75, 1.0)
        w0, h0 = im.size
        nw, nh = max(32, int(round(w0 * f))), max(32, int(round(h0 * f)))
        im = im.resize((nw, nh), Image.LANCZOS)
        sx, sy = nw / w0, nh / h0
        x0, x1, y0, y1 = x0 * sx, x1 * sx, y0 * sy, y1 * sy
    gray = src_gray
    if im.mode == "RGB" and rng.random() < 0.15:
        im = im.convert("L")
        gray = True
    q = int(rng.integers(60, 96))
    if kind == "requality" and abs(q - src_quality) < 5:
        q = src_quality - 10 if src_quality >= 70 else src_quality + 10
    w1, h1 = im.size
    bx = (
        int(min(max(math.floor(x0), 0), w1 - 1)),
        int(min(max(math.floor(y0), 0), h1 - 1)),
        0,
        0,
    )
    bx = (
        bx[0],
        bx[1],
        int(min(max(math.ceil(x1), bx[0] + 1), w1)),
        int(min(max(math.ceil(y1), bx[1] + 1), h1)),
    )
    return encode_jpeg(im, q), bx, im.size, im.mode, q, kind, gray
