"""MAP@5, Kaggle's metric, and the per-rank statistics every report shows."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from core.constants import NEW_WHALE, TOP


def map_at_5(
    predictions: Sequence[Sequence[str]], truths: Sequence[str], weights: Sequence[float] | None = None
) -> float:
    """Kaggle's MAP@5 with one true label per row: 1/position of the first correct label among the first five.

    Positions are those of the row as written (only the first five entries count). A label repeated within a row
    counts once, at its first occurrence: "once a correct label has been scored for an observation, additional
    predictions of that label are skipped" (the competition's evaluation page), so [A, A, B] scores 1/3 for B.
    `weights`: one non-negative weight per row (a weighted mean: what a set with another mix of rows would score).
    """
    if len(predictions) != len(truths):
        raise ValueError(f"{len(predictions)} prediction rows for {len(truths)} truths")
    if not len(truths):
        return 0.0
    scores = np.array([average_precision_at_5(row, truth) for row, truth in zip(predictions, truths)])
    if weights is None:
        return float(scores.mean())
    w = np.asarray(weights, dtype=np.float64).ravel()
    if len(w) != len(scores) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"weights must be {len(scores)} finite non-negative numbers, not all zero")
    return float(np.dot(w, scores) / w.sum())


def average_precision_at_5(row: Sequence[str], truth: str) -> float:
    for position, label in enumerate(list(row)[:TOP]):
        if label == truth:
            return 1.0 / (position + 1)
    return 0.0


def rank_statistics(
    predictions: Sequence[Sequence[str]], truths: Sequence[str] | None = None, top: int = TOP
) -> pd.DataFrame:
    """Per rank 1..top: the share of rows with `new_whale` there and, with truths, how many rows are first
    right at that rank (split into known individuals and new_whale), and the cumulative hit share."""
    count = len(predictions)
    records = []
    cumulative = 0
    for rank in range(1, top + 1):
        at_rank = [row[rank - 1] if len(row) >= rank else None for row in predictions]
        record: dict[str, float | int] = {
            "rank": rank,
            "new_whale_share": float(np.mean([label == NEW_WHALE for label in at_rank])) if count else 0.0,
        }
        if truths is not None:
            hits = [
                truth
                for row, truth in zip(predictions, truths)
                if len(row) >= rank and row[rank - 1] == truth and truth not in list(row[: rank - 1])
            ]
            cumulative += len(hits)
            record.update(
                {
                    "hits": len(hits),
                    "hits_known": sum(truth != NEW_WHALE for truth in hits),
                    "hits_new_whale": sum(truth == NEW_WHALE for truth in hits),
                    "hit_share": len(hits) / count if count else 0.0,
                    "cumulative_hit_share": cumulative / count if count else 0.0,
                }
            )
        records.append(record)
    return pd.DataFrame(records)
