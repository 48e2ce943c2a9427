"""The decided identities, as a catalogue imports them (issue 15): one row per test photo, its individual, who
decided it and how sure.

A photo with a standing review decision (`raw_images["reviews"]`) takes the reviewer's individual (a known id or
the one the review created), `decided_by` `review:<reviewer>` and probability 1. Every other test photo takes the
model's first label and its P(same whale) (or P(new_whale)), `decided_by` `model`; a photo marked "not sure"
keeps the model's answer, `decided_by` `model (review unsure)`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.artifacts import IDENTITY_COLUMNS


def decided_identities(
    test_images: list[str], reviews: pd.DataFrame | None, first_choices: pd.DataFrame
) -> pd.DataFrame:
    """`first_choices`: image, label, probability of the model's rank-1 answer per test photo."""
    model = first_choices.drop_duplicates("image").set_index("image")
    standing = {} if reviews is None else {r["image"]: r for r in reviews.to_dict("records")}
    records = []
    for image in sorted(test_images):
        review = standing.get(image)
        if review is not None and review["decision"] in ("same", "new"):
            who = str(review.get("reviewer") or "").strip() or "anonymous"
            records.append([image, review["label"], f"review:{who}", 1.0])
            continue
        label = model["label"].get(image, "")
        probability = float(model["probability"].get(image, np.nan))
        decided_by = "model (review unsure)" if review is not None else "model"
        records.append([image, label, decided_by, probability])
    return pd.DataFrame(records, columns=IDENTITY_COLUMNS)


def first_choices(candidates: pd.DataFrame, photos: pd.DataFrame) -> pd.DataFrame:
    """Image -> its item's rank-1 label and probability, from the review queue's parts."""
    top = candidates[candidates["rank"] == 1][["item", "label", "probability"]]
    return photos[["item", "image"]].merge(top, on="item", how="left")[["image", "label", "probability"]]
