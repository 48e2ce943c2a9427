"""The box contact sheet: sample photos with their boxes drawn, to judge the detector by eye."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from PIL import Image, ImageDraw, ImageFont

from core.images import decode_photo

DETECTED = (0, 230, 90)  # green: the detected box, with its confidence
FALLBACK = (255, 150, 0)  # orange: no confident box, the whole photo stands in


def box_contact_sheet(
    manifest: pd.DataFrame,
    boxes: pd.DataFrame,
    data_root: Path,
    photos: int = 12,
    seed: int = 0,
    tile: int = 240,
) -> Image.Image:
    """Random photos with their boxes drawn (green: detected, with its confidence; orange: the whole-photo
    fallback), in a grid."""
    chosen = boxes.sample(n=min(photos, len(boxes)), random_state=seed) if len(boxes) else boxes
    paths = manifest.drop_duplicates("image").set_index("image")["path"]
    columns = 4
    rows = max(1, -(-len(chosen) // columns))
    sheet = Image.new("RGB", (columns * tile, rows * tile), (30, 30, 30))
    for i, row in enumerate(chosen.itertuples(index=False)):
        # Upright and 8-bit, as the boxes were found (core.images); the size is the full upright photo's.
        photo, (width, height) = decode_photo(Path(data_root) / paths[row.image], "RGB", (tile, tile))
        scale = min(tile / width, tile / height)
        photo = photo.resize((max(1, int(width * scale)), max(1, int(height * scale))))
        draw = ImageDraw.Draw(photo)
        color = FALLBACK if row.fallback else DETECTED
        draw.rectangle(
            [row.x0 * scale, row.y0 * scale, row.x1 * scale - 1, row.y1 * scale - 1], outline=color, width=3
        )
        label = "whole photo" if row.fallback else f"{row.confidence:.2f}"
        # Pillow's built-in font, sized (no font file, nothing to download), on a dark plate to stay readable.
        font = ImageFont.load_default(size=max(12, tile // 14))
        left, top, right, bottom = draw.textbbox((6, 4), label, font=font)
        draw.rectangle([left - 3, top - 2, right + 3, bottom + 2], fill=(0, 0, 0))
        draw.text((6, 4), label, fill=color, font=font)
        sheet.paste(photo, ((i % columns) * tile, (i // columns) * tile))
    return sheet
