"""Candidate pairs of near-identical pHashes, and the pixel check that tells duplicates from look-alikes.

faiss finds the pairs of pHashes within `max_distance` bits, each photo's nearest few (a binary k-nearest search,
not a Python double loop);
the two photos' small grayscale thumbnails are then compared pixel by pixel, allowing for a few percent of crop,
so that similar-looking different photos are not merged.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path

import faiss
import numpy as np
import pandas as pd
from PIL import Image
from scipy.ndimage import gaussian_filter

from assets.dedup.phash import open_reduced_grayscale
from core.parallel import parallel_map

# Candidate pairs: row numbers a < b of the hash table and their pHash Hamming distance.
PAIR_COLUMNS = ["a", "b", "distance"]


@dataclass(frozen=True)
class DedupSettings:
    """Which pairs are candidates and which candidates the pixel check verifies as duplicates."""

    max_distance: int = 12
    """Candidate pairs: pHash Hamming distance <= this (of 64 bits). Crops of up to 4% per side moved the pHash
    of generated photos by at most 12 bits (99% by <= 10); re-encoding and resizing by <= 2."""
    thumbnail_side: int = 64
    """Side (px) of the grayscale thumbnail (aspect squashed) a candidate pair is verified on."""
    coarse_side: int = 16
    """Side (px) of the blurred views the coarse crop search correlates."""
    max_neighbours: int = 32
    """Candidates per photo: its `max_neighbours` nearest pHashes within `max_distance` (0: every one). On
    generated flukes the photos within 12 bits grow with the set (mean 13 at 6,692 photos, 29 at 33,320), so
    uncapped pairs grow as N^2 (1.02M at full size); capped they are at most N x 32 (421k at full size). Every
    true duplicate of the full-size set was among its photo's 32 nearest (16: 99.85%)."""
    min_coarse: float = 0.90
    """Best coarse correlation below which a pair is rejected without the fine search. True duplicates that
    need the crop search scored >= 0.9425 on every generated set measured (830 pairs at 683-33,320 photos);
    different photos 0.856 / 0.881 / 0.923 at the 10th / 50th / 90th percentile, so 0.90 skips ~70% of fine
    searches (0.85, the earlier value, skipped none of those)."""
    fine_side: int = 64
    """Side (px) of the detail (high-pass) views the refined alignment and the verdict use."""
    max_crop: float = 0.08
    """Largest crop per image side (fraction) the verification undoes."""
    min_similarity: float = 0.87
    """Correlation of the aligned detail views above which a candidate is a duplicate."""


def hashes_to_codes(phashes: pd.Series | list[str]) -> np.ndarray:
    """Hex pHashes as an (N, bytes) uint8 array, the layout faiss's binary indexes take."""
    return np.array(
        [np.frombuffer(bytes.fromhex(h), dtype=np.uint8) for h in phashes], dtype=np.uint8
    ).reshape(len(phashes), -1)


def candidate_pairs(codes: np.ndarray, max_distance: int, max_neighbours: int = 0) -> pd.DataFrame:
    """Pairs (a < b) whose codes are within `max_distance` bits, by faiss: all of them (a binary range search),
    or with `max_neighbours` > 0 those where b is among a's nearest `max_neighbours` or a among b's (a k-nearest
    search), at most N x max_neighbours pairs however many photos look alike."""
    if len(codes) < 2:
        return pd.DataFrame({c: pd.Series(dtype=np.int64) for c in PAIR_COLUMNS})
    index = faiss.IndexBinaryFlat(codes.shape[1] * 8)
    index.add(codes)
    if 0 < max_neighbours < len(codes) - 1:
        # One more than asked: each photo finds itself (or an identical copy in its place, kept below).
        distances, labels = index.search(codes, max_neighbours + 1)
        queries = np.repeat(np.arange(len(codes)), max_neighbours + 1)
        labels, distances = labels.reshape(-1), distances.reshape(-1)
        keep = (labels >= 0) & (labels != queries) & (distances <= max_distance)
        first, second = np.minimum(queries, labels)[keep], np.maximum(queries, labels)[keep]
        distances = distances[keep]
    else:
        # faiss keeps results with distance strictly below the radius.
        limits, distances, labels = index.range_search(codes, max_distance + 1)
        queries = np.repeat(np.arange(len(codes)), np.diff(limits.astype(np.int64)))
        keep = queries < labels
        first, second, distances = queries[keep], labels[keep], distances[keep]
    pairs = pd.DataFrame(
        {"a": first.astype(np.int64), "b": second.astype(np.int64), "distance": distances.astype(np.int64)}
    )
    return pairs.drop_duplicates(["a", "b"]).sort_values(["a", "b"]).reset_index(drop=True)


