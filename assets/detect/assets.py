"""Dagster side of the detect stage: `fluke_detector`, `fluke_boxes`, their checks, configs and metadata."""

from dataclasses import fields
from functools import partial

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
from pydantic import Field

from assets.detect import boxes as bx
from assets.detect import training as tr
from assets.detect.boxes import BoxSettings
from assets.detect.sheets import box_contact_sheet
from assets.detect.training import DetectorRun, DetectorSettings
from assets.detect.truth import TRUTH_FILE, compare_with_truth
from core.dagster_types import FlukeDetector, RawImages
from core.digests import content_version
from core.profiles import asset_version
from core.reporting import figure_metadata, image_metadata, process_peak_rss_mb
from core.resources import ComputeDevice, FlukeData, FlukeStorage


def _settings(config: Config, kind: type):
    return kind(**{field.name: getattr(config, field.name) for field in fields(kind)})


class FlukeDetectorConfig(Config):
    """Hyperparameters of the detector (`assets.detect.training.DetectorSettings`). Defaults are the CPU `demo`
    profile (see docs/detection.md); `tiny` (tests, CI): epochs=3, imgsz=160, batch=8."""

    epochs: int = Field(default=DetectorSettings.epochs, ge=1, description="training epochs")
    imgsz: int = Field(default=DetectorSettings.imgsz, ge=32, description="YOLO input size (pixels)")
    model_yaml: str = Field(
        default=DetectorSettings.model_yaml,
        pattern=r"^.+\.ya?ml$",
        description="ultralytics architecture YAML (built from scratch: a .pt here would be unpickled)",
    )
    val_share: float = Field(
        default=DetectorSettings.val_share, ge=0.0, le=1.0, description="share of annotations held out"
    )
    seed: int = Field(default=DetectorSettings.seed, ge=0, description="seed of the split and the training")
    batch: int = Field(
        default=DetectorSettings.batch, ge=1, description="photos per optimizer step (small: more steps)"
    )
    mosaic: float = Field(
        default=DetectorSettings.mosaic, ge=0.0, le=1.0, description="probability of mosaic augmentation"
    )
    min_annotations: int = Field(
        default=DetectorSettings.min_annotations,
        ge=2,
        description="fewer usable annotated photos than this: no training, whole photos downstream",
    )
    weights_path: str | None = Field(
        default=DetectorSettings.weights_path,
        description="a trained ultralytics .pt to use instead of training (its mAP is still measured); it loads "
        "only with its weights_sha256, or when this project trained it",
    )
    weights_sha256: str | None = Field(
        default=DetectorSettings.weights_sha256,
        pattern=r"^[0-9a-fA-F]{64}$",
        description="sha256 of weights_path (`sha256sum FILE`): ultralytics unpickles weights, which can run code, "
        "so a given file loads only when its bytes match",
    )
    max_minutes: float = Field(
        default=DetectorSettings.max_minutes,
        ge=0.0,
        description="time budget in minutes (0: none): at most `epochs`, fewer when it runs out, the learning "
        "rate schedule fitted to it (ultralytics' `time`); a cut training is reused by reruns with this budget",
    )

    def settings(self) -> DetectorSettings:
        return _settings(self, DetectorSettings)


class FlukeBoxesConfig(Config):
    """Below `min_confidence` a detection is not trusted and the photo falls back to its whole frame."""

    min_confidence: float = Field(
        default=BoxSettings.min_confidence,
        ge=0.0,
        le=1.0,
        description="below this confidence the whole photo is used (a short training is under-confident)",
    )
    batch: int = Field(default=BoxSettings.batch, ge=1, description="photos per prediction batch")
    contact_sheet_photos: int = Field(
        default=BoxSettings.contact_sheet_photos, ge=0, description="photos on the contact sheet"
    )

    def settings(self) -> BoxSettings:
        return _settings(self, BoxSettings)


# ---------------------------------------------------------------------------------------------------------------
# fluke_detector


