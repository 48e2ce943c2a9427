"""Stage: one fluke box per photo. The detector runs over every accepted photo, train and test, in batches.

Follow one photo: its content hash, the detector's version (a hash of its weights) and this stage's config make its
cache key; a cached row is reused, otherwise `detect_fluke_boxes` predicts its most confident box. No box, or one
below `min_confidence`, means the whole photo with `fallback=True` and a reason, never a dropped photo.
"""

import time
from pathlib import Path

import numpy as np
import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    AssetIn,
    Config,
    DataVersion,
    MetadataValue,
    Output,
    asset,
    asset_check,
)
from PIL import Image, ImageDraw, ImageFont

from core.caches import TableCache
from core.digests import content_version, stable_digest
from core.profiles import asset_version
from core.reporting import figure_metadata, image_metadata
from core.resources import ComputeDevice, FlukeData, FlukeStorage
from models import detector as det

CODE_VERSION = "fluke_boxes-1"
BOX_COLUMNS = ["image", "split", "x0", "y0", "x1", "y1", "confidence", "fallback", "fallback_reason"]
_CACHED = ["x0", "y0", "x1", "y1", "confidence", "fallback", "fallback_reason"]


class FlukeBoxesConfig(Config):
    """Below `min_confidence` a detection is not trusted and the photo falls back to its whole frame."""

    # A from-scratch detector trained for minutes is under-confident: its boxes are good well below 0.25.
    min_confidence: float = 0.1
    batch: int = 16
    contact_sheet_photos: int = 12


# ---------------------------------------------------------------------------------------------------------------
# plain functions


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


def detect_fluke_boxes(
    manifest: pd.DataFrame,
    data_root: Path,
    detector: dict,
    config_dir: Path,
    cache: TableCache | None = None,
    # A from-scratch detector trained for minutes is under-confident: its boxes are good well below 0.25.
    min_confidence: float = 0.1,
    batch: int = 16,
    device: object = "cpu",
) -> tuple[pd.DataFrame, dict]:
    """Boxes for every photo of `manifest` (raw_images["images"]) and run statistics (computed, cached, seconds).

    `detector` is the `fluke_detector` value: `info` plus `weights` bytes when a model exists.
    """
    started = time.perf_counter()
    weights = detector.get("weights")
    info = detector.get("info", {})
    if not weights:
        boxes = whole_image_boxes(manifest, "no_detector")
        stats = {
            "computed": 0,
            "cached": 0,
            "seconds": time.perf_counter() - started,
            "detector_version": "none",
        }
        return boxes, stats
    version = det.weights_version(weights)
    imgsz = int(info.get("imgsz", 320))
    settings = {"min_confidence": min_confidence, "imgsz": imgsz}
    keys = [box_cache_key(h, version, settings) for h in manifest["content_hash"]]
    cached = cache.lookup(keys).set_index("key") if cache is not None else pd.DataFrame()
    missing = [i for i, key in enumerate(keys) if key not in cached.index]
    new_rows = pd.DataFrame(columns=BOX_COLUMNS)
    if missing:
        todo = manifest.iloc[missing].reset_index(drop=True)
        model = det.load_detector(det.materialise_weights(weights, Path(config_dir) / "weights"), config_dir)
        detections = det.predict_boxes(
            model, [Path(data_root) / p for p in todo["path"]], imgsz, batch=batch, device=device
        )
        new_rows = detections_to_rows(todo, detections, min_confidence)
        if cache is not None:
            cache.store(new_rows[_CACHED].assign(key=[keys[i] for i in missing]))
    fresh = dict(zip([keys[i] for i in missing], new_rows[_CACHED].to_dict(orient="records")))
    rows = []
    for photo, key in zip(manifest.itertuples(index=False), keys):
        found = fresh.get(key)
        if found is None:
            found = {c: cached.at[key, c] for c in _CACHED}
        rows.append({"image": photo.image, "split": photo.split, **found})
    boxes = pd.DataFrame(rows, columns=BOX_COLUMNS)
    boxes = boxes.astype(
        {"x0": float, "y0": float, "x1": float, "y1": float, "confidence": float, "fallback": bool}
    )
    boxes["fallback_reason"] = boxes["fallback_reason"].astype(str)
    stats = {
        "computed": len(missing),
        "cached": len(keys) - len(missing),
        "seconds": time.perf_counter() - started,
        "detector_version": version,
    }
    return boxes, stats


