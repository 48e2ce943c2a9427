"""Every photo's fluke-box keypoints, computed once per photo and cached by content, stored as two flat arrays.

Follow one photo: its box from `fluke_boxes` (none, or a fallback box: the whole photo) and its content hash make
the cache key; a miss runs `models.keypoints.box_keypoints` (in worker processes with the other misses). A cache
entry is one small uint8 array, N x 136: the N points' float32 (x, y) as 8 bytes, then the 128-byte descriptor.
All photos' keypoints are then concatenated in manifest order into `points` (float32 M x 2) and `descriptors`
(uint8 M x 128); `index` says where each photo's slice starts and how long it is.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core.artifacts import KEYPOINT_INDEX_COLUMNS, FlukeKeypoints
from core.caches import ArrayCache, cached_map
from core.digests import stable_digest
from core.parallel import parallel_map
from models.keypoints import Box, KeypointSettings, box_keypoints
from models.verification import LocalFeatures

# -2: the value carries the settings that made it (`settings`), so a reader can rebuild the box frames.
CODE_VERSION = "fluke_keypoints-2"
# Bump when a photo's keypoints change for the same photo, box and settings: cached entries are then stale.
KEYPOINTS_VERSION = "box-sift-1"

POINT_BYTES = 8  # float32 x, y
ENTRY_WIDTH = POINT_BYTES + 128


@dataclass(frozen=True)
class KeypointSpec:
    """Everything one worker needs for one photo (picklable)."""

    path: str
    box: Box | None
    settings: KeypointSettings


def keypoint_cache_key(content_hash: str, box: Box | None, settings: KeypointSettings) -> str:
    """What a photo's keypoints depend on: its bytes, its box (to 0.1 px), the settings, OpenCV's SIFT (its
    keypoints may move between releases) and this stage's version."""
    import cv2

    rounded = None if box is None else [round(float(v), 1) for v in box]
    return stable_digest(
        content_hash, rounded, settings.feature_settings(), cv2.__version__, KEYPOINTS_VERSION
    )


def photo_boxes(manifest: pd.DataFrame, boxes: pd.DataFrame) -> list[Box | None]:
    """The box of each manifest row, in order: None (the whole photo) where it has no box or a fallback one."""
    usable = boxes if "fallback" not in boxes else boxes[~boxes["fallback"].astype(bool)]
    by_image = usable.drop_duplicates(["image", "split"]).set_index(["image", "split"])
    found = by_image[["x0", "y0", "x1", "y1"]].to_dict(orient="index")
    result: list[Box | None] = []
    for key in zip(manifest["image"], manifest["split"]):
        box = found.get(key)
        result.append(None if box is None else tuple(float(box[c]) for c in ("x0", "y0", "x1", "y1")))
    return result


def encode(features: LocalFeatures) -> np.ndarray:
    """One photo's keypoints as a uint8 N x 136 cache entry (points' float32 bytes, then descriptors)."""
    points = np.ascontiguousarray(features.points, dtype=np.float32).reshape(-1, 2)
    return np.concatenate([points.view(np.uint8).reshape(-1, POINT_BYTES), features.descriptors], axis=1)


def decode(entry: np.ndarray) -> LocalFeatures:
    points = np.ascontiguousarray(entry[:, :POINT_BYTES]).view(np.float32).reshape(-1, 2)
    return LocalFeatures(points, np.ascontiguousarray(entry[:, POINT_BYTES:]))


def keypoints_entry(spec: KeypointSpec) -> np.ndarray:
    """One photo's encoded keypoints (the worker function)."""
    return encode(box_keypoints(spec.path, spec.box, spec.settings))


@contextmanager
def one_opencv_thread(enabled: bool) -> Iterator[None]:
    """OpenCV on one thread while worker processes are forked, restored afterwards. The workers inherit it, so
    their SIFT never touches the thread pool copied from this process: changing the thread count in a forked
    child deadlocks OpenCV (5.0 here), and N workers x N threads would oversubscribe the cores."""
    import cv2

    threads = cv2.getNumThreads()
    if enabled:
        cv2.setNumThreads(1)
    try:
        yield
    finally:
        if enabled:
            cv2.setNumThreads(threads)


class _Entries:
    """An ArrayCache that answers only well-formed entries (anything else is recomputed)."""

    def __init__(self, cache: ArrayCache):
        self.cache = cache

    def lookup(self, keys: Iterable[str]) -> dict:
        return {
            key: entry
            for key, entry in self.cache.lookup(keys).items()
            if entry.dtype == np.uint8 and entry.ndim == 2 and entry.shape[1] == ENTRY_WIDTH
        }

    def store(self, values: dict) -> None:
        self.cache.store(values)