@asset(
    code_version=asset_version("fluke_detector", tr.CODE_VERSION),
    group_name="detect",
    description="YOLO fluke detector trained offline on the annotated subset (or given weights); mAP on held-out boxes.",
)
def fluke_detector(
    context: AssetExecutionContext,
    config: FlukeDetectorConfig,
    data: FlukeData,
    storage: FlukeStorage,
    device: ComputeDevice,
    raw_images: RawImages,
) -> Output[FlukeDetector]:
    settings = config.settings()
    run = tr.fit_fluke_detector(
        data.annotations_csv,
        raw_images["images"],
        data.root,
        storage.work_dir("fluke_detector"),
        storage.work_dir("ultralytics"),
        settings,
        device=device.torch_device(),
        log=context.log.info,
    )
    if run.reused:
        context.log.info(
            "same annotated photos, boxes and config as a previous training: its weights are reused"
        )
    if run.weights is None:
        context.log.warning(
            f"fluke_detector not trained: {run.info['reason']}; fluke_boxes will use whole photos"
        )
    value = run.value()
    return Output(
        value, metadata=detector_metadata(run, settings), data_version=DataVersion(content_version(value))
    )


def detector_metadata(run: DetectorRun, settings: DetectorSettings) -> dict:
    info = run.info
    metadata = {
        "trained": bool(info["trained"]),
        "source": info["source"],
        "reason": info.get("reason", ""),
        "annotations_in_file": run.annotations_in_file,
        "annotations_used": run.annotations_used,
        "train_photos": int(info.get("train_photos", 0)),
        "val_photos": int(info.get("val_photos", 0)),
        "epochs": settings.epochs,
        "imgsz": settings.imgsz,
        "batch": settings.batch,
        "model_yaml": settings.model_yaml,
        "seconds": round(run.seconds, 1),
        "reused_previous_training": run.reused,
    }
    for key in ("mAP50", "mAP50-95", "training_seconds", "version", "cuda_max_memory_mb"):
        if key in info:
            metadata[key] = round(info[key], 4) if isinstance(info[key], float) else info[key]
    metadata.update(info.get("budget", {}))  # max_minutes, stopped_by_budget, epochs and steps completed
    if "training_seconds" in info:
        metadata["training_minutes"] = round(info["training_seconds"] / 60.0, 3)
    metadata["process_peak_rss_mb"] = process_peak_rss_mb()
    if info.get("history"):
        frame = pd.DataFrame(info["history"])
        last = frame["mAP50"].dropna()
        metadata["training_curves"] = figure_metadata(
            partial(draw_training_curves, frame=frame),
            "Has the detector learned to find flukes? "
            + (f"mAP50 {last.iloc[-1]:.3f} after {int(frame['epoch'].max())} epochs" if len(last) else ""),
        )
    metadata["info"] = MetadataValue.json({k: v for k, v in info.items() if k != "history"})
    return metadata


