"""How well the found groups match the synthetic generator's true duplicate groups (`duplicates.csv`).

Only the generator writes that file; real data has none, so this feeds an asset check, never the artifact.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from assets.dedup.groups import duplicate_pairs

# Written by the generator beside train.csv: one row (Image, group) per photo that has a duplicate.
TRUTH_FILE = "duplicates.csv"
# Below these the groups miss the truth by more than the generated sets ever did (both 1.0 on tiny, demo).
MIN_PRECISION = 0.95
MIN_RECALL = 0.95


def precision_recall(groups: pd.DataFrame, truth: pd.DataFrame) -> dict[str, float | int]:
    """Pairwise precision and recall of the found groups against true groups (`duplicates.csv`: Image, group),
    on the photos both tables hold."""
    truth = truth.rename(columns={"Image": "image"})
    # The truth may list only photos that have duplicates; found pairs are counted over every photo.
    truth = truth[truth["image"].isin(set(groups["image"]))]
    found = duplicate_pairs(groups)
    true = duplicate_pairs(truth)
    hits = len(found & true)
    return {
        "true_pairs": len(true),
        "found_pairs": len(found),
        "correct_pairs": hits,
        "precision": round(hits / len(found), 4) if found else 1.0,
        "recall": round(hits / len(true), 4) if true else 1.0,
    }


def truth_scores(groups: pd.DataFrame, root: Path) -> dict[str, float | int] | None:
    """`precision_recall` of `groups` against the data folder's `duplicates.csv`; None when it has none."""
    path = Path(root) / TRUTH_FILE
    if not path.exists():
        return None
    return precision_recall(groups, pd.read_csv(path, dtype={"Image": str}))


def meets_truth(scores: dict[str, float | int]) -> bool:
    return scores["precision"] >= MIN_PRECISION and scores["recall"] >= MIN_RECALL