def read_true_boxes(data_root: Path) -> pd.DataFrame | None:
    """The generator's true boxes (`boxes.csv`: Image,x0,y0,x1,y1), or None: real data sets have none."""
    path = Path(data_root) / "boxes.csv"
    if not path.exists():
        return None
    table = pd.read_csv(path).rename(columns={"Image": "image"})
    if not {"image", "x0", "y0", "x1", "y1"} <= set(table.columns):
        return None
    return table[["image", "x0", "y0", "x1", "y1"]].drop_duplicates("image")


def iou_against_truth(
    boxes: pd.DataFrame, truth: pd.DataFrame, split: str | None = "test"
) -> dict[str, float]:
    """Mean IoU of predicted boxes (fallbacks included, as whole photos) against true boxes, on one split."""
    chosen = boxes if split is None else boxes[boxes["split"] == split]
    merged = chosen.merge(truth, on="image", suffixes=("", "_true"))
    if merged.empty:
        return {}
    iou = det.box_iou(
        merged[["x0", "y0", "x1", "y1"]].to_numpy(),
        merged[["x0_true", "y0_true", "x1_true", "y1_true"]].to_numpy(),
    )
    detected = ~merged["fallback"].to_numpy(bool)
    return {
        "mean_iou": float(iou.mean()),
        "median_iou": float(np.median(iou)),
        "share_iou_over_0.5": float((iou > 0.5).mean()),
        "mean_iou_detected_only": float(iou[detected].mean()) if detected.any() else 0.0,
        "photos": int(len(merged)),
    }


