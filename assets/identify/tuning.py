"""Tuning on the held-out fold: the new_whale threshold with the one tuner (`models.retrieval.tune_threshold`)
and, with geometric verification, the inlier weight it is tuned within. An `Evaluation` is one method's tuned
result on the val queries: the identification itself, the model on whole photos, the pixel baseline."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from assets.identify.identification import Identification, embedding_candidates
from core.metrics import map_at_5, rank_statistics
from models.retrieval import Candidates, exact_index, most_frequent_labels, place_new_whale, tune_threshold
from models.verification import Verified, rescore


@dataclass
class Evaluation:
    """One gallery/queries evaluation with its tuned threshold."""

    map5: float
    threshold: float
    sweep: pd.DataFrame
    predictions: list[list[str]]
    per_rank: pd.DataFrame
    map5_at_no_new_whale: float


def tune(
    candidates: Candidates, truths: Sequence[str], fill_labels: Sequence[str], sweep_points: int = 101
) -> Evaluation:
    """The new_whale threshold that maximises MAP@5 of these candidates, and the predictions it gives."""
    threshold, sweep = tune_threshold(candidates, truths, fill_labels, sweep_points)
    predictions = place_new_whale(candidates, threshold, fill_labels)
    return Evaluation(
        map5=map_at_5(predictions, truths),
        threshold=threshold,
        sweep=sweep,
        predictions=predictions,
        per_rank=rank_statistics(predictions, truths),
        map5_at_no_new_whale=float(sweep.sort_values("threshold")["map5"].iloc[0]),
    )


def evaluate(
    gallery_embeddings: np.ndarray,
    gallery_labels: Sequence[str],
    query_embeddings: np.ndarray,
    truths: Sequence[str],
    k: int = 50,
    sweep_points: int = 101,
    fill_labels: Sequence[str] | None = None,
) -> Evaluation:
    """Exact search, the one ranking rule, and the new_whale threshold that maximises MAP@5 on these queries
    (the embedding alone; the comparisons and the pixel baseline)."""
    if fill_labels is None:
        fill_labels = most_frequent_labels(gallery_labels)
    labels = list(gallery_labels)
    candidates = embedding_candidates(exact_index(gallery_embeddings), labels, query_embeddings, k)
    return tune(candidates, truths, fill_labels, sweep_points)


def choose_verification_weight(
    verified: Verified,
    truths: Sequence[str],
    fill_labels: Sequence[str],
    weights: Sequence[float],
    inlier_cap: int,
    sweep_points: int = 101,
) -> tuple[float, dict[float, Evaluation]]:
    """The inlier weight (and, within each, the threshold) of best MAP@5; ties go to the smaller weight.

    Returns the chosen weight and the evaluation at every weight tried (weight 0: the embedding alone).
    """
    if not weights:
        raise ValueError("no verification weights to try")
    evaluations = {
        float(w): tune(rescore(verified, float(w), inlier_cap), truths, fill_labels, sweep_points)
        for w in sorted(set(weights))
    }
    best = max(evaluations.items(), key=lambda item: (item[1].map5, -item[0]))[0]
    return best, evaluations


def tune_identification(
    identification: Identification, truths: Sequence[str], weights: Sequence[float], sweep_points: int = 101
) -> tuple[Evaluation, Evaluation | None, float | None, dict[float, Evaluation]]:
    """(chosen evaluation, the embedding alone (None unverified), the chosen inlier weight (None unverified),
    the evaluation at every weight tried)."""
    fill = identification.fill_labels
    if identification.verified is None:
        return tune(identification.candidates, truths, fill, sweep_points), None, None, {}
    cap = identification.inlier_cap
    weight, by_weight = choose_verification_weight(
        identification.verified, truths, fill, weights, cap, sweep_points
    )
    if 0.0 in by_weight:
        embedding_only = by_weight[0.0]
    else:
        embedding_only = tune(identification.scored(0.0), truths, fill, sweep_points)
    return by_weight[weight], embedding_only, weight, by_weight