def load_thumbnail(path: str, side: int = 64) -> np.ndarray:
    """A side x side uint8 grayscale thumbnail (aspect squashed), decoded at reduced scale."""
    image = open_reduced_grayscale(Path(path), 2 * side)
    return np.asarray(image.resize((side, side), Image.BILINEAR, reducing_gap=2.0), dtype=np.uint8)


def prepare_thumbnail(thumbnail: np.ndarray) -> np.ndarray:
    """(2, side, side) float32: the plain thumbnail and its detail (what a Gaussian blur removes: the fluke's
    pattern and edges, not the sky-and-sea gradient that different photos share)."""
    plain = np.asarray(thumbnail, dtype=np.float32)
    detail = plain - gaussian_filter(plain, plain.shape[0] / 16, truncate=3.0)
    return np.stack([plain, detail])


def load_prepared_thumbnail(path: str, side: int = 64) -> np.ndarray:
    return prepare_thumbnail(load_thumbnail(path, side))


def load_thumbnails(paths: list[str], side: int = 64, workers: int | None = None) -> list[np.ndarray]:
    """`load_thumbnail` of many photos over processes."""
    return parallel_map(partial(load_thumbnail, side=side), paths, workers=workers)


def _area_weights(low: np.ndarray, high: np.ndarray, size: int, side: int) -> np.ndarray:
    """(K, side, size) float32 matrices that average [low, high) of a length-`size` axis into `side` cells
    (area resampling, so shrinking does not alias)."""
    width = (high - low)[:, None] / side
    starts = low[:, None] + width * np.arange(side)[None, :]
    ends = starts + width
    pixel = np.arange(size)[None, None, :]
    overlap = np.minimum(ends[..., None], pixel + 1) - np.maximum(starts[..., None], pixel)
    return (np.clip(overlap, 0.0, None) / width[..., None]).astype(np.float32)


def _box_weights(boxes: np.ndarray, size: int, side: int) -> tuple[np.ndarray, np.ndarray]:
    """Row weights (K*side, size) and transposed column weights (K, size, side) for boxes of a square image."""
    rows = _area_weights(boxes[:, 1], boxes[:, 3], size, side).reshape(len(boxes) * side, size)
    cols = np.ascontiguousarray(_area_weights(boxes[:, 0], boxes[:, 2], size, side).transpose(0, 2, 1))
    return rows, cols