def box_contact_sheet(
    manifest: pd.DataFrame,
    boxes: pd.DataFrame,
    data_root: Path,
    photos: int = 12,
    seed: int = 0,
    tile: int = 240,
) -> Image.Image:
    """Random photos with their boxes drawn (green: detected, with its confidence; orange: the whole-photo
    fallback), in a grid."""
    chosen = boxes.sample(n=min(photos, len(boxes)), random_state=seed) if len(boxes) else boxes
    paths = manifest.set_index("image")["path"]
    columns = 4
    rows = max(1, -(-len(chosen) // columns))
    sheet = Image.new("RGB", (columns * tile, rows * tile), (30, 30, 30))
    for i, row in enumerate(chosen.itertuples(index=False)):
        with Image.open(Path(data_root) / paths[row.image]) as image:
            width, height = image.size
            image.draft("RGB", (tile, tile))
            photo = image.convert("RGB")
        scale = min(tile / width, tile / height)
        photo = photo.resize((max(1, int(width * scale)), max(1, int(height * scale))))
        draw = ImageDraw.Draw(photo)
        color = (255, 150, 0) if row.fallback else (0, 230, 90)
        draw.rectangle(
            [row.x0 * scale, row.y0 * scale, row.x1 * scale - 1, row.y1 * scale - 1], outline=color, width=3
        )
        label = "whole photo" if row.fallback else f"{row.confidence:.2f}"
        # Pillow's built-in font, sized (no font file, nothing to download), on a dark plate to stay readable.
        font = ImageFont.load_default(size=max(12, tile // 14))
        left, top, right, bottom = draw.textbbox((6, 4), label, font=font)
        draw.rectangle([left - 3, top - 2, right + 3, bottom + 2], fill=(0, 0, 0))
        draw.text((6, 4), label, fill=color, font=font)
        sheet.paste(photo, ((i % columns) * tile, (i // columns) * tile))
    return sheet


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


# ---------------------------------------------------------------------------------------------------------------
# Dagster


@asset(
    code_version=asset_version("fluke_boxes", CODE_VERSION),
    group_name="detect",
    description="One fluke box and confidence per accepted photo; whole photo, flagged, where nothing is found.",
)
def fluke_boxes(
    context: AssetExecutionContext,
    config: FlukeBoxesConfig,
    data: FlukeData,
    storage: FlukeStorage,
    device: ComputeDevice,
    raw_images: dict,
    fluke_detector: dict,
) -> Output[pd.DataFrame]:
    manifest = raw_images["images"]
    boxes, stats = detect_fluke_boxes(
        manifest,
        data.root,
        fluke_detector,
        storage.work_dir("ultralytics"),
        cache=TableCache(storage.cache_dir("fluke_boxes") / "boxes.parquet"),
        min_confidence=config.min_confidence,
        batch=config.batch,
        device=device.torch_device(),
    )
    detected = boxes[~boxes["fallback"]]
    sizes = boxes[["image", "split"]].merge(manifest[["image", "split", "width", "height"]], how="left")
    area_share = ((boxes["x1"] - boxes["x0"]) * (boxes["y1"] - boxes["y0"])).to_numpy() / (
        (sizes["width"] * sizes["height"]).to_numpy(float).clip(min=1)
    )
    reasons = boxes.loc[boxes["fallback"], "fallback_reason"].value_counts()

    def confidences(ax):
        ax.hist(boxes["confidence"], bins=20, range=(0, 1), color="#33658a")
        ax.axvline(
            config.min_confidence,
            color="#f26419",
            linestyle="--",
            label="min_confidence (below: whole photo)",
        )
        ax.set_xlabel("confidence of the photo's best box")
        ax.set_ylabel("photos")
        ax.legend(fontsize=8)

    def areas(ax):
        ax.hist(area_share[~boxes["fallback"].to_numpy()], bins=20, range=(0, 1), color="#86bbd8")
        ax.set_xlabel("box area / photo area")
        ax.set_ylabel("photos")

    metadata = {
        "photos": int(len(boxes)),
        "coverage": round(float(len(detected) / max(len(boxes), 1)), 4),
        "fallbacks": int(boxes["fallback"].sum()),
        "fallbacks_by_reason": MetadataValue.json({str(k): int(v) for k, v in reasons.items()}),
        "mean_confidence": round(float(detected["confidence"].mean()) if len(detected) else 0.0, 4),
        "computed": int(stats["computed"]),
        "cached": int(stats["cached"]),
        "seconds": round(stats["seconds"], 2),
        "images_per_second": round(stats["computed"] / max(stats["seconds"], 1e-9), 1),
        "detector_version": stats["detector_version"],
        "confidence_histogram": figure_metadata(
            confidences,
            f"How sure is the detector? {len(detected)} of {len(boxes)} photos boxed, "
            f"{int(boxes['fallback'].sum())} fall back to the whole photo",
        ),
        "box_area_histogram": figure_metadata(areas, "How much of each photo is fluke? Detected boxes only"),
    }
    if len(boxes):
        sheet = box_contact_sheet(manifest, boxes, data.root, photos=config.contact_sheet_photos)
        metadata["contact_sheet"] = image_metadata(
            sheet,
            "Do the boxes hold the flukes? Green: the detected box and its confidence; "
            "orange: no confident box, the whole photo is used",
        )
    truth = read_true_boxes(data.root)
    if truth is not None:
        for key, number in iou_against_truth(boxes, truth, "test").items():
            metadata[f"test_{key}"] = round(number, 4) if isinstance(number, float) else number
    if stats["detector_version"] == "none":
        context.log.warning("no fluke detector: every photo falls back to its whole frame (flagged)")
    return Output(boxes, metadata=metadata, data_version=DataVersion(content_version(boxes)))


@asset_check(
    asset=fluke_boxes,
    additional_ins={"raw_images": AssetIn("raw_images")},
    description="Every accepted photo has exactly one box, inside the photo and with positive area.",
)
def fluke_boxes_inside_images(fluke_boxes: pd.DataFrame, raw_images: dict) -> AssetCheckResult:
    bad = invalid_boxes(fluke_boxes, raw_images["images"])
    return AssetCheckResult(
        passed=bad.empty,
        metadata={
            "invalid": int(len(bad)),
            "examples": MetadataValue.json(bad.head(5).astype(str).to_dict("records")),
        },
    )
