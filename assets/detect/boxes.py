"""One fluke box per photo. The detector runs over every accepted photo, train and test, in batches.

Follow one photo: its content hash, the detector's version (a hash of its weights) and this stage's settings make
its cache key; a cached row is reused, otherwise `detect_fluke_boxes` predicts its most confident box. No box, or
one below `min_confidence`, means the whole photo with `fallback=True` and a reason, never a dropped photo.
"""

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core.artifacts import BOX_COLUMNS, FlukeDetector
from core.caches import RecordCache, cached_map
from core.digests import stable_digest
from models import detector as det

CODE_VERSION = "fluke_boxes-1"
# What the per-photo cache holds beside its `key` (the photo's name and split are not part of what it computed).
CACHED_COLUMNS = ["x0", "y0", "x1", "y1", "confidence", "fallback", "fallback_reason"]


@dataclass(frozen=True)
class BoxSettings:
    """Below `min_confidence` a detection is not trusted and the photo falls back to its whole frame."""

    # A from-scratch detector trained for minutes is under-confident: its boxes are good well below 0.25.
    min_confidence: float = 0.1
    batch: int = 16
    contact_sheet_photos: int = 12


def whole_image_boxes(manifest: pd.DataFrame, reason: str) -> pd.DataFrame:
    """Every photo's whole frame as its box, flagged as a fallback with `reason`."""
    return pd.DataFrame(
        {
            "image": manifest["image"].to_numpy(),
            "split": manifest["split"].to_numpy(),
            "x0": 0.0,
            "y0": 0.0,
            "x1": manifest["width"].astype(float).to_numpy(),
            "y1": manifest["height"].astype(float).to_numpy(),
            "confidence": 0.0,
            "fallback": True,
            "fallback_reason": reason,
        },
        columns=BOX_COLUMNS,
    )


def detections_to_rows(manifest: pd.DataFrame, detections: list, min_confidence: float) -> pd.DataFrame:
    """Detections (in manifest order) as box rows; missing or weak ones become flagged whole-photo boxes."""
    rows = []
    for photo, found in zip(manifest.itertuples(index=False), detections):
        whole = (0.0, 0.0, float(photo.width), float(photo.height))
        box = (found.x0, found.y0, found.x1, found.y1)
        reason = ""
        if not found.found:
            reason = "no_detection"
        elif found.confidence < min_confidence:
            reason = "low_confidence"
        elif not (found.x1 - found.x0 >= 1 and found.y1 - found.y0 >= 1):
            reason = "degenerate_box"
        rows.append(
            {
                "image": photo.image,
                "split": photo.split,
                **dict(zip(("x0", "y0", "x1", "y1"), whole if reason else box)),
                "confidence": float(found.confidence),
                "fallback": bool(reason),
                "fallback_reason": reason,
            }
        )
    return pd.DataFrame(rows, columns=BOX_COLUMNS)


def box_cache_key(content_hash: str, detector_version: str, config: dict) -> str:
    return stable_digest(content_hash, detector_version, config, CODE_VERSION)


def box_cache(folder: Path) -> RecordCache:
    """The per-photo box cache: `<folder>/boxes.parquet`, a `key` column and `CACHED_COLUMNS`."""
    return RecordCache(Path(folder) / "boxes.parquet", CACHED_COLUMNS)


def detect_fluke_boxes(
    manifest: pd.DataFrame,
    data_root: Path,
    detector: FlukeDetector,
    config_dir: Path,
    cache: RecordCache | None = None,
    settings: BoxSettings = BoxSettings(),
    device: object = "cpu",
) -> tuple[pd.DataFrame, dict]:
    """Boxes for every photo of `manifest` (raw_images["images"]) and run statistics (computed, cached, seconds,
    detector_version). Without weights in `detector` every photo is its whole frame (`no_detector`)."""
    started = time.perf_counter()
    weights = detector.get("weights")
    if not weights:
        boxes = whole_image_boxes(manifest, "no_detector")
        return boxes, _stats(0, 0, started, "none")
    version = det.weights_version(weights)
    imgsz = int(detector.get("info", {}).get("imgsz", 320))
    key_settings = {"min_confidence": settings.min_confidence, "imgsz": imgsz}
    keys = [box_cache_key(h, version, key_settings) for h in manifest["content_hash"]]

    def predict(positions: list[int]) -> list[dict]:
        todo = manifest.iloc[positions].reset_index(drop=True)
        model = det.load_detector(det.materialise_weights(weights, Path(config_dir) / "weights"), config_dir)
        paths = [Path(data_root) / p for p in todo["path"]]
        detections = det.predict_boxes(model, paths, imgsz, batch=settings.batch, device=device)
        rows = detections_to_rows(todo, detections, settings.min_confidence)
        return rows[CACHED_COLUMNS].to_dict(orient="records")

    found, computed = cached_map(keys, predict, cache)
    # One row per key, as the cache now holds it: identical photos get the same box on this run and the next.
    by_key = dict(zip(keys, found))
    rows = [
        {"image": photo.image, "split": photo.split, **by_key[key]}
        for photo, key in zip(manifest.itertuples(index=False), keys)
    ]
    boxes = pd.DataFrame(rows, columns=BOX_COLUMNS)
    boxes = boxes.astype(
        {"x0": float, "y0": float, "x1": float, "y1": float, "confidence": float, "fallback": bool}
    )
    boxes["fallback_reason"] = boxes["fallback_reason"].astype(str)
    return boxes, _stats(computed, len(keys) - computed, started, version)


def _stats(computed: int, cached: int, started: float, version: str) -> dict:
    seconds = time.perf_counter() - started
    return {"computed": computed, "cached": cached, "seconds": seconds, "detector_version": version}


def box_area_shares(boxes: pd.DataFrame, manifest: pd.DataFrame) -> np.ndarray:
    """Each box's area as a share of its photo's area, in `boxes` order."""
    sizes = boxes[["image", "split"]].merge(manifest[["image", "split", "width", "height"]], how="left")
    areas = ((boxes["x1"] - boxes["x0"]) * (boxes["y1"] - boxes["y0"])).to_numpy()
    return areas / (sizes["width"] * sizes["height"]).to_numpy(float).clip(min=1)


def invalid_boxes(boxes: pd.DataFrame, manifest: pd.DataFrame) -> pd.DataFrame:
    """Rows whose box leaves its photo or has no area, and accepted photos with no row (or several)."""
    merged = manifest[["image", "split", "width", "height"]].merge(boxes, on=["image", "split"], how="left")
    tolerance = 1e-3
    bad = (
        merged["x0"].isna()
        | (merged["x0"] < -tolerance)
        | (merged["y0"] < -tolerance)
        | (merged["x1"] > merged["width"] + tolerance)
        | (merged["y1"] > merged["height"] + tolerance)
        | (merged["x1"] <= merged["x0"])
        | (merged["y1"] <= merged["y0"])
    )
    repeated = merged.duplicated(["image", "split"], keep=False)
    return merged[bad | repeated]
