"""Validation during training, and the hard-individual reweighting it feeds.

After an epoch the model embeds the training fold (the gallery) and the validation fold (the queries), and the
queries are ranked with the one identification rule and the one threshold tuner of `models.retrieval` (the
101-point `tune_threshold` the validation report uses too), so the per-epoch val MAP@5
is tuned as the report's figures are. (The report searches its own `k` neighbours over a gallery that may hold
new_whale photos and embeds with flip TTA when asked; here the gallery is the known training photos.) With
`hard_reweight > 0`, individuals whose validation photos were ranked below first are then sampled more often.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from core.constants import NEW_WHALE
from core.metrics import average_precision_at_5, map_at_5
from models.batches import TrainingItems
from models.embedding import FlukeEmbedder, embed_images
from models.retrieval import (
    exact_index,
    individual_candidates,
    most_frequent_labels,
    place_new_whale,
    search,
    tune_threshold,
)

if TYPE_CHECKING:
    from models.training import TrainingConfig, TrainingData

NEIGHBOURS = 50  # gallery photos searched per query before aggregating to individuals
SWEEP_POINTS = 101  # as in the validation report


@dataclass
class Validation:
    map5: float
    threshold: float
    query_ap: np.ndarray  # per query: 1/rank of the truth among the five predictions (0 when absent)
    truths: list[str]


def validation_truths(query_labels: Sequence[str], gallery_labels: Sequence[str]) -> list[str]:
    """A validation photo of an individual absent from the gallery can only be answered `new_whale`."""
    known = set(gallery_labels) - {NEW_WHALE}
    return [label if label in known else NEW_WHALE for label in query_labels]


def rank_and_score(
    gallery: np.ndarray,
    gallery_labels: Sequence[str],
    queries: np.ndarray,
    query_labels: Sequence[str],
    neighbours: int = NEIGHBOURS,
    sweep_points: int = SWEEP_POINTS,
) -> Validation:
    """MAP@5 of nearest-neighbour identification (known gallery photos only), with the new_whale threshold
    tuned by `models.retrieval`'s sweep; rows short of five are filled with the most frequent individuals."""
    truths = validation_truths(query_labels, gallery_labels)
    keep = np.array([label != NEW_WHALE for label in gallery_labels], dtype=bool)
    labels = [label for label, k in zip(gallery_labels, keep) if k]
    known_gallery = np.asarray(gallery, dtype=np.float32)[keep]
    similarities, ids = search(exact_index(known_gallery), queries, neighbours)
    candidates = individual_candidates(similarities, ids, labels)
    fill = most_frequent_labels(labels)
    threshold, _ = tune_threshold(candidates, truths, fill, sweep_points)
    rows = place_new_whale(candidates, threshold, fill)
    query_ap = np.array([average_precision_at_5(row, truth) for row, truth in zip(rows, truths)], np.float64)
    return Validation(map_at_5(rows, truths), threshold, query_ap, truths)


def validate(
    model: FlukeEmbedder, data: TrainingData, device: torch.device, batch_size: int = 128
) -> Validation:
    """The validation fold ranked against the training fold, both embedded by `model` now."""
    gallery = embed_images(model, data.tensors, device, batch_size, rows=np.sort(data.train_rows))
    order = np.argsort(data.train_rows, kind="stable")
    gallery_labels = [data.train_labels[i] for i in order]
    queries = (
        embed_images(model, data.tensors, device, batch_size, rows=data.val_rows)
        if len(data.val_rows)
        else np.zeros((0, gallery.shape[1]), np.float32)
    )
    return rank_and_score(gallery, gallery_labels, queries, data.val_labels)


def reweight_hard_individuals(
    weights: np.ndarray, validation: Validation, items: TrainingItems, config: TrainingConfig
) -> np.ndarray:
    """Raise the sampling weight of individuals whose validation photos were ranked poorly."""
    weights = weights.copy()
    class_of = {name: i for i, name in enumerate(items.class_names)}
    for truth, ap in zip(validation.truths, validation.query_ap):
        if truth == NEW_WHALE or truth not in class_of or ap >= 1.0:
            continue
        for name in (truth, f"{truth}__flipped"):
            if name in class_of:
                c = class_of[name]
                weights[c] = min(config.max_class_weight, weights[c] * (1 + config.hard_reweight * (1 - ap)))
    return weights