def draw_training_curves(ax, frame: pd.DataFrame) -> None:
    """Train box loss (left axis) and held-out mAP50 (right axis) per epoch."""
    loss = ax.plot(frame["epoch"], frame["box_loss"], color="#33658a", label="box loss (train)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("box loss (train)", color="#33658a")
    twin = ax.twinx()
    score = twin.plot(frame["epoch"], frame["mAP50"], color="#f6ae2d", label="mAP50 (held-out boxes)")
    twin.set_ylabel("mAP50 (held-out boxes)", color="#f6ae2d")
    twin.set_ylim(0, 1)
    lines = loss + score
    ax.legend(
        lines,
        [line.get_label() for line in lines],
        loc="upper center",
        bbox_to_anchor=(0.5, -0.18),
        ncol=2,
        fontsize=8,
        frameon=False,
    )


# ---------------------------------------------------------------------------------------------------------------
# fluke_boxes


@asset(
    code_version=asset_version("fluke_boxes", bx.CODE_VERSION),
    group_name="detect",
    description="One fluke box and confidence per accepted photo; whole photo, flagged, where nothing is found.",
)
def fluke_boxes(
    context: AssetExecutionContext,
    config: FlukeBoxesConfig,
    data: FlukeData,
    storage: FlukeStorage,
    device: ComputeDevice,
    raw_images: RawImages,
    fluke_detector: FlukeDetector,
) -> Output[pd.DataFrame]:
    # The value: `core.artifacts.BOX_COLUMNS`, one row per accepted photo.
    manifest = raw_images["images"]
    settings = config.settings()
    boxes, stats = bx.detect_fluke_boxes(
        manifest,
        data.root,
        fluke_detector,
        storage.work_dir("ultralytics"),
        cache=bx.box_cache(storage.cache_dir("fluke_boxes")),
        settings=settings,
        device=device.torch_device(),
    )
    metadata = boxes_metadata(boxes, manifest, stats, settings)
    if len(boxes):
        sheet = box_contact_sheet(manifest, boxes, data.root, photos=settings.contact_sheet_photos)
        metadata["contact_sheet"] = image_metadata(
            sheet,
            "Do the boxes hold the flukes? Green: the detected box and its confidence; "
            "orange: no confident box, the whole photo is used",
        )
    if stats["detector_version"] == "none":
        context.log.warning("no fluke detector: every photo falls back to its whole frame (flagged)")
    return Output(boxes, metadata=metadata, data_version=DataVersion(content_version(boxes)))


def boxes_metadata(boxes: pd.DataFrame, manifest: pd.DataFrame, stats: dict, settings: BoxSettings) -> dict:
    detected = boxes[~boxes["fallback"]]
    shares = bx.box_area_shares(boxes, manifest)[~boxes["fallback"].to_numpy()]
    reasons = boxes.loc[boxes["fallback"], "fallback_reason"].value_counts()
    return {
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
            partial(draw_confidences, confidence=boxes["confidence"], min_confidence=settings.min_confidence),
            f"How sure is the detector? {len(detected)} of {len(boxes)} photos boxed, "
            f"{int(boxes['fallback'].sum())} fall back to the whole photo",
        ),
        "box_area_histogram": figure_metadata(
            partial(draw_area_shares, shares=shares), "How much of each photo is fluke? Detected boxes only"
        ),
    }


def draw_confidences(ax, confidence: pd.Series, min_confidence: float) -> None:
    ax.hist(confidence, bins=20, range=(0, 1), color="#33658a")
    ax.axvline(min_confidence, color="#f26419", linestyle="--", label="min_confidence (below: whole photo)")
    ax.set_xlabel("confidence of the photo's best box")
    ax.set_ylabel("photos")
    ax.legend(fontsize=8)


def draw_area_shares(ax, shares: np.ndarray) -> None:
    ax.hist(shares, bins=20, range=(0, 1), color="#86bbd8")
    ax.set_xlabel("box area / photo area")
    ax.set_ylabel("photos")


@asset_check(
    asset=fluke_boxes,
    additional_ins={"raw_images": AssetIn("raw_images")},
    description="Every accepted photo has exactly one box, inside the photo and with positive area.",
)
def fluke_boxes_inside_images(fluke_boxes: pd.DataFrame, raw_images: RawImages) -> AssetCheckResult:
    bad = bx.invalid_boxes(fluke_boxes, raw_images["images"])
    return AssetCheckResult(
        passed=bad.empty,
        metadata={
            "invalid": int(len(bad)),
            "examples": MetadataValue.json(bad.head(5).astype(str).to_dict("records")),
        },
    )


@asset_check(
    asset=fluke_boxes,
    additional_ins={"raw_images": AssetIn("raw_images")},
    description=f"Synthetic data only: IoU of the test photos' boxes against the generator's {TRUTH_FILE}, "
    "no worse than whole photos. Passes with 'no truth file' on real data.",
)
def fluke_boxes_match_generator_truth(
    data: FlukeData, fluke_boxes: pd.DataFrame, raw_images: RawImages
) -> AssetCheckResult:
    comparison = compare_with_truth(fluke_boxes, raw_images["images"], data.root, split="test")
    if comparison is None:
        return AssetCheckResult(passed=True, metadata={"truth": f"no truth file ({TRUTH_FILE})"})
    return AssetCheckResult(passed=comparison["passed"], metadata=truth_metadata(comparison))


def truth_metadata(comparison: dict) -> dict:
    """`test_mean_iou` and friends (the keys `fluke_boxes` carried before), and the whole-photo baseline."""
    metadata = {
        f"test_{key}": round(number, 4) if isinstance(number, float) else number
        for key, number in comparison["scores"].items()
    }
    if "mean_iou" in comparison["whole_photo"]:
        metadata["test_whole_photo_mean_iou"] = round(comparison["whole_photo"]["mean_iou"], 4)
    return metadata
