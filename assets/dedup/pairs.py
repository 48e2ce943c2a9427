"""Candidate pairs of near-identical pHashes, and the pixel check that tells duplicates from look-alikes.

faiss finds every pair of pHashes within `max_distance` bits (a binary range search, not a Python double loop);
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
    min_coarse: float = 0.85
    """Best coarse correlation below which a pair is rejected without the fine search."""
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


def candidate_pairs(codes: np.ndarray, max_distance: int) -> pd.DataFrame:
    """All pairs (a < b) whose codes are within `max_distance` bits, by a faiss binary range search."""
    if len(codes) < 2:
        return pd.DataFrame({c: pd.Series(dtype=np.int64) for c in PAIR_COLUMNS})
    index = faiss.IndexBinaryFlat(codes.shape[1] * 8)
    index.add(codes)
    # faiss keeps results with distance strictly below the radius.
    limits, distances, labels = index.range_search(codes, max_distance + 1)
    queries = np.repeat(np.arange(len(codes)), np.diff(limits.astype(np.int64)))
    keep = queries < labels
    pairs = pd.DataFrame(
        {
            "a": queries[keep].astype(np.int64),
            "b": labels[keep].astype(np.int64),
            "distance": distances[keep].astype(np.int64),
        }
    )
    return pairs.sort_values(["a", "b"]).reset_index(drop=True)


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


def aligned_similarity(
    first: np.ndarray, second: np.ndarray, settings: DedupSettings | None = None
) -> tuple[float, float]:
    """(similarity, best coarse score) of two prepared thumbnails (`prepare_thumbnail`); see
    `thumbnail_similarity`."""
    settings = settings or DedupSettings()
    side = first.shape[1]
    fine = [_unit(t[1]) for t in (first, second)]
    best = float(fine[0] @ fine[1])
    if best >= settings.min_similarity or settings.max_crop <= 0:
        return best, 1.0
    # Coarse: every grid crop of either photo against the other whole, on small blurred views.
    factor = max(1, side // (2 * settings.coarse_side))
    small = [_shrink(t[0], factor) for t in (first, second)]
    boxes, rows, cols = _grid_weights(small[0].shape[0], settings.coarse_side, settings.max_crop)
    coarse = (float("-inf"), 0, boxes[0])
    for which in (0, 1):
        whole = _unit(_shrink(small[1 - which], small[0].shape[0] // settings.coarse_side))
        scores = _views(small[which], (rows, cols)) @ whole
        if scores.max() > coarse[0]:
            coarse = (float(scores.max()), which, boxes[int(scores.argmax())] * factor)
    coarse_score, which, box = coarse
    if coarse_score < settings.min_coarse:
        return best, coarse_score
    # Fine: coordinate search in 1% steps on the detail views, from the best coarse crop.
    cropped, other = first[1] if which == 0 else second[1], fine[1 - which]
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
    return max(best, score), coarse_score


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
        return [aligned_similarity(prepared[a], prepared[b], settings)[0] for a, b in pairs]


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
