"""From evidence to a decision: P(same whale) per candidate, new_whale where its probability falls, and the table
a researcher reviews (issue 13).

Validation fits the calibrator (`models.calibration.MatchCalibrator`, a logistic regression on the evidence
columns of `matching`) on its own queries and reports the out-of-fold probabilities (each query scored by a
calibrator fitted without it), so its MAP@5 and calibration error are measured on pairs the model did not see.
The submission applies the calibrator fitted on all validation pairs, carried as JSON in the report's summary.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from assets.identify.matching import EVIDENCE_COLUMNS
from core.constants import NEW_WHALE, TOP
from models.calibration import (
    MatchCalibrator,
    cross_validated_probabilities,
    expected_calibration_error,
    new_whale_probability,
    rank_with_new_whale,
    reliability_table,
)

# Every evidence column but the pair's identity and the fused position (a rank of ranks, already in the others).
FEATURES = [column for column in EVIDENCE_COLUMNS if column not in ("query", "label", "fused_rank")]
# Long-tailed counts and ranks are compressed before standardising (the prototype's choice: log1p).
TRANSFORMS = {
    name: "log1p"
    for name in ("vote_score", "vote_rank", "embedding_rank", "inliers", "query_top_vote", "edge_rank")
}
NEW_WHALE_RULE = "product"
MATCH_COLUMNS = ["image", "rank", "label", "probability", *FEATURES]


def same_whale(evidence: pd.DataFrame, truths: Sequence[str]) -> np.ndarray:
    """True where the candidate is the query's whale."""
    truth = np.asarray(truths, dtype=object)[evidence["query"].to_numpy()]
    return evidence["label"].to_numpy(dtype=object) == truth


def pair_weights(evidence: pd.DataFrame, query_weights: np.ndarray | None) -> np.ndarray | None:
    """Each pair weighs what its query weighs (None: unweighted)."""
    if query_weights is None:
        return None
    return np.asarray(query_weights, dtype=np.float64)[evidence["query"].to_numpy()]


def fit_calibrator(
    evidence: pd.DataFrame, truths: Sequence[str], query_weights: np.ndarray | None = None
) -> MatchCalibrator:
    return MatchCalibrator.fit(
        evidence[FEATURES].to_numpy(np.float64),
        same_whale(evidence, truths),
        FEATURES,
        TRANSFORMS,
        weights=pair_weights(evidence, query_weights),
    )


def out_of_fold_probabilities(
    evidence: pd.DataFrame, truths: Sequence[str], folds: int = 5, query_weights: np.ndarray | None = None
) -> np.ndarray:
    """P(same) of every pair from a calibrator fitted without its query's pairs (`query_weights`: one per
    query, carried to its pairs)."""
    return cross_validated_probabilities(
        evidence[FEATURES].to_numpy(np.float64),
        same_whale(evidence, truths),
        evidence["query"].to_numpy(),
        folds=folds,
        feature_names=FEATURES,
        transforms=TRANSFORMS,
        weights=pair_weights(evidence, query_weights),
    )


def decide(
    evidence: pd.DataFrame,
    probabilities: np.ndarray,
    queries: int,
    fill: Sequence[str],
    new_whale_last: bool = False,
) -> tuple[list[list[str]], np.ndarray]:
    """(five labels per query ordered by probability with new_whale placed, P(new_whale) per query).
    `new_whale_last`: new_whale after every candidate instead (what the evidence alone scores)."""
    rows: list[list[str]] = []
    new_whale = np.ones(queries)
    grouped = {q: group for q, group in evidence.assign(p=probabilities).groupby("query", sort=True)}
    for q in range(queries):
        group = grouped.get(q)
        candidates = [] if group is None else list(zip(group["label"], group["p"]))
        new_whale[q] = new_whale_probability([p for _, p in candidates], NEW_WHALE_RULE)
        placed_at = -1.0 if new_whale_last else new_whale[q]
        rows.append(rank_with_new_whale(candidates, placed_at, fill, TOP))
    return rows, new_whale


@dataclass
class Calibration:
    """How well P(same) is calibrated on validation pairs (out of fold)."""

    ece: float
    reliability: pd.DataFrame
    pairs: int
    same_pairs: int


def calibration_of(probabilities: np.ndarray, same: np.ndarray) -> Calibration:
    return Calibration(
        ece=expected_calibration_error(probabilities, same),
        reliability=reliability_table(probabilities, same),
        pairs=len(same),
        same_pairs=int(np.sum(same)),
    )


def matches_table(
    images: Sequence[str], evidence: pd.DataFrame, probabilities: np.ndarray, rows: list[list[str]]
) -> pd.DataFrame:
    """The companion of the submission: per photo and rank, the label given, its probability and evidence
    (new_whale's probability is that no candidate is the whale; its evidence columns are empty)."""
    by_pair = {
        (int(q), label): (float(p), values)
        for q, label, p, values in zip(
            evidence["query"], evidence["label"], probabilities, evidence[FEATURES].to_numpy(np.float64)
        )
    }
    candidate_ps: dict[int, list[float]] = {}
    for (query, _), (p, _) in by_pair.items():
        candidate_ps.setdefault(query, []).append(p)
    records = []
    for q, (image, row) in enumerate(zip(images, rows)):
        for rank, label in enumerate(row, start=1):
            record = {"image": image, "rank": rank, "label": label}
            if label == NEW_WHALE:
                record["probability"] = new_whale_probability(candidate_ps.get(q, []), NEW_WHALE_RULE)
            elif (q, label) in by_pair:
                p, values = by_pair[(q, label)]
                record.update({"probability": p, **dict(zip(FEATURES, values))})
            else:  # a fill label (most frequent individuals): no evidence, probability below every candidate
                record["probability"] = 0.0
            records.append(record)
    return pd.DataFrame(records, columns=MATCH_COLUMNS)
