"""What the review page shows and what a form post means, as plain data: the routes in `review.app` only
render these and turn `DecisionError` into a 400.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from core.decisions import append_decision, effective_decisions, new_individual_id, read_decisions
from review.panel import evidence_text
from review.progress import first_waiting, item_status, progress_of, undo_target
from review.queue import QueueSource, ReviewQueue

FORM_DECISIONS = ("same", "new", "unsure")  # what the decide form may post (undo has its own route)
MAX_PROBLEMS_SHOWN = 20


class DecisionError(ValueError):
    """A form post that cannot be recorded (unknown item, label not among its candidates, ...)."""


@dataclass
class ReviewState:
    """The queue and the decisions file, read for one request."""

    queue: ReviewQueue
    decisions_path: Path
    rows: pd.DataFrame
    problems: list[dict]
    standing: pd.DataFrame = field(init=False)
    status: pd.DataFrame = field(init=False)

    def __post_init__(self) -> None:
        self.standing = effective_decisions(self.rows)
        self.status = item_status(self.queue, self.standing)

    @property
    def progress(self) -> tuple[int, int]:
        return progress_of(self.status)

    def next_item(self) -> str | None:
        return first_waiting(self.status)


def read_state(source: QueueSource, decisions_path: str | os.PathLike) -> ReviewState:
    """The current queue (QueueUnavailable when there is none) and decisions."""
    queue = source.get()
    rows, problems = read_decisions(decisions_path)
    return ReviewState(queue, Path(decisions_path), rows, problems)


def item_view(state: ReviewState, item: str) -> dict:
    """Everything the page shows of one item: its numbers, photos, candidates (with their keyboard keys) and
    its standing decision."""
    queue = state.queue
    status = state.status[state.status["item"] == item].iloc[0].to_dict()
    record = queue.items[queue.items["item"] == item].iloc[0].to_dict()
    photos = queue.photos_of(item)
    standing = {
        image: f"{decision} {label}".strip()
        for image, decision, label in zip(
            state.standing["image"], state.standing["decision"], state.standing["label"]
        )
    }
    candidates = []
    for candidate in queue.candidates_of(item).to_dict("records"):
        new_whale = bool(candidate["is_new_whale"])
        candidates.append(
            {
                "rank": int(candidate["rank"]),
                "label": str(candidate["label"]),
                "probability": float(candidate["probability"]),
                "is_new_whale": new_whale,
                "evidence": "" if new_whale else evidence_text(candidate),
                "lines": 0 if new_whale else len(queue.lines_of(item, int(candidate["rank"]))),
                "key": "" if new_whale or int(candidate["rank"]) > 5 else str(int(candidate["rank"])),
            }
        )
    return {
        "item": item,
        "position": int(record["position"]),
        "priority": float(record["priority"]),
        "photos": [
            {"index": n, "image": image, "decision": standing.get(image, "")}
            for n, image in enumerate(photos["image"])
        ],
        "candidates": candidates,
        "decision": status["decision"],
        "reviewed": bool(status["reviewed"]),
        "new_label": new_individual_id(str(photos["image"].iloc[0])) if len(photos) else "",
    }


def items_view(state: ReviewState) -> list[dict]:
    """Every item in queue order with its priority, model answer and decision, for the list page."""
    return state.status.to_dict("records")


def problems_view(state: ReviewState) -> dict:
    """The decisions file's malformed lines for the warning banner (the first few, and how many in all)."""
    return {"shown": state.problems[:MAX_PROBLEMS_SHOWN], "count": len(state.problems)}


def record_decision(state: ReviewState, item: str, decision: str, label: str, reviewer: str) -> list[dict]:
    """Append one decision per photo of `item` (validated against the queue; DecisionError when it cannot be
    recorded) and return the rows written. `new` takes the item's created id, one for all its photos."""
    queue = state.queue
    if not item or not queue.has_item(item):
        raise DecisionError(f"unknown item {item!r}: it is not in the review queue (reload the page)")
    if decision not in FORM_DECISIONS:
        raise DecisionError(f"unknown decision {decision!r}: expected one of {', '.join(FORM_DECISIONS)}")
    images = [str(image) for image in queue.photos_of(item)["image"]]
    if not images:
        raise DecisionError(f"item {item!r} has no photos in the review queue")
    if decision == "same":
        allowed = queue.labels_of(item)
        if label not in allowed:
            raise DecisionError(
                f"label {label!r} is not among item {item!r}'s candidates ({', '.join(allowed) or 'none'})"
            )
    elif decision == "new":
        label = new_individual_id(images[0])
    else:
        label = ""
    return [append_decision(state.decisions_path, image, decision, label, reviewer) for image in images]


def record_undo(state: ReviewState, reviewer: str) -> str | None:
    """Append `undo` for the photos of the most recently decided item; returns that item (None: nothing to
    undo)."""
    target = undo_target(state.queue, state.standing)
    if target is None:
        return None
    item, images = target
    for image in images:
        append_decision(state.decisions_path, image, "undo", "", reviewer)
    return item
