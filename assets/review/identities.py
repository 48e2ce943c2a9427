"""The decided identities, as a catalogue imports them (issue 15): one row per test photo, its individual, who
decided it and how sure, by the one rule of `core.decisions.decided_identities` (the review page's export uses it
too): a standing review decision wins (probability 1), every other photo takes the model's first answer.
"""

from __future__ import annotations

import pandas as pd

from core.artifacts import REVIEW_COLUMNS
from core.decisions import decided_identities as identities_rule


def decided_identities(
    test_images: list[str], reviews: pd.DataFrame | None, first_choices: pd.DataFrame
) -> pd.DataFrame:
    """`reviews`: raw_images' applied decisions; `first_choices`: image, label, probability of the model's
    rank-1 answer per photo. Every test photo gets a row (no model answer: empty label, NaN)."""
    model = pd.DataFrame({"image": sorted(test_images)}).merge(
        first_choices.drop_duplicates("image"), on="image", how="left"
    )
    model["label"] = model["label"].fillna("")
    standing = reviews if reviews is not None else pd.DataFrame(columns=REVIEW_COLUMNS)
    return identities_rule(model, standing)


def first_choices(candidates: pd.DataFrame, photos: pd.DataFrame) -> pd.DataFrame:
    """Image -> its item's rank-1 label and probability, from the review queue's parts."""
    top = candidates[candidates["rank"] == 1][["item", "label", "probability"]]
    return photos[["item", "image"]].merge(top, on="item", how="left")[["image", "label", "probability"]]
