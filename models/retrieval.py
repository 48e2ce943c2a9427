"""Nearest-neighbour identification shared by training (per-epoch validation), validation and submission.

One ranking rule everywhere (`rank_individuals`): k nearest gallery photos by inner product (faiss), aggregated
to individuals by their best similarity, then `new_whale` inserted in front of the first individual whose
similarity falls below the threshold. The rule is split in two steps (`individual_candidates`, then
`place_new_whale`) only so that a threshold sweep can reuse the first step; both paths give identical rows.
The new_whale threshold has one tuner, `tune_threshold`, used by training-time validation and by the report.
"""

from __future__ import annotations

from collections.abc import Sequence

import faiss
import numpy as np
import pandas as pd

from core.constants import NEW_WHALE, TOP
from core.metrics import map_at_5

INDEX_TYPES = ("flat", "hnsw", "ivf")

Candidates = list[list[tuple[str, float]]]


# ---------------------------------------------------------------------------------------------------------------
# faiss indexes


def exact_index(embeddings: np.ndarray) -> faiss.Index:
    """Exact inner-product index (cosine similarity for L2-normalised embeddings)."""
    embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
    index = faiss.IndexFlatIP(embeddings.shape[1])
    index.add(embeddings)
    return index


def build_index(
    embeddings: np.ndarray,
    index_type: str = "flat",
    hnsw_m: int = 32,
    hnsw_ef_search: int = 128,
    ivf_lists: int = 0,
    ivf_probe: int = 16,
) -> faiss.Index:
    """An inner-product index of `index_type`: `flat` (exact, the default), `hnsw` or `ivf` (approximate, for
    galleries of hundreds of thousands of photos). Search parameters are set on the index and survive
    `index_to_bytes`/`index_from_bytes`.
    """
    embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
    count, dim = embeddings.shape
    if index_type == "flat":
        return exact_index(embeddings)
    if index_type == "hnsw":
        index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = hnsw_ef_search
        index.add(embeddings)
        return index
    if index_type == "ivf":
        # faiss wants ~39 training points per list; 4 * sqrt(N) lists is its usual rule of thumb.
        lists = ivf_lists or int(4 * np.sqrt(max(count, 1)))
        lists = max(1, min(lists, count // 39 or 1))
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, lists, faiss.METRIC_INNER_PRODUCT)
        index.train(embeddings)
        index.add(embeddings)
        index.nprobe = min(ivf_probe, lists)
        return index
    raise ValueError(f"index_type must be one of {', '.join(INDEX_TYPES)}; got {index_type!r}")


def index_to_bytes(index: faiss.Index) -> bytes:
    return faiss.serialize_index(index).tobytes()


def index_from_bytes(data: bytes) -> faiss.Index:
    return faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8).copy())


