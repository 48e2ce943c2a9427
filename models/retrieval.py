"""Nearest-neighbour identification shared by training (per-epoch validation), validation and submission.

One ranking rule everywhere: k nearest gallery photos by inner product (faiss), aggregated to individuals by
their best similarity, then `new_whale` inserted at the first rank whose similarity falls below the threshold.
"""

from __future__ import annotations

from collections.abc import Sequence

import faiss
import numpy as np

NEW_WHALE = "new_whale"


def map_at_5(predictions: Sequence[Sequence[str]], truths: Sequence[str]) -> float:
    """Kaggle's MAP@5 with one true label per row: 1/rank of the first correct prediction among the first five.

    A label repeated within a row counts once (its first occurrence), as in the Kaggle metric.
    """
    if len(predictions) != len(truths):
        raise ValueError(f"{len(predictions)} prediction rows for {len(truths)} truths")
    if not truths:
        return 0.0
    total = 0.0
    for row, truth in zip(predictions, truths):
        seen: list[str] = []
        for label in row:
            if label not in seen:
                seen.append(label)
            if len(seen) == 5:
                break
        if truth in seen:
            total += 1.0 / (seen.index(truth) + 1)
    return total / len(truths)


def exact_index(embeddings: np.ndarray) -> faiss.Index:
    """Exact inner-product index (cosine similarity for L2-normalised embeddings)."""
    embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
    index = faiss.IndexFlatIP(embeddings.shape[1])
    index.add(embeddings)
    return index


def rank_individuals(
    similarities: np.ndarray,
    neighbours: np.ndarray,
    gallery_labels: Sequence[str],
    threshold: float,
    fill_labels: Sequence[str] = (),
    top: int = 5,
) -> list[list[str]]:
    """Turn faiss search results (rows of similarities and gallery row ids, best first) into `top` labels each.

    `new_whale` goes in front of the first individual whose best similarity is below `threshold`; rows with
    fewer than `top` candidates are filled from `fill_labels` (e.g. the most frequent individuals).
    """
    rows: list[list[str]] = []
    for sims, ids in zip(similarities, neighbours):
        labels: list[str] = []
        placed_new = False
        for sim, idx in zip(sims, ids):
            if idx < 0:
                break
            label = gallery_labels[idx]
            if label == NEW_WHALE or label in labels:
                continue
            if not placed_new and sim < threshold:
                labels.append(NEW_WHALE)
                placed_new = True
                if len(labels) == top:
                    break
            labels.append(label)
            if len(labels) == top:
                break
        if not placed_new and len(labels) < top:
            labels.append(NEW_WHALE)
        for label in fill_labels:
            if len(labels) >= top:
                break
            if label not in labels:
                labels.append(label)
        rows.append(labels[:top])
    return rows