def _views(image: np.ndarray, weights: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Each box (given by its `_box_weights`) of `image` resampled, zero-mean and unit-norm: (K, side*side)."""
    rows, cols = weights
    count, side = cols.shape[0], cols.shape[2]
    # One 2-D product for the rows, then contiguous batched products: both run in BLAS.
    views = np.matmul((rows @ image).reshape(count, side, -1), cols).reshape(count, -1)
    views -= views.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(views, axis=1, keepdims=True)
    return views / np.maximum(norms, 1e-6)


def _unit(pixels: np.ndarray) -> np.ndarray:
    flat = pixels.reshape(-1) - pixels.mean()
    return flat / max(float(np.linalg.norm(flat)), 1e-6)


@lru_cache(maxsize=8)
def _grid_weights(size: int, side: int, max_crop: float) -> tuple[np.ndarray, np.ndarray]:
    """Weights of the coarse crop grid: boxes removing 0..max_crop of each side in steps of max_crop / 2."""
    steps = [0.0, max_crop / 2, max_crop]
    per_axis = [(lo * size, (1 - hi) * size) for lo in steps for hi in steps]
    boxes = np.array([(x0, y0, x1, y1) for x0, x1 in per_axis for y0, y1 in per_axis], dtype=np.float64)
    return boxes, *_box_weights(boxes, size, side)


def _shrink(image: np.ndarray, factor: int) -> np.ndarray:
    """Average factor x factor blocks (the side must divide)."""
    side = image.shape[0] // factor
    return image.reshape(side, factor, side, factor).mean(axis=(1, 3))


@dataclass(frozen=True)
class PairFeatures:
    """What the first two stages of the pixel check need of one prepared thumbnail, computed once per photo."""

    # (side*side,) the unit detail view: the no-crop correlation's and the fine search's target
    fine: np.ndarray
    views: np.ndarray  # (grid boxes, coarse_side**2) unit blurred views of each coarse grid crop
    whole: np.ndarray  # (coarse_side**2,) the unit blurred view of the whole thumbnail


def pair_features(prepared: np.ndarray, settings: DedupSettings) -> PairFeatures:
    side = prepared.shape[1]
    factor = max(1, side // (2 * settings.coarse_side))
    small = _shrink(prepared[0], factor)
    _, rows, cols = _grid_weights(small.shape[0], settings.coarse_side, settings.max_crop)
    return PairFeatures(
        fine=_unit(prepared[1]),
        views=_views(small, (rows, cols)),
        whole=_unit(_shrink(small, small.shape[0] // settings.coarse_side)),
    )


def _fine_search(cropped: np.ndarray, other: np.ndarray, box: np.ndarray, settings: DedupSettings) -> float:
    """Coordinate search in 1% and then 0.5% steps of `box` on `cropped`'s detail view against the unit detail
    view `other`, until the correlation reaches `min_similarity` or stops improving."""
    side = cropped.shape[0]
    score = float(_views(cropped, _box_weights(box[None, :], side, side))[0] @ other)
    smallest = (1 - 2 * settings.max_crop - 0.02) * side
    for step in (0.01, 0.005):
        moves = np.concatenate([np.eye(4), -np.eye(4)]) * step * side
        while score < settings.min_similarity:
            trials = np.clip(box[None, :] + moves, 0.0, side)
            trials = trials[
                (trials[:, 2] - trials[:, 0] >= smallest) & (trials[:, 3] - trials[:, 1] >= smallest)
            ]
            if not len(trials):
                break
            scores = _views(cropped, _box_weights(trials, side, side)) @ other
            if scores.max() <= score:
                break
            score, box = float(scores.max()), trials[int(scores.argmax())]
    return score


def batch_similarities(
    prepared: dict[int, np.ndarray], pairs: list[tuple[int, int]], settings: DedupSettings
) -> tuple[np.ndarray, np.ndarray]:
    """(similarity, best coarse score) of each pair of prepared thumbnails (`prepare_thumbnail`), as
    `thumbnail_similarity` defines them.

    Each photo's views are made once per chunk, the no-crop correlation and the coarse crop grid of every pair
    are then batched products (most candidate pairs are different photos, rejected there), and only the pairs
    that pass the coarse stage run the fine search one by one. Measured on one core, 6,000 candidate pairs of
    a 6,692-photo set: 0.66 ms per pair against 0.76 for the pair-by-pair loop at the same settings, 0.41 with
    `min_coarse` 0.90 (most of what is left is making each photo's views, about once per pair, and the fine
    searches), with the same verdicts.
    """
    if not pairs:
        return np.zeros(0), np.zeros(0)
    features = {index: pair_features(image, settings) for index, image in prepared.items()}
    first, second = (np.array(side) for side in zip(*pairs))
    # Per-photo features stacked once: each pair is then two row gathers and an einsum.
    order = sorted(features)
    position = {index: i for i, index in enumerate(order)}
    fine = np.stack([features[i].fine for i in order])
    views = np.stack([features[i].views for i in order])
    whole = np.stack([features[i].whole for i in order])
    a = np.array([position[i] for i in first])
    b = np.array([position[i] for i in second])
    best = np.einsum("pd,pd->p", fine[a], fine[b])
    similarity, coarse = best.astype(np.float64), np.ones(len(pairs))
    if settings.max_crop <= 0:
        return similarity, coarse
    # Every grid crop of either photo against the other whole; the first photo wins ties, as a loop would.
    crops_of_first = np.einsum("pkd,pd->pk", views[a], whole[b])
    crops_of_second = np.einsum("pkd,pd->pk", views[b], whole[a])
    use_second = crops_of_second.max(axis=1) > crops_of_first.max(axis=1)
    scores = np.where(use_second[:, None], crops_of_second, crops_of_first)
    undecided = best < settings.min_similarity
    coarse[undecided] = scores.max(axis=1)[undecided]
    side = prepared[order[0]].shape[1]  # every thumbnail has the same side
    factor = max(1, side // (2 * settings.coarse_side))
    boxes = _grid_weights(side // factor, settings.coarse_side, settings.max_crop)[0] * factor
    for p in np.flatnonzero(undecided & (coarse >= settings.min_coarse)):
        cropped, other = (second[p], first[p]) if use_second[p] else (first[p], second[p])
        box = boxes[int(scores[p].argmax())]
        searched = _fine_search(prepared[cropped][1], features[other].fine, box, settings)
        similarity[p] = max(similarity[p], searched)
    return similarity, coarse


def aligned_similarity(
    first: np.ndarray, second: np.ndarray, settings: DedupSettings | None = None
) -> tuple[float, float]:
    """(similarity, best coarse score) of two prepared thumbnails (`prepare_thumbnail`); see
    `thumbnail_similarity`."""
    similarity, coarse = batch_similarities({0: first, 1: second}, [(0, 1)], settings or DedupSettings())
    return float(similarity[0]), float(coarse[0])


def thumbnail_similarity(
    first: np.ndarray, second: np.ndarray, settings: DedupSettings | None = None
) -> float:
    """How surely `second` is a re-encoded, resized or slightly cropped copy of `first` (or the reverse):
    the correlation of their detail views after undoing the crop, in [-1, 1]. Takes thumbnails
    (`load_thumbnail`) or prepared thumbnails (`prepare_thumbnail`).

    The crop is found coarse to fine: a grid of crops of either photo against the other on small blurred
    views (a pair whose best coarse match stays below `min_coarse` is rejected there), then a coordinate
    search in 1% and then 0.5% steps on the detail views. The search stops once the correlation reaches `min_similarity`:
    a verdict needs no better alignment.
    """
    first, second = (t if t.ndim == 3 else prepare_thumbnail(t) for t in (first, second))
    return aligned_similarity(first, second, settings)[0]


def _chunk_similarities(
    chunk: tuple[dict[int, np.ndarray], list[tuple[int, int]]], settings: DedupSettings
) -> list[float]:
    thumbnails, pairs = chunk
    # The products are tiny: a multi-threaded BLAS spends far more on waking threads than on the work
    # (17x slower measured on 2 busy cores), so each chunk runs on one BLAS thread.
    with _one_blas_thread():
        prepared = {index: prepare_thumbnail(thumbnail) for index, thumbnail in thumbnails.items()}
        return batch_similarities(prepared, pairs, settings)[0].tolist()


def verify_pairs(
    pairs: pd.DataFrame,
    thumbnails: dict[int, np.ndarray],
    settings: DedupSettings,
    workers: int | None = None,
    chunk_pairs: int = 256,
) -> pd.DataFrame:
    """`pairs` with a `similarity` column and `verified` (similarity >= settings.min_similarity).

    `thumbnails` maps a pair's row numbers to `load_thumbnail` thumbnails; each chunk of pairs ships only
    the (small, uint8) thumbnails it needs to its process.
    """
    edges = list(zip(pairs["a"].tolist(), pairs["b"].tolist()))
    chunks = []
    for start in range(0, len(edges), chunk_pairs):
        part = edges[start : start + chunk_pairs]
        needed = {index for edge in part for index in edge}
        chunks.append(({index: thumbnails[index] for index in needed}, part))
    results = parallel_map(
        partial(_chunk_similarities, settings=settings), chunks, workers=workers, chunksize=1
    )
    verified = pairs.copy()
    verified["similarity"] = np.asarray([value for chunk in results for value in chunk], dtype=np.float64)
    verified["verified"] = verified["similarity"] >= settings.min_similarity
    return verified


def _one_blas_thread():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: only speed depends on it
        return nullcontext()
    return threadpool_limits(limits=1, user_api="blas")
