"""The `review_queue` artifact as the review page reads it (read only): items, photos, candidates, lines.

The artifact is a folder `<storage>/review_queue/` the IO manager writes (`items`, `photos`, `candidates`, `lines`
as parquet, `summary.json`), most uncertain item first. Reading it needs no Dagster: the page runs beside a
pipeline that may rematerialize the queue at any time, so `QueueSource` reloads it when its files change.
"""

from __future__ import annotations

import json
import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from models.keypoints import Box, KeypointSettings

QUEUE_ASSET = "review_queue"
PARTS = ("items", "photos", "candidates", "lines")
BOX = ("box_x0", "box_y0", "box_x1", "box_y1")
GALLERY_BOX = ("gallery_box_x0", "gallery_box_y0", "gallery_box_x1", "gallery_box_y1")
REQUIRED = {
    "items": [
        "item",
        "position",
        "priority",
        "photos",
        "top_label",
        "top_probability",
        "new_whale_probability",
    ],
    "photos": ["item", "image", "path", *BOX],
    "candidates": ["item", "rank", "label", "probability", "is_new_whale", "gallery_image", "gallery_path"],
    "lines": ["item", "rank", "qx", "qy", "gx", "gy"],
}
MATERIALIZE = "dagster asset materialize -m pipelines.definitions --select review_queue"


class QueueUnavailable(Exception):
    """The queue artifact is missing or unreadable; the message says what to do."""


@dataclass(frozen=True)
class ReviewQueue:
    items: pd.DataFrame  # in queue order (by `position`)
    photos: pd.DataFrame
    candidates: pd.DataFrame  # by item, then rank
    lines: pd.DataFrame
    summary: dict

    @property
    def settings(self) -> KeypointSettings:
        """The frame the lines are drawn in: `box_image` at the keypoint stage's width and margin."""
        defaults = KeypointSettings()
        return KeypointSettings(
            width=int(self.summary.get("keypoint_width", defaults.width)),
            margin=float(self.summary.get("keypoint_margin", defaults.margin)),
        )

    def has_item(self, item: str) -> bool:
        return bool((self.items["item"] == item).any())

    def photos_of(self, item: str) -> pd.DataFrame:
        return self.photos[self.photos["item"] == item]

    def candidates_of(self, item: str) -> pd.DataFrame:
        return self.candidates[self.candidates["item"] == item]

    def lines_of(self, item: str, rank: int) -> np.ndarray:
        """Matched keypoints (qx, qy, gx, gy) between the item's first photo and its candidate at `rank`."""
        chosen = self.lines[(self.lines["item"] == item) & (self.lines["rank"] == rank)]
        return chosen[["qx", "qy", "gx", "gy"]].to_numpy(dtype=np.float32).reshape(-1, 4)

    def item_of_image(self) -> dict[str, str]:
        return dict(zip(self.photos["image"], self.photos["item"]))

    def labels_of(self, item: str) -> list[str]:
        """The known individuals among the item's candidates (what a `same` decision may name), by rank."""
        candidates = self.candidates_of(item)
        return [str(label) for label in candidates.loc[~candidates["is_new_whale"], "label"]]


def box_of(row: dict | pd.Series, columns: tuple[str, ...] = BOX) -> Box | None:
    """The box in a row's four columns; None (the whole photo) when a column is missing, empty or NaN."""
    values = []
    for column in columns:
        value = row.get(column) if hasattr(row, "get") else None
        try:
            value = float(value)
        except (TypeError, ValueError):
            return None
        if math.isnan(value):
            return None
        values.append(value)
    return tuple(values)  # type: ignore[return-value]


def _part_path(folder: Path, part: str) -> Path:
    return folder / f"{part}.parquet"


def load_queue(storage_dir: str | os.PathLike) -> ReviewQueue:
    """Read `<storage_dir>/review_queue/`; QueueUnavailable saying how to make it when it is missing or broken."""
    folder = Path(storage_dir) / QUEUE_ASSET
    missing = [part for part in PARTS if not _part_path(folder, part).exists()]
    if not folder.is_dir() or missing or not (folder / "summary.json").exists():
        raise QueueUnavailable(
            f"No review queue in {folder}"
            + (
                f" (missing {', '.join(f'{p}.parquet' for p in missing)})"
                if folder.is_dir() and missing
                else ""
            )
            + f". Materialize review_queue first: {MATERIALIZE} (or `flukeid update`), with the same "
            "FLUKEID_STORAGE_DIR as this page."
        )
    try:
        tables = {part: pd.read_parquet(_part_path(folder, part)) for part in PARTS}
        summary = json.loads((folder / "summary.json").read_text())
    except (OSError, ValueError) as error:
        raise QueueUnavailable(
            f"The review queue in {folder} cannot be read ({error}); rematerialize it."
        ) from None
    for part, columns in REQUIRED.items():
        lacking = [column for column in columns if column not in tables[part].columns]
        if lacking:
            raise QueueUnavailable(
                f"The review queue's {part} lacks columns {lacking}: it was made by another version; "
                f"rematerialize it ({MATERIALIZE})."
            )
    for part in PARTS:
        tables[part]["item"] = tables[part]["item"].astype(str)
    candidates = tables["candidates"].copy()
    candidates["is_new_whale"] = candidates["is_new_whale"].astype(bool)
    candidates["rank"] = candidates["rank"].astype(int)
    lines = tables["lines"].copy()
    lines["rank"] = lines["rank"].astype(int)
    return ReviewQueue(
        items=tables["items"].sort_values("position", kind="stable").reset_index(drop=True),
        photos=tables["photos"].reset_index(drop=True),
        candidates=candidates.sort_values(["item", "rank"], kind="stable").reset_index(drop=True),
        lines=lines,
        summary=summary if isinstance(summary, dict) else {},
    )


def _stamp(folder: Path) -> tuple:
    """What changes when the queue is rewritten: the folder (swapped in whole) and each part's size and time."""
    stamps = []
    for path in [folder, *(_part_path(folder, p) for p in PARTS), folder / "summary.json"]:
        try:
            stat = path.stat()
        except OSError:
            stamps.append(None)
            continue
        stamps.append((stat.st_ino, stat.st_size, stat.st_mtime_ns))
    return tuple(stamps)


class QueueSource:
    """The current queue of a storage folder, read again only when its files changed."""

    def __init__(self, storage_dir: str | os.PathLike):
        self.folder = Path(storage_dir) / QUEUE_ASSET
        self._lock = threading.Lock()
        self._stamp: tuple | None = None
        self._queue: ReviewQueue | None = None

    def get(self) -> ReviewQueue:
        with self._lock:
            stamp = _stamp(self.folder)
            if self._queue is None or stamp != self._stamp:
                try:
                    self._queue = load_queue(self.folder.parent)
                except QueueUnavailable:
                    # A rewrite swapping the folder under the read: one more try sees the new one whole.
                    stamp = _stamp(self.folder)
                    self._queue = load_queue(self.folder.parent)
                self._stamp = stamp
            return self._queue
