"""The pictures of the review page: fluke crops, a query beside a candidate with their matched keypoints drawn
between them, and the whole item as one shareable panel.

A crop is `models.keypoints.box_image` of the photo's box at the queue's keypoint width and margin: the frame the
queue's `lines` are in, so a line's ends land on the keypoints RANSAC kept. Crops are made on demand and kept in a
bounded LRU (`CropCache`): a page shows the same query five times and the candidates' gallery photos recur.
Text uses PIL's built-in font (nothing is downloaded).
"""

from __future__ import annotations

import io
import math
import os
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from models.keypoints import Box, KeypointSettings, box_image
from review.queue import GALLERY_BOX, ReviewQueue, box_of

TILE = (320, 160)  # (width, height) a crop is fitted into, aspect kept
GAP = 48  # pixels between the query and the candidate, where the lines cross
THUMB = (160, 80)  # an encounter's photos in the panel's strip
TEXT_WIDTH = 300  # the panel's column of labels and evidence
MARGIN = 12
HEADER_HEIGHT = 34
NEW_WHALE_HEIGHT = 34  # a new_whale candidate's row: text only
MAX_LINES = 80  # lines drawn per candidate (more only hide the crops)
CROP_CACHE_SIZE = 256  # crops kept (a 384 x 192 grey crop is 74 kB)
BACKGROUND = (250, 250, 248)
INK = (20, 20, 20)
MUTED = (110, 110, 110)
PLACEHOLDER = 200  # grey of a crop whose photo cannot be read
# Distinct, readable on grey photos; a line's colour says nothing, it only tells neighbouring lines apart.
PALETTE = [
    (230, 25, 75),
    (60, 180, 75),
    (255, 200, 25),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
]


def font(size: int = 14) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # a Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


class CropCache:
    """Crops of photos inside one data folder, the `capacity` most recently used kept in memory."""

    def __init__(self, data_dir: str | os.PathLike, capacity: int = CROP_CACHE_SIZE):
        self.data_dir = Path(data_dir).resolve()
        self.capacity = capacity
        self._crops: OrderedDict[tuple, Image.Image] = OrderedDict()
        self._lock = threading.Lock()
        self.renders = 0  # crops made (not found in memory), for tests and curiosity

    def crop(self, path: str, box: Box | None, settings: KeypointSettings) -> Image.Image:
        """The grey crop of `path` (relative to the data folder) around `box`, as `box_image` frames it with
        `settings`; a labelled grey placeholder when the photo is missing, unreadable or outside the folder."""
        key = (str(path), box, settings)
        with self._lock:
            if key in self._crops:
                self._crops.move_to_end(key)
                return self._crops[key]
        image = self._render(str(path), box, settings)
        with self._lock:
            self.renders += 1
            self._crops[key] = image
            self._crops.move_to_end(key)
            while len(self._crops) > self.capacity:
                self._crops.popitem(last=False)
        return image

    def __len__(self) -> int:
        return len(self._crops)

    def _render(self, path: str, box: Box | None, settings: KeypointSettings) -> Image.Image:
        photo = (self.data_dir / path).resolve()
        if not path or not photo.is_relative_to(self.data_dir):
            return placeholder(settings.width, "not in the data folder")
        try:
            return box_image(photo, box, settings)
        except (OSError, ValueError) as error:
            return placeholder(settings.width, f"cannot read {Path(path).name}: {type(error).__name__}")


