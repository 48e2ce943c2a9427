"""Every photo's trailing edge, traced once per photo and cached by content, stored as one array and its index.

Follow one photo: its box from `fluke_boxes` and its content hash make the cache key; a miss runs
`models.outline.trace_edge` (in worker processes with the other misses). A cache entry is the float32 edge,
`EDGE_SAMPLES` heights (all NaN: traced, but the fluke could not be told from the water). A photo without a
detected box (none, or the whole-photo fallback) is not traced at all. `edges` holds one row per manifest photo,
in manifest order; `index` says which row is which photo, whether its edge was traced, and why not.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from assets.keypoints.features import one_opencv_thread, photo_boxes
from core.artifacts import OUTLINE_INDEX_COLUMNS, FlukeOutlines
from core.caches import ArrayCache, cached_map
from core.digests import stable_digest
from core.parallel import parallel_map
from models.outline import EDGE_SAMPLES, OutlineSettings, trace_edge, traced

CODE_VERSION = "fluke_outlines-1"
# Bump when a photo's edge changes for the same photo, box and settings: cached entries are then stale.
OUTLINE_VERSION = "grabcut-edge-1"

NO_BOX = "no fluke box"
NOT_SEPARATED = "fluke not told from the water"


@dataclass(frozen=True)
class OutlineSpec:
    """Everything one worker needs for one photo (picklable)."""

    path: str
    box: tuple[float, float, float, float]
    settings: OutlineSettings


def outline_cache_key(content_hash: str, box: tuple[float, ...], settings: OutlineSettings) -> str:
    """What a photo's edge depends on: its bytes, its box (to 0.1 px), the settings, OpenCV (GrabCut may change
    between releases) and this stage's version."""
    import cv2

    rounded = [round(float(v), 1) for v in box]
    return stable_digest(content_hash, rounded, settings.to_dict(), cv2.__version__, OUTLINE_VERSION)


def edge_entry(spec: OutlineSpec) -> np.ndarray:
    """One photo's traced edge (the worker function)."""
    return trace_edge(spec.path, spec.box, spec.settings)


class _Edges:
    """An ArrayCache that answers only well-formed entries (anything else is recomputed)."""

    def __init__(self, cache: ArrayCache):
        self.cache = cache

    def lookup(self, keys) -> dict:
        return {
            key: entry
            for key, entry in self.cache.lookup(keys).items()
            if entry.dtype == np.float32 and entry.shape == (EDGE_SAMPLES,)
        }

    def store(self, values: dict) -> None:
        self.cache.store(values)


def trace_outlines(
    manifest: pd.DataFrame,
    boxes: pd.DataFrame,
    data_root: Path,
    settings: OutlineSettings,
    cache: ArrayCache | None = None,
    workers: int | None = None,
    stats: dict | None = None,
) -> FlukeOutlines:
    """The trailing edge of every manifest photo with a detected box (`FlukeOutlines`, manifest order).

    `stats`, when given, receives `computed`, `cached`, `seconds` and `trace_seconds` (the tracing alone).
    """
    started = time.perf_counter()
    photo_box = photo_boxes(manifest, boxes)
    boxed = [i for i, box in enumerate(photo_box) if box is not None]
    keys = [outline_cache_key(manifest["content_hash"].iloc[i], photo_box[i], settings) for i in boxed]
    paths = [str(Path(data_root) / path) for path in manifest["path"]]
    timing = {"seconds": 0.0}

    def compute(positions: list[int]) -> list[np.ndarray]:
        trace_started = time.perf_counter()
        specs = [OutlineSpec(paths[boxed[p]], photo_box[boxed[p]], settings) for p in positions]
        with one_opencv_thread(workers is None or workers > 1):
            entries = parallel_map(edge_entry, specs, workers=workers)
        timing["seconds"] = time.perf_counter() - trace_started
        return entries

    entries, computed = cached_map(keys, compute, _Edges(cache) if cache is not None else None)
    edges = np.full((len(manifest), EDGE_SAMPLES), np.nan, np.float32)
    for row, entry in zip(boxed, entries):
        edges[row] = entry
    found = traced(edges)
    has_box = np.array([box is not None for box in photo_box], dtype=bool)
    reasons = np.where(found, "", np.where(has_box, NOT_SEPARATED, NO_BOX))
    index = pd.DataFrame(
        {
            "image": manifest["image"].to_numpy(),
            "split": manifest["split"].to_numpy(),
            "row": np.arange(len(manifest), dtype=np.int64),
            "traced": found,
            "reason": reasons.astype(object),
        },
        columns=OUTLINE_INDEX_COLUMNS,
    )
    if stats is not None:
        stats.update(
            computed=computed,
            cached=len(keys) - computed,
            seconds=time.perf_counter() - started,
            trace_seconds=timing["seconds"],
        )
    return {"edges": edges, "index": index, "settings": settings.to_dict()}


def outline_problems(outlines: FlukeOutlines, manifest: pd.DataFrame) -> dict:
    """What the completeness check reports: accepted photos without an index row, rows pointing outside the
    array, and a traced flag that disagrees with the edge it points to."""
    index, edges = outlines["index"], np.asarray(outlines["edges"])
    merged = manifest[["image", "split"]].merge(index[["image", "split"]], how="left", indicator=True)
    rows = index["row"].to_numpy(np.int64)
    inside = bool(len(rows) == 0 or (rows.min() >= 0 and rows.max() < len(edges)))
    agree = inside and bool(np.array_equal(traced(edges[rows]), index["traced"].to_numpy(bool)))
    return {
        "missing": int((merged["_merge"] == "left_only").sum()),
        "rows_inside": inside,
        "traced_flags_agree": agree,
        "shape_ok": bool(edges.ndim == 2 and edges.shape[1] == EDGE_SAMPLES and edges.dtype == np.float32),
        "traced": int(index["traced"].sum()),
        "photos": int(len(index)),
    }
