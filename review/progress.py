"""Where the review stands, from the queue and the decisions file: each item's decision, the progress, the next
item to show, what an undo reverses, and the export of decided identities.

All plain functions of a `ReviewQueue` and the standing decisions (`core.decisions.effective_decisions`).
"""

from __future__ import annotations

import pandas as pd

from core.decisions import IDENTITY_COLUMNS, decided_identities
from review.queue import ReviewQueue

EXPORT_COLUMNS = IDENTITY_COLUMNS


def item_status(queue: ReviewQueue, standing: pd.DataFrame) -> pd.DataFrame:
    """One row per item in queue order: `item, position, priority, photos, decided` (photos with a standing
    decision), `reviewed` (all of them have one) and `decision` (a short text: "same w_1", "new w_2", "unsure",
    "mixed", "1/2 photos" or "")."""
    by_image = {
        image: (decision, label)
        for image, decision, label in zip(standing["image"], standing["decision"], standing["label"])
    }
    images_of = queue.photos.groupby("item", sort=False)["image"].agg(list).to_dict()
    rows = []
    for record in queue.items.to_dict("records"):
        images = images_of.get(record["item"], [])
        decided = [by_image[image] for image in images if image in by_image]
        if not decided:
            text = ""
        elif len(decided) < len(images):
            text = f"{len(decided)}/{len(images)} photos"
        elif len(set(decided)) > 1:
            text = "mixed"
        else:
            decision, label = decided[0]
            text = f"{decision} {label}".strip()
        rows.append(
            {
                "item": record["item"],
                "position": int(record["position"]),
                "priority": float(record["priority"]),
                "photos": len(images),
                "top_label": record["top_label"],
                "top_probability": float(record["top_probability"]),
                "decided": len(decided),
                "reviewed": bool(images) and len(decided) == len(images),
                "decision": text,
            }
        )
    columns = ["item", "position", "priority", "photos", "top_label", "top_probability", "decided"]
    return pd.DataFrame(rows, columns=[*columns, "reviewed", "decision"])


def progress_of(status: pd.DataFrame) -> tuple[int, int]:
    """(items reviewed, items) of an `item_status` table."""
    return int(status["reviewed"].sum()), len(status)


def first_waiting(status: pd.DataFrame) -> str | None:
    """The first item of an `item_status` table not yet reviewed; None when all are."""
    waiting = status.loc[~status["reviewed"], "item"]
    return None if waiting.empty else str(waiting.iloc[0])


def progress(queue: ReviewQueue, standing: pd.DataFrame) -> tuple[int, int]:
    """(items reviewed, items in the queue): an item counts when every photo of it has a standing decision."""
    return progress_of(item_status(queue, standing))


def next_item(queue: ReviewQueue, standing: pd.DataFrame) -> str | None:
    """The first item in queue order not yet reviewed; None when all are."""
    return first_waiting(item_status(queue, standing))


def undo_target(queue: ReviewQueue, standing: pd.DataFrame) -> tuple[str, list[str]] | None:
    """(item, its photos that have a standing decision) of the most recently decided item of this queue, the
    one "undo last" reverses; None when nothing of the queue is decided. An undo appended for a photo with no
    standing decision would do nothing, so only decided photos are named."""
    item_of = queue.item_of_image()
    decided = set(standing["image"])
    for image in reversed(list(standing["image"])):  # the latest standing decision last
        if image in item_of:
            item = item_of[image]
            photos = [p for p in queue.photos_of(item)["image"] if p in decided]
            return item, photos
    return None


def export_table(queue: ReviewQueue, standing: pd.DataFrame) -> pd.DataFrame:
    """The decided identities, one row per photo (`EXPORT_COLUMNS`), by the rule the `decided_identities`
    asset uses (`core.decisions.decided_identities`): each queue photo's model answer is its item's first
    candidate."""
    candidates = queue.candidates
    top = candidates[candidates["rank"] == candidates.groupby("item")["rank"].transform("min")]
    top = top.drop_duplicates("item")[["item", "label", "probability"]]
    choices = queue.photos[["item", "image"]].merge(top, on="item", how="inner")
    return decided_identities(choices[["image", "label", "probability"]], standing)