def placeholder(width: int, text: str) -> Image.Image:
    image = Image.new("L", (width, max(8, width // 2)), PLACEHOLDER)
    ImageDraw.Draw(image).text((8, 8), text, fill=60, font=font(12))
    return image


def fit(crop: Image.Image, tile: tuple[int, int]) -> tuple[Image.Image, float, tuple[int, int]]:
    """(the crop scaled to fit `tile` with its aspect kept, the scale, its offset centring it in the tile)."""
    scale = min(tile[0] / crop.width, tile[1] / crop.height)
    size = (max(1, round(crop.width * scale)), max(1, round(crop.height * scale)))
    return (
        crop.resize(size, Image.Resampling.BILINEAR),
        scale,
        ((tile[0] - size[0]) // 2, (tile[1] - size[1]) // 2),
    )


def pair_image(query: Image.Image, gallery: Image.Image, lines: np.ndarray) -> Image.Image:
    """The query crop (left) and a candidate's gallery crop (right), each fitted to `TILE`, with the matched
    keypoints (rows `qx, qy, gx, gy` in the crops' own pixels) joined by lines."""
    width, height = 2 * TILE[0] + GAP, TILE[1]
    image = Image.new("RGB", (width, height), BACKGROUND)
    fitted_q, scale_q, (qx0, qy0) = fit(query, TILE)
    fitted_g, scale_g, (gx0, gy0) = fit(gallery, TILE)
    gx0 += TILE[0] + GAP
    image.paste(fitted_q.convert("RGB"), (qx0, qy0))
    image.paste(fitted_g.convert("RGB"), (gx0, gy0))
    draw = ImageDraw.Draw(image)
    for n, (qx, qy, gx, gy) in enumerate(np.asarray(lines, dtype=np.float32).reshape(-1, 4)[:MAX_LINES]):
        if not all(math.isfinite(float(v)) for v in (qx, qy, gx, gy)):
            continue
        start = (qx0 + float(qx) * scale_q, qy0 + float(qy) * scale_q)
        end = (gx0 + float(gx) * scale_g, gy0 + float(gy) * scale_g)
        colour = PALETTE[n % len(PALETTE)]
        draw.line([start, end], fill=colour, width=1)
        for x, y in (start, end):
            draw.ellipse([x - 2, y - 2, x + 2, y + 2], outline=colour)
    return image


def photo_crops(queue: ReviewQueue, item: str, crops: CropCache) -> list[Image.Image]:
    """The crops of the item's photos, in the queue's order (the first is the one the lines start from)."""
    return [
        crops.crop(record["path"], box_of(record), queue.settings)
        for record in queue.photos_of(item).to_dict("records")
    ]


def candidate_pair(queue: ReviewQueue, item: str, rank: int, crops: CropCache) -> Image.Image | None:
    """The item's first photo beside its candidate at `rank` with their lines; None for a new_whale rank or a
    rank the item does not have."""
    candidates = queue.candidates_of(item)
    chosen = candidates[candidates["rank"] == rank]
    if chosen.empty or bool(chosen["is_new_whale"].iloc[0]):
        return None
    photos = queue.photos_of(item)
    if photos.empty:
        return None
    first = photos.iloc[0]
    candidate = chosen.iloc[0]
    query = crops.crop(first["path"], box_of(first), queue.settings)
    gallery = crops.crop(str(candidate["gallery_path"] or ""), box_of(candidate, GALLERY_BOX), queue.settings)
    return pair_image(query, gallery, queue.lines_of(item, rank))


def evidence_text(candidate: dict) -> str:
    """A candidate's evidence in words, the columns the queue has ("" when none)."""
    parts = []
    for column, name, form in (
        ("inliers", "inliers", "{:.0f}"),
        ("vote_share", "votes", "{:.0%}"),
        ("embedding_similarity", "similarity", "{:.2f}"),
    ):
        value = candidate.get(column)
        try:
            value = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(value):
            parts.append(f"{name} {form.format(value)}")
    return ", ".join(parts)


def panel_size(known: int, new_whale: int, photos: int) -> tuple[int, int]:
    """(width, height) of an item's panel with `known` candidates that have a gallery photo, `new_whale` ranks
    and `photos` photos (more than one adds the strip of the encounter's photos)."""
    width = 2 * MARGIN + 2 * TILE[0] + GAP + MARGIN + TEXT_WIDTH
    per_row = max(1, (width - 2 * MARGIN) // (THUMB[0] + MARGIN))
    strip = 0 if photos <= 1 else math.ceil(photos / per_row) * (THUMB[1] + MARGIN) + 20
    height = (
        MARGIN + HEADER_HEIGHT + strip + known * (TILE[1] + MARGIN) + new_whale * NEW_WHALE_HEIGHT + MARGIN
    )
    return width, height


def panel_image(queue: ReviewQueue, item: str, crops: CropCache) -> Image.Image:
    """The item as one picture: a header, the encounter's photos when several, then each candidate by rank
    (query, gallery photo, lines, label, probability, evidence; a new_whale rank as one line of text)."""
    record = queue.items[queue.items["item"] == item].iloc[0]
    candidates = queue.candidates_of(item).to_dict("records")
    photos = photo_crops(queue, item, crops)
    new_whale = sum(bool(c["is_new_whale"]) for c in candidates)
    size = panel_size(len(candidates) - new_whale, new_whale, len(photos))
    image = Image.new("RGB", size, BACKGROUND)
    draw = ImageDraw.Draw(image)
    big, small = font(16), font(13)
    title = (
        f"{item}   queue position {int(record['position']) + 1}   priority {float(record['priority']):.3f}"
    )
    if len(photos) > 1:
        title += f"   {len(photos)} photos (one encounter)"
    draw.text((MARGIN, MARGIN), title, fill=INK, font=big)
    y = MARGIN + HEADER_HEIGHT
    if len(photos) > 1:
        draw.text((MARGIN, y), "the encounter's photos (lines start from the first):", fill=MUTED, font=small)
        y += 20
        per_row = max(1, (size[0] - 2 * MARGIN) // (THUMB[0] + MARGIN))
        for n, crop in enumerate(photos):
            fitted, _, (ox, oy) = fit(crop, THUMB)
            x = MARGIN + (n % per_row) * (THUMB[0] + MARGIN)
            image.paste(fitted.convert("RGB"), (x + ox, y + (n // per_row) * (THUMB[1] + MARGIN) + oy))
        y += math.ceil(len(photos) / per_row) * (THUMB[1] + MARGIN)
    text_x = MARGIN + 2 * TILE[0] + GAP + MARGIN
    for candidate in candidates:
        rank, probability = int(candidate["rank"]), float(candidate["probability"])
        if candidate["is_new_whale"]:
            draw.text((MARGIN, y + 8), f"{rank}.  new_whale   p = {probability:.2f}", fill=INK, font=big)
            y += NEW_WHALE_HEIGHT
            continue
        pair = candidate_pair(queue, item, rank, crops)
        if pair is not None:
            image.paste(pair, (MARGIN, y))
        draw.text((text_x, y + 4), f"{rank}.  {candidate['label']}", fill=INK, font=big)
        draw.text((text_x, y + 28), f"p = {probability:.2f}", fill=INK, font=big)
        draw.text((text_x, y + 52), evidence_text(candidate), fill=MUTED, font=small)
        draw.text(
            (text_x, y + 72),
            f"lines: {len(queue.lines_of(item, rank))} matched keypoints",
            fill=MUTED,
            font=small,
        )
        y += TILE[1] + MARGIN
    return image


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()
