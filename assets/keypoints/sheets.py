"""The keypoints stage's pictures: a few photos' fluke boxes as SIFT sees them, with their keypoints drawn, and a
few tracing windows with their traced trailing edges."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from assets.keypoints.features import photo_boxes
from core.artifacts import FlukeKeypoints, FlukeOutlines
from models.keypoints import KeypointSettings, box_image, features_of
from models.outline import OutlineSettings, outline_window

POINT_COLOUR = (242, 100, 25)


def keypoint_sheet(
    manifest: pd.DataFrame,
    boxes: pd.DataFrame,
    keypoints: FlukeKeypoints,
    data_root: Path,
    settings: KeypointSettings,
    photos: int = 4,
    seed: int = 0,
    columns: int = 2,
) -> Image.Image:
    """`photos` random photos (boxed ones first), each its resized box with its keypoints as small circles."""
    photo_box = photo_boxes(manifest, boxes)
    boxed = [i for i, box in enumerate(photo_box) if box is not None]
    pool = boxed if len(boxed) >= photos else list(range(len(manifest)))
    rng = np.random.default_rng(seed)
    chosen = (
        sorted(rng.choice(len(pool), size=min(photos, len(pool)), replace=False).tolist()) if pool else []
    )
    tiles = [_tile(manifest, keypoints, data_root, settings, pool[i], photo_box[pool[i]]) for i in chosen]
    return tiled(tiles, settings.width, columns)


def tiled(tiles: list[Image.Image], width: int, columns: int) -> Image.Image:
    """`tiles` in rows of `columns`, each cell `width` wide and as tall as the tallest tile, on dark grey."""
    rows = max(1, -(-len(tiles) // columns))
    height = max((tile.size[1] for tile in tiles), default=width // 2)
    sheet = Image.new("RGB", (columns * width, rows * height), (30, 30, 30))
    for i, tile in enumerate(tiles):
        sheet.paste(tile, ((i % columns) * width, (i // columns) * height))
    return sheet


def _tile(manifest, keypoints, data_root, settings, position, box) -> Image.Image:
    tile = box_image(Path(data_root) / manifest["path"].iloc[position], box, settings).convert("RGB")
    draw = ImageDraw.Draw(tile)
    row = keypoints["index"].iloc[position]
    for x, y in features_of(keypoints, int(row["start"]), int(row["count"])).points:
        draw.ellipse((x - 2, y - 2, x + 2, y + 2), outline=POINT_COLOUR)
    draw.text((3, 2), f"{row['image']}: {int(row['count'])} keypoints")
    return tile


EDGE_COLOUR = (255, 60, 60)


def outline_sheet(
    manifest: pd.DataFrame,
    boxes: pd.DataFrame,
    outlines: FlukeOutlines,
    data_root: Path,
    settings: OutlineSettings,
    photos: int = 6,
    seed: int = 0,
    columns: int = 3,
) -> Image.Image:
    """`photos` random boxed photos, each its tracing window with the traced trailing edge drawn in red (or
    "not traced" and why)."""
    photo_box = photo_boxes(manifest, boxes)
    boxed = [i for i, box in enumerate(photo_box) if box is not None]
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(boxed, size=min(photos, len(boxed)), replace=False).tolist()) if boxed else []
    tiles = []
    for position in chosen:
        rgb, inner = outline_window(
            Path(data_root) / manifest["path"].iloc[position], photo_box[position], settings
        )
        tile = Image.fromarray(rgb)
        draw = ImageDraw.Draw(tile)
        row = outlines["index"].iloc[position]
        edge = np.asarray(outlines["edges"][int(row["row"])], dtype=np.float64)
        if row["traced"]:
            # heights are box widths up from the window's top row, negated (see models.outline.trace_edge)
            xs = inner[0] + np.linspace(0, inner[2] - inner[0] - 1, len(edge))
            ys = -edge * (inner[2] - inner[0])
            draw.line(list(zip(xs.tolist(), ys.tolist())), fill=EDGE_COLOUR, width=2)
        draw.text((3, 2), f"{row['image']}" + ("" if row["traced"] else f": {row['reason']}"))
        tiles.append(tile)
    return tiled(tiles, settings.width + int(round(2 * settings.side * settings.width)), columns)
