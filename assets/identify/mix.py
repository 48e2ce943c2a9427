"""Validation weighted to the mix the test set will have, so that validation MAP@5 predicts test MAP@5.

The val fold holds one photo of each individual with two or more photos and a tenth of the new_whale photos. The
test set is not drawn that way: a test photo shows a known whale about in proportion to how often that whale was
photographed (the i.i.d. assumption: each train photo is as likely as any other to have a twin in the test set),
and new_whale makes up its own share. Unweighted, the val fold over-represents rarely photographed whales (whose
gallery holds one or two photos, measured: 42% of the val fold's known whales on a harsh set against 12% of the
test set's) and under-represents new_whale (25% against 33%), so it scores well below the test set.

Each known-whale query is weighted by its individual's kept photos; the new_whale queries (truth new_whale,
unseen individuals included) share a weight that makes them `new_whale_share` of the total. The default share is
that of the kept train photos (what an i.i.d. test set would hold); a user who knows better passes their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.constants import NEW_WHALE
from core.metrics import map_at_5


def expected_new_whale_share(training_manifest: pd.DataFrame) -> float:
    """The share of new_whale among the kept train photos (both folds): an i.i.d. test set's share."""
    if training_manifest.empty:
        return 0.0
    return float((training_manifest["label"] == NEW_WHALE).mean())


def mix_weights(
    truths: Sequence[str], individual_photos: Sequence[int], new_whale_share: float
) -> np.ndarray:
    """One weight per query, mean 1: `individual_photos` (kept photos of the query's individual, both folds)
    for a known-whale truth; the new_whale truths together weigh `new_whale_share` of the total.

    With only one kind of query the share cannot be matched and the kind present is weighted alone; a share of 1
    (a train set of new_whale photos only) leaves the known whales' queries, if any, weightless.
    """
    if not 0.0 <= new_whale_share <= 1.0:
        raise ValueError(f"new_whale_share must be in [0, 1], not {new_whale_share}")
    truth = np.asarray(truths, dtype=object)
    photos = np.asarray(individual_photos, dtype=np.float64)
    if len(photos) != len(truth):
        raise ValueError(f"{len(photos)} photo counts for {len(truth)} queries")
    if not len(truth):
        return np.zeros(0)
    new = truth == NEW_WHALE
    weights = np.where(new, 0.0, np.maximum(photos, 1.0))
    known_total = weights.sum()
    if new.any():
        if known_total == 0 or new_whale_share == 1.0:
            weights[~new] = 0.0
            weights[new] = 1.0
        else:
            weights[new] = new_whale_share / (1.0 - new_whale_share) * known_total / new.sum()
    return weights * len(weights) / weights.sum()


def _share(values: np.ndarray, weights: np.ndarray | None = None, digits: int = 4) -> float:
    """The (weighted) mean of `values`, rounded; 0.0 where there is nothing (or no weight) to average."""
    if not len(values) or (weights is not None and weights.sum() <= 0):
        return 0.0
    return round(float(np.average(values, weights=weights)), digits)


def mix_statistics(truths: Sequence[str], gallery_photos: Sequence[int], weights: np.ndarray) -> dict:
    """What the weighting changes: the new_whale share and the known whales' gallery photos, as drawn and
    weighted."""
    new = np.asarray(truths, dtype=object) == NEW_WHALE
    gallery = np.asarray(gallery_photos, dtype=np.float64)[~new]
    known_weights = weights[~new]
    return {
        "new_whale_share": _share(new),
        "new_whale_share_weighted": _share(new, weights),
        "known_gallery_photos_mean": _share(gallery, digits=3),
        "known_gallery_photos_mean_weighted": _share(gallery, known_weights, digits=3),
        "known_with_one_gallery_photo": _share(gallery == 1),
        "known_with_one_gallery_photo_weighted": _share(gallery == 1, known_weights),
    }


@dataclass(frozen=True)
class QueryMix:
    """The val queries' weights towards the test set's mix, and what they change."""

    weights: np.ndarray
    new_whale_share: float  # the share the weights give new_whale
    statistics: dict

    def figures(self, predictions: list[list[str]], truths: list[str]) -> dict:
        """MAP@5 weighted to the test mix, overall and for known whales, with the mix's statistics."""
        known = np.array([t != NEW_WHALE for t in truths])
        known_map = None
        if known.any() and self.weights[known].sum() > 0:
            rows = [row for row, keep in zip(predictions, known) if keep]
            known_map = round(map_at_5(rows, [t for t in truths if t != NEW_WHALE], self.weights[known]), 6)
        return {
            "map5": round(map_at_5(predictions, truths, self.weights), 6) if truths else 0.0,
            "map5_known": known_map,
            "new_whale_share_target": round(self.new_whale_share, 4),
            **self.statistics,
        }


def query_mix(
    queries: pd.DataFrame, training_manifest: pd.DataFrame, train_gallery: pd.DataFrame, share: float
) -> QueryMix:
    """Weights for `queries` (each known whale by its kept photos; new_whale to `share`, or to the kept train
    photos' share when negative)."""
    share = expected_new_whale_share(training_manifest) if share < 0 else share
    photos = training_manifest.drop_duplicates("image").set_index("image")["individual_photos"]
    truths = queries["truth"].tolist()
    weights = mix_weights(truths, photos.reindex(queries["image"]).fillna(1).to_numpy(), share)
    gallery_photos = train_gallery["label"].value_counts().reindex(queries["truth"]).fillna(0).to_numpy()
    return QueryMix(weights, share, mix_statistics(truths, gallery_photos, weights))
