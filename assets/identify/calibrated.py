"""The calibrated path (issue 13), shared by `validation_report` and `submission`: box keypoints (and trailing edges)
-> candidates from two or three generators -> RANSAC evidence -> P(same whale) -> rows with new_whale placed by probability.

Validation runs it on the val fold against the train fold's known photos, fits the calibrator and scores its
out-of-fold probabilities; the submission runs the same matching on the test photos against every known photo
and applies the calibrator validation fitted. `exhaustive_baseline` is the classical alternative measured in the
same run: every query matched by RANSAC against every gallery photo.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from assets.identify.decision import (
    Calibration,
    calibration_of,
    decide,
    fit_calibrator,
    out_of_fold_probabilities,
    same_whale,
)
from assets.identify.matching import MatchGallery, Matching, MatchSettings, match_queries
from core.artifacts import FlukeKeypoints
from core.caches import KeyValueCache
from core.constants import NEW_WHALE
from core.metrics import map_at_5
from models.calibration import MatchCalibrator
from models.keypoint_votes import recall_at_k
from models.keypoints import features_by_image
from models.retrieval import place_new_whale, tune_threshold
from models.verification import EMPTY, LocalFeatures, count_inliers, one_library_thread

RECALL_KS = (1, 5, 10, 20, 50)


def photo_features(keypoints: FlukeKeypoints, images: Sequence[str], split: str) -> list[LocalFeatures]:
    """Each photo's box keypoints (none for a photo the keypoint stage has no row for)."""
    found = features_by_image(keypoints, split)
    return [found.get(image, EMPTY) for image in images]


@dataclass
class CalibratedRun:
    """The path's result on some queries: matching, probabilities, rows and P(new_whale) per query."""

    matching: Matching
    probabilities: np.ndarray
    rows: list[list[str]]
    new_whale: np.ndarray
    rows_without_new_whale: list[list[str]]
    calibrator: MatchCalibrator | None = None
    calibration: Calibration | None = None
    seconds: float = 0.0


def validate_calibrated(
    query_features: list[LocalFeatures],
    query_embeddings: np.ndarray,
    gallery: MatchGallery,
    truths: Sequence[str],
    fill: Sequence[str],
    settings: MatchSettings,
    cache: KeyValueCache | None = None,
    query_weights: np.ndarray | None = None,
    query_edges: np.ndarray | None = None,
) -> CalibratedRun:
    """Match the val queries, fit the calibrator on their pairs, and decide with out-of-fold probabilities.
    `query_weights`: the calibrator learns P(same) for queries in that mix (`assets.identify.mix`);
    `query_edges`: the queries' trailing edges (with the gallery's, a third candidate generator)."""
    started = time.perf_counter()
    matching = match_queries(
        query_features, query_embeddings, gallery, settings, cache, query_edges=query_edges
    )
    probabilities = out_of_fold_probabilities(matching.evidence, truths, query_weights=query_weights)
    rows, new_whale = decide(matching.evidence, probabilities, len(query_features), fill)
    last, _ = decide(matching.evidence, probabilities, len(query_features), fill, new_whale_last=True)
    calibration = calibration_of(probabilities, same_whale(matching.evidence, truths))
    calibrator = fit_calibrator(matching.evidence, truths, query_weights)
    seconds = time.perf_counter() - started
    return CalibratedRun(matching, probabilities, rows, new_whale, last, calibrator, calibration, seconds)


def apply_calibrated(
    query_features: list[LocalFeatures],
    query_embeddings: np.ndarray,
    gallery: MatchGallery,
    calibrator: MatchCalibrator,
    fill: Sequence[str],
    settings: MatchSettings,
    cache: KeyValueCache | None = None,
    query_edges: np.ndarray | None = None,
) -> CalibratedRun:
    """Match the queries and decide with the calibrator validation fitted."""
    started = time.perf_counter()
    matching = match_queries(
        query_features, query_embeddings, gallery, settings, cache, query_edges=query_edges
    )
    probabilities = calibrator.predict(matching.evidence[list(calibrator.feature_names)].to_numpy(np.float64))
    rows, new_whale = decide(matching.evidence, probabilities, len(query_features), fill)
    last, _ = decide(matching.evidence, probabilities, len(query_features), fill, new_whale_last=True)
    return CalibratedRun(
        matching, probabilities, rows, new_whale, last, seconds=time.perf_counter() - started
    )


def recall_table(matching: Matching, truths: Sequence[str]) -> pd.DataFrame:
    """Recall@k of each candidate generator and of their fusion, over known-whale queries."""
    generators = {
        "embedding": matching.embedding_rankings,
        "keypoint votes": matching.vote_rankings,
        **({"trailing edge": matching.edge_rankings} if matching.edge_rankings is not None else {}),
        "fused (verified)": matching.fused_rankings,
    }
    records = []
    for name, rankings in generators.items():
        recall = recall_at_k(rankings, truths, RECALL_KS)
        records.append({"generator": name, **{f"recall@{k}": round(recall[k], 4) for k in RECALL_KS}})
    return pd.DataFrame(records)


@dataclass
class ExhaustiveBaseline:
    """Every sampled query matched against every gallery photo; individuals ranked by their best inliers."""

    map5: float
    chain_map5: float  # the calibrated path on the same queries
    queries: int
    pairs: int
    seconds_per_query: float
    threshold: float


def exhaustive_baseline(
    query_features: list[LocalFeatures],
    gallery: MatchGallery,
    truths: Sequence[str],
    chain_rows: list[list[str]],
    fill: Sequence[str],
    settings: MatchSettings,
    sample: int,
) -> ExhaustiveBaseline | None:
    """The classical matcher on an evenly spaced sample of `sample` queries (its threshold tuned on them, which
    flatters it); None when `sample` is 0."""
    if sample <= 0 or not query_features:
        return None
    chosen = np.unique(np.linspace(0, len(query_features) - 1, min(sample, len(query_features))).astype(int))
    started = time.perf_counter()
    labels = np.asarray(gallery.labels, dtype=object)
    candidates = []
    with one_library_thread():
        for q in chosen:
            counts = np.array(
                [
                    count_inliers(query_features[q], g, settings.ratio, settings.reprojection_px)
                    for g in gallery.features
                ]
            )
            best: dict[str, float] = {}
            for label, count in zip(labels, counts):
                best[label] = max(best.get(label, 0.0), float(count))
            candidates.append(sorted(best.items(), key=lambda item: (-item[1], item[0]))[:5])
    seconds = time.perf_counter() - started
    sample_truths = [truths[q] for q in chosen]
    threshold, _ = tune_threshold(candidates, sample_truths, fill)
    rows = place_new_whale(candidates, threshold, fill_labels=list(fill))
    return ExhaustiveBaseline(
        map5=map_at_5(rows, sample_truths),
        chain_map5=map_at_5([chain_rows[q] for q in chosen], sample_truths),
        queries=len(chosen),
        pairs=len(chosen) * len(gallery.features),
        seconds_per_query=seconds / len(chosen),
        threshold=float(threshold),
    )


def new_whale_shares(rows: list[list[str]], truths: Sequence[str]) -> dict[str, float]:
    """Share of rows with new_whale first, against the share of queries whose truth is new_whale."""
    return {
        "new_whale_first_share": float(np.mean([row[0] == NEW_WHALE for row in rows])) if rows else 0.0,
        "true_new_whale_share": float(np.mean([t == NEW_WHALE for t in truths])) if truths else 0.0,
    }