def search(index: faiss.Index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(similarities, gallery row ids), best first, `k` per query; ids are -1 where the gallery runs out."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    k = max(1, min(k, index.ntotal)) if index.ntotal else 1
    if len(queries) == 0 or index.ntotal == 0:
        return np.full((len(queries), k), -np.inf, np.float32), np.full((len(queries), k), -1, np.int64)
    return index.search(queries, k)


# ---------------------------------------------------------------------------------------------------------------
# the ranking rule


def individual_candidates(
    similarities: np.ndarray, neighbours: np.ndarray, gallery_labels: Sequence[str], top: int = TOP
) -> Candidates:
    """Per query, the first `top` distinct individuals among its neighbours with their best similarity.

    Neighbours come best first from faiss, so an individual's first appearance is its best similarity.
    `new_whale` gallery photos (if any) are never candidates: the label means "none of the known".
    """
    labels = np.asarray(gallery_labels, dtype=object)
    rows: Candidates = []
    for sims, ids in zip(similarities, neighbours):
        found: list[tuple[str, float]] = []
        seen: set[str] = set()
        for sim, idx in zip(sims, ids):
            if idx < 0:
                break
            label = labels[idx]
            if label == NEW_WHALE or label in seen:
                continue
            seen.add(label)
            found.append((label, float(sim)))
            if len(found) == top:
                break
        rows.append(found)
    return rows


def place_new_whale(
    candidates: Candidates, threshold: float, fill_labels: Sequence[str] = (), top: int = TOP
) -> list[list[str]]:
    """`new_whale` goes in front of the first individual whose similarity is below `threshold` (or after the
    last candidate when all are above it and there is room); rows still short are filled from `fill_labels`."""
    rows: list[list[str]] = []
    for found in candidates:
        labels: list[str] = []
        placed_new = False
        for label, sim in found:
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


def rank_individuals(
    similarities: np.ndarray,
    neighbours: np.ndarray,
    gallery_labels: Sequence[str],
    threshold: float,
    fill_labels: Sequence[str] = (),
    top: int = TOP,
) -> list[list[str]]:
    """Turn faiss search results (rows of similarities and gallery row ids, best first) into `top` labels each.

    `new_whale` goes in front of the first individual whose best similarity is below `threshold`; rows with
    fewer than `top` candidates are filled from `fill_labels` (e.g. the most frequent individuals).
    """
    candidates = individual_candidates(similarities, neighbours, gallery_labels, top=top)
    return place_new_whale(candidates, threshold, fill_labels=fill_labels, top=top)


def most_frequent_labels(labels: Sequence[str], count: int = TOP) -> list[str]:
    """The `count` known individuals with most photos (ties by name, so the order is stable): the fill labels."""
    series = pd.Series([label for label in labels if label != NEW_WHALE], dtype=object)
    if series.empty:
        return []
    counts = series.value_counts().rename_axis("label").reset_index(name="photos")
    counts = counts.sort_values(["photos", "label"], ascending=[False, True], kind="stable")
    return counts["label"].head(count).tolist()


# ---------------------------------------------------------------------------------------------------------------
# threshold tuning and statistics


def sweep_thresholds(candidates: Candidates, points: int = 101) -> np.ndarray:
    """Thresholds to try: quantiles of the candidates' similarities (resolution where the data is), plus one
    above all (new_whale always first) and one below all (new_whale only where a row runs out)."""
    sims = np.array([sim for found in candidates for _, sim in found], dtype=np.float64)
    sims = sims[np.isfinite(sims)]
    if sims.size == 0:
        return np.array([0.0])
    inner = np.quantile(sims, np.linspace(0.0, 1.0, max(points, 2)))
    return np.unique(np.concatenate([inner, [sims.min() - 1e-3, sims.max() + 1e-3]]))


def threshold_sweep(
    candidates: Candidates,
    truths: Sequence[str],
    thresholds: Sequence[float],
    fill_labels: Sequence[str] = (),
    top: int = TOP,
) -> pd.DataFrame:
    """MAP@5 and the share of `new_whale` at rank 1 for each threshold, with the one ranking rule."""
    records = []
    for threshold in thresholds:
        rows = place_new_whale(candidates, float(threshold), fill_labels=fill_labels, top=top)
        records.append(
            {
                "threshold": float(threshold),
                "map5": map_at_5(rows, truths),
                "new_whale_first_share": float(np.mean([r[0] == NEW_WHALE for r in rows])) if rows else 0.0,
            }
        )
    return pd.DataFrame(records, columns=["threshold", "map5", "new_whale_first_share"])


def choose_threshold(sweep: pd.DataFrame) -> float:
    """The threshold of best MAP@5; where several tie, the middle of the best run, away from its cliffs."""
    if sweep.empty:
        raise ValueError("empty threshold sweep")
    ordered = sweep.sort_values("threshold").reset_index(drop=True)
    best = ordered["map5"].max()
    at_best = np.flatnonzero(np.isclose(ordered["map5"].to_numpy(), best, rtol=0, atol=1e-12))
    # Longest run of consecutive best thresholds, then its middle.
    runs = np.split(at_best, np.flatnonzero(np.diff(at_best) != 1) + 1)
    run = max(runs, key=len)
    return float(ordered["threshold"].iloc[run[len(run) // 2]])


def tune_threshold(
    candidates: Candidates, truths: Sequence[str], fill_labels: Sequence[str] = (), points: int = 101
) -> tuple[float, pd.DataFrame]:
    """The one threshold tuner: sweep `points` quantile thresholds of these candidates (`sweep_thresholds`),
    score each with the ranking rule (`threshold_sweep`) and keep the middle of the best run
    (`choose_threshold`). Returns (threshold, sweep)."""
    sweep = threshold_sweep(candidates, truths, sweep_thresholds(candidates, points), fill_labels)
    return choose_threshold(sweep), sweep