def keypoint_cache(folder: Path) -> ArrayCache:
    """The per-photo cache: `<folder>/<key[:2]>/<key>.npy`, one uint8 N x 136 entry each."""
    return ArrayCache(Path(folder))


def extract_keypoints(
    manifest: pd.DataFrame,
    boxes: pd.DataFrame,
    data_root: Path,
    settings: KeypointSettings,
    cache: ArrayCache | None = None,
    workers: int | None = None,
    stats: dict | None = None,
) -> FlukeKeypoints:
    """Keypoints of every manifest photo's fluke box (`FlukeKeypoints`, manifest order).

    Per-photo results are cached by (content hash, box, settings, OpenCV, version): a new photo or a moved box
    costs only itself. The missing ones are computed over `workers` processes. `stats`, when given, receives
    `computed`, `cached`, `seconds` and `extract_seconds` (the computing alone).
    """
    started = time.perf_counter()
    photo_box = photo_boxes(manifest, boxes)
    keys = [keypoint_cache_key(h, box, settings) for h, box in zip(manifest["content_hash"], photo_box)]
    paths = [str(Path(data_root) / path) for path in manifest["path"]]
    extract = {"seconds": 0.0}

    def compute(positions: list[int]) -> list[np.ndarray]:
        extract_started = time.perf_counter()
        specs = [KeypointSpec(paths[i], photo_box[i], settings) for i in positions]
        with one_opencv_thread(workers is None or workers > 1):
            entries = parallel_map(keypoints_entry, specs, workers=workers)
        extract["seconds"] = time.perf_counter() - extract_started
        return entries

    entries, computed = cached_map(keys, compute, _Entries(cache) if cache is not None else None)
    value: FlukeKeypoints = {**assemble(entries, manifest), "settings": settings.feature_settings()}
    if stats is not None:
        stats.update(
            computed=computed,
            cached=len(keys) - computed,
            seconds=time.perf_counter() - started,
            extract_seconds=extract["seconds"],
        )
    return value


def assemble(entries: list[np.ndarray], manifest: pd.DataFrame) -> FlukeKeypoints:
    """Per-photo entries (manifest order) concatenated into the flat arrays and their index."""
    counts = np.array([len(entry) for entry in entries], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64) if len(counts) else counts
    total = int(counts.sum())
    points = np.empty((total, 2), dtype=np.float32)
    descriptors = np.empty((total, 128), dtype=np.uint8)
    for start, entry in zip(starts, entries):
        features = decode(entry)
        points[start : start + len(entry)] = features.points
        descriptors[start : start + len(entry)] = features.descriptors
    index = pd.DataFrame(
        {
            "image": manifest["image"].to_numpy(),
            "split": manifest["split"].to_numpy(),
            "start": starts,
            "count": counts,
        },
        columns=KEYPOINT_INDEX_COLUMNS,
    )
    return {"points": points, "descriptors": descriptors, "index": index}


def keypoint_problems(keypoints: FlukeKeypoints, manifest: pd.DataFrame) -> dict:
    """What the completeness check reports: accepted photos without an index row, and whether the slices tile the
    arrays (start at 0, each where the previous ends, the last at their end, points and descriptors alike)."""
    index, points, descriptors = keypoints["index"], keypoints["points"], keypoints["descriptors"]
    merged = manifest[["image", "split"]].merge(index[["image", "split"]], how="left", indicator=True)
    missing = int((merged["_merge"] == "left_only").sum())
    starts, counts = index["start"].to_numpy(np.int64), index["count"].to_numpy(np.int64)
    expected = np.concatenate([[0], np.cumsum(counts)[:-1]]) if len(counts) else counts
    tiled = bool(
        (counts >= 0).all()
        and np.array_equal(starts, expected)
        and int(counts.sum()) == len(points) == len(descriptors)
    )
    shapes = (
        points.ndim == 2 and points.shape[1] == 2 and descriptors.ndim == 2 and descriptors.shape[1] == 128
    )
    return {
        "missing": missing,
        "tiled": tiled,
        "shapes": bool(shapes and points.dtype == np.float32 and descriptors.dtype == np.uint8),
        "index_rows": int(len(index)),
        "keypoints": int(len(points)),
    }
