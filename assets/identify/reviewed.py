"""The submission's rows for photos a researcher decided (issue 15).

A decided photo's answer is the decision: a confirmed individual goes first, a new individual makes `new_whale`
first. The submission answers in train.csv's terms, where an individual created in review is nobody known, so
every created id in any row is written as `new_whale` (the companion match table and the decided identities keep
the created id). Rows shortened by that are filled from `fill` (the most frequent known individuals).
"""

from __future__ import annotations

import pandas as pd

from core.constants import NEW_WHALE, TOP


def created_individuals(reviews: pd.DataFrame | None) -> set[str]:
    """Ids a review created ("new individual")."""
    if reviews is None or len(reviews) == 0:
        return set()
    return set(reviews.loc[reviews["decision"] == "new", "label"].dropna())


def decided_first(reviews: pd.DataFrame | None) -> dict[str, str]:
    """Test image -> the label its standing decision puts first (in train.csv's terms); `unsure` puts nothing."""
    if reviews is None or len(reviews) == 0:
        return {}
    created = created_individuals(reviews)
    decided = reviews[reviews["decision"].isin(["same", "new"])]
    return {
        image: NEW_WHALE if label in created else label
        for image, label in zip(decided["image"], decided["label"])
    }


def catalogue_row(
    labels: list[str], created: set[str], fill: list[str], first: str | None = None
) -> list[str]:
    """Five distinct labels: `first` (if any) then `labels`, created ids as new_whale, topped up from `fill`."""
    mapped = [NEW_WHALE if label in created else label for label in ([first] if first else []) + labels]
    row = list(dict.fromkeys(mapped))
    for label in fill:
        if len(row) >= TOP:
            break
        if label not in row and label not in created:
            row.append(label)
    return row[:TOP]


def apply_decisions(table: pd.DataFrame, reviews: pd.DataFrame | None, fill: list[str]) -> pd.DataFrame:
    """The submission table (Image, Id, source) with decided photos answered by their decision (source
    `review`) and created ids written as new_whale everywhere."""
    created = created_individuals(reviews)
    first = decided_first(reviews)
    if not created and not first:
        return table
    table = table.copy()
    ids, sources = [], []
    for image, labels, source in zip(table["Image"], table["Id"], table["source"]):
        decided = first.get(image)
        ids.append(" ".join(catalogue_row(str(labels).split(" "), created, fill, decided)))
        sources.append("review" if decided else source)
    table["Id"], table["source"] = ids, sources
    return table
