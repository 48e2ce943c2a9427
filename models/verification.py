"""Geometric verification: does a gallery photo show the query's fluke pattern under one perspective warp?

The embedding finds candidate individuals; verification re-scores them. A fluke is close to a plane, so two
photos of the same fluke are related by a homography: SIFT keypoints (OpenCV) of the two crops are matched
(faiss, two nearest descriptors each, Lowe's ratio test) and RANSAC counts the matches one homography explains.
Photos of different whales leave a handful of chance inliers; photos of the same whale leave tens.

An individual's verified score is `similarity + weight * min(inliers, cap)`, its inliers being the best over
its `photos_per_individual` gallery photos most similar to the query. `validation_report` chooses the weight
(and the new_whale threshold on the combined score); `submission` applies both, with the same functions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Protocol

import numpy as np
import pandas as pd

from core.caches import cached_map
from core.constants import TOP
from core.digests import stable_digest
from models.retrieval import Candidates

CROP_CHUNK = 2048  # gallery crops read at a time
MATCHING_VERSION = "sift-faiss-ransac-1"  # bump when count_inliers changes: cached counts are then stale

# (label, embedding similarity, inliers) per candidate individual, best embedding similarity first.
Verified = list[list[tuple[str, float, int]]]


@dataclass(frozen=True)
class VerificationSettings:
    """How candidates are verified. `candidates = 0` switches verification off."""

    candidates: int = 20  # individuals per query re-scored (the embedding's best first)
    photos_per_individual: int = 4  # gallery photos of each, the most similar to the query
    max_features: int = 300  # SIFT keypoints per crop
    ratio: float = 0.8  # Lowe's ratio test on the two nearest descriptors
    reprojection_px: float = 4.0  # RANSAC inlier distance, in crop pixels
    inlier_cap: int = 20  # inliers beyond this add nothing: the match is certain
    workers: int = 2  # threads (OpenCV and faiss release the GIL)

    @property
    def enabled(self) -> bool:
        return self.candidates > 0

    def to_dict(self) -> dict:
        return asdict(self)

    def pair_key(self, query_digest: str, gallery_digest: str) -> str:
        """Cache key of one pair's inlier count: the two crops and what the count depends on (settings, this
        module's matching and OpenCV's SIFT, whose keypoints may move between releases)."""
        import cv2

        matching = (self.max_features, self.ratio, self.reprojection_px, MATCHING_VERSION, cv2.__version__)
        return stable_digest(matching, query_digest, gallery_digest)

    @classmethod
    def from_dict(cls, values: dict) -> VerificationSettings:
        known = {name: values[name] for name in cls.__dataclass_fields__ if name in values}
        return cls(**known)


@dataclass(frozen=True)
class LocalFeatures:
    """SIFT keypoints of one crop: positions (x, y) in crop pixels and 128-byte descriptors."""

    points: np.ndarray  # float32 N x 2
    descriptors: np.ndarray  # uint8 N x 128

    def __len__(self) -> int:
        return len(self.points)


EMPTY = LocalFeatures(np.zeros((0, 2), np.float32), np.zeros((0, 128), np.uint8))


@contextmanager
def one_library_thread() -> Iterator[None]:
    """OpenCV and faiss each on one thread while ours run pairs in parallel: their own thread pools on top of ours
    oversubscribe the cores (2x slower matching on 2 busy cores, bench/verify.py). Restored afterwards."""
    import cv2
    import faiss

    opencv_threads, faiss_threads = cv2.getNumThreads(), faiss.omp_get_max_threads()
    cv2.setNumThreads(1)
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(opencv_threads)
        faiss.omp_set_num_threads(faiss_threads)


def local_features(crop: np.ndarray, max_features: int = 300) -> LocalFeatures:
    """SIFT keypoints of a uint8 C x H x W crop (colour crops are averaged to grey)."""
    import cv2

    grey = crop[0] if crop.shape[0] == 1 else crop.mean(axis=0).round().astype(np.uint8)
    sift = cv2.SIFT_create(nfeatures=max_features)
    keypoints, descriptors = sift.detectAndCompute(np.ascontiguousarray(grey), None)
    if descriptors is None or not keypoints:
        return EMPTY
    points = np.array([kp.pt for kp in keypoints], dtype=np.float32)
    # OpenCV's float SIFT descriptors are whole numbers in 0..255: bytes hold them at a quarter of the memory.
    return LocalFeatures(points, np.clip(np.rint(descriptors), 0, 255).astype(np.uint8))


def extract_local_features(
    crops: np.ndarray, rows: Sequence[int], max_features: int = 300, workers: int = 2
) -> dict[int, LocalFeatures]:
    """Features of `crops[row]` for each distinct row (threads; `crops` may be a memmap)."""
    unique = sorted({int(row) for row in rows})

    def one(row: int) -> LocalFeatures:
        return local_features(np.asarray(crops[row]), max_features)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return dict(zip(unique, pool.map(one, unique)))


def count_inliers(
    query: LocalFeatures, gallery: LocalFeatures, ratio: float = 0.8, reprojection_px: float = 4.0
) -> int:
    """Matches between two crops that one homography explains (RANSAC); 0 when there are too few to fit one."""
    return len(inlier_matches(query, gallery, ratio, reprojection_px)[0])


def inlier_matches(
    query: LocalFeatures, gallery: LocalFeatures, ratio: float = 0.8, reprojection_px: float = 4.0
) -> tuple[np.ndarray, np.ndarray]:
    """The matched points one homography explains, as (query points, gallery points), float32 K x 2 each: what
    `count_inliers` counts, and what a reviewer sees drawn between two photos."""
    import cv2
    import faiss

    none = np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32)
    if len(query) < 4 or len(gallery) < 2:
        return none
    distances, nearest = faiss.knn(
        query.descriptors.astype(np.float32), gallery.descriptors.astype(np.float32), 2
    )
    # faiss gives squared L2 distances: d1 < ratio * d2 on distances is d1^2 < ratio^2 * d2^2.
    good = distances[:, 0] < (ratio * ratio) * distances[:, 1]
    if good.sum() < 4:
        return none
    source = query.points[good]
    target = gallery.points[nearest[good, 0]]
    _, mask = cv2.findHomography(source, target, cv2.RANSAC, reprojection_px)
    if mask is None:
        return none
    keep = mask.ravel().astype(bool)
    return source[keep].astype(np.float32), target[keep].astype(np.float32)


def photos_to_compare(
    query_embedding: np.ndarray,
    label: str,
    rows_of: dict[str, np.ndarray],
    gallery_embeddings: np.ndarray,
    count: int,
) -> np.ndarray:
    """The gallery rows of `label` most similar to the query (at most `count`)."""
    rows = rows_of[label]
    if len(rows) <= count:
        return rows
    similarities = gallery_embeddings[rows] @ query_embedding
    return rows[np.argsort(-similarities, kind="stable")[:count]]


class InlierCache(Protocol):
    """Inlier counts of crop pairs already verified, keyed by `pair_key` (see `VerificationSettings.pair_key`)."""

    def lookup(self, keys: Sequence[str]) -> dict[str, int]: ...

    def store(self, inliers: dict[str, int]) -> None: ...


def crop_digest(crop: np.ndarray) -> str:
    """Content digest of one crop (shape and bytes)."""
    crop = np.ascontiguousarray(crop)
    return hashlib.sha256(repr(crop.shape).encode() + crop.tobytes()).hexdigest()[:32]


def match_pairs(
    pairs: list[tuple[int, int]],
    query_crops: np.ndarray,
    gallery_crops: Callable[[np.ndarray], np.ndarray],
    settings: VerificationSettings,
) -> tuple[list[int], int]:
    """Inlier counts of (query, gallery row) `pairs`, in order, and how many crops needed features: only those
    the pairs involve."""
    with one_library_thread():
        # In chunks: at Kaggle's scale the gallery crops alone would take ~1 GB; their features take a quarter.
        rows_to_read = sorted({row for _, row in pairs})
        gallery_features: dict[int, LocalFeatures] = {}
        for start in range(0, len(rows_to_read), CROP_CHUNK):
            chunk = np.asarray(rows_to_read[start : start + CROP_CHUNK], dtype=np.int64)
            features = extract_local_features(
                gallery_crops(chunk), range(len(chunk)), settings.max_features, settings.workers
            )
            gallery_features.update({int(chunk[i]): f for i, f in features.items()})
        query_features = extract_local_features(
            query_crops, sorted({i for i, _ in pairs}), settings.max_features, settings.workers
        )
        by_query: dict[int, list[int]] = {}
        for i, row in pairs:
            by_query.setdefault(i, []).append(row)

        def match(item: tuple[int, list[int]]) -> list[tuple[tuple[int, int], int]]:
            i, rows = item
            return [
                (
                    (i, row),
                    count_inliers(
                        query_features[i], gallery_features[row], settings.ratio, settings.reprojection_px
                    ),
                )
                for row in rows
            ]

        with ThreadPoolExecutor(max_workers=max(1, settings.workers)) as pool:
            fresh = dict(pair for result in pool.map(match, by_query.items()) for pair in result)
    return [fresh[pair] for pair in pairs], len(gallery_features) + len(query_features)


def verify_candidates(
    candidates: Candidates,
    query_embeddings: np.ndarray,
    query_crops: np.ndarray,
    gallery_embeddings: np.ndarray,
    gallery_labels: Sequence[str],
    gallery_crops: Callable[[np.ndarray], np.ndarray],
    settings: VerificationSettings,
    cache: InlierCache | None = None,
    stats: dict | None = None,
) -> Verified:
    """Inliers of each query's first `settings.candidates` individuals.

    `gallery_embeddings`/`gallery_labels` are the gallery in index order; `gallery_crops(rows)` returns the
    crops (uint8 N x C x H x W) of those gallery rows, so the caller decides where crops come from. With a
    `cache`, a pair of crops verified before (same bytes, same matching settings) is not matched again, and only
    the crops of new pairs get features: rerunning after a few new photos costs those photos. `stats`, when
    given, receives `pairs`, `pairs_from_cache` and `crops_with_features`.
    """
    rows_of = {
        label: np.asarray(rows, dtype=np.int64)
        for label, rows in pd.Series(np.arange(len(gallery_labels)))
        .groupby(list(gallery_labels))
        .indices.items()
    }
    plans: list[list[tuple[str, float, np.ndarray]]] = []
    for query, found in zip(query_embeddings, candidates):
        plans.append(
            [
                (
                    label,
                    similarity,
                    photos_to_compare(
                        query, label, rows_of, gallery_embeddings, settings.photos_per_individual
                    ),
                )
                for label, similarity in found[: settings.candidates]
            ]
        )
    pairs = sorted({(i, int(row)) for i, plan in enumerate(plans) for _, _, rows in plan for row in rows})
    needed = sorted({row for _, row in pairs})

    # Digests of every crop involved: a pair's cache key is its two crops' contents and the matching settings.
    gallery_digest: dict[int, str] = {}
    for start in range(0, len(needed), CROP_CHUNK):
        chunk = np.asarray(needed[start : start + CROP_CHUNK], dtype=np.int64)
        gallery_digest.update(zip(chunk.tolist(), map(crop_digest, gallery_crops(chunk))))
    query_digest = [crop_digest(crop) for crop in query_crops]
    keys = [settings.pair_key(query_digest[i], gallery_digest[row]) for i, row in pairs]
    featured = [0]

    def match_missing(positions: list[int]) -> list[int]:
        counts, featured[0] = match_pairs([pairs[p] for p in positions], query_crops, gallery_crops, settings)
        return counts

    counts, computed = cached_map(keys, match_missing, cache)
    inliers = {pair: int(count) for pair, count in zip(pairs, counts)}
    if stats is not None:
        stats.update(
            pairs=len(pairs), pairs_from_cache=len(pairs) - computed, crops_with_features=featured[0]
        )
    return [
        [
            (label, similarity, max((inliers[(i, int(row))] for row in rows), default=0))
            for label, similarity, rows in plan
        ]
        for i, plan in enumerate(plans)
    ]


def rescore(verified: Verified, weight: float, cap: int, top: int = TOP) -> Candidates:
    """Candidates ordered by `similarity + weight * min(inliers, cap)`, best first, `top` each.

    Weight 0 keeps the embedding's order and scores, so the same threshold rule applies either way.
    """
    rows: Candidates = []
    for found in verified:
        scored = [(label, similarity + weight * min(inliers, cap)) for label, similarity, inliers in found]
        # Stable sort: ties keep the embedding's order.
        rows.append(sorted(scored, key=lambda item: -item[1])[:top])
    return rows
