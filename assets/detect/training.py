"""The fluke detector: a YOLO model trained on the hand-annotated subset (or weights the user gives).

Follow one annotated photo: `prepare_annotations` (annotations.py) files it under the training or the held-out
part; `train_fluke_detector` trains a small YOLO from its architecture YAML (nothing downloaded) and measures mAP on
the held-out part. With no annotations there are no weights, and `info` says why: `fluke_boxes` then uses whole
photos, flagged. `fit_fluke_detector` reuses a previous training made from exactly the same annotated photos,
boxes and settings.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from assets.detect.annotations import annotated_content, prepare_annotations, read_annotations
from core.artifacts import FlukeDetector
from core.caches import memoized_artifact
from core.digests import stable_digest
from models import detector as det

CODE_VERSION = "fluke_detector-1"


@dataclass(frozen=True)
class DetectorSettings:
    """Hyperparameters of the detector. Defaults are the CPU `demo` profile (see docs/detection.md);
    `tiny` (tests, CI): epochs=3, imgsz=160, batch=8."""

    epochs: int = 50
    imgsz: int = 224
    model_yaml: str = "yolov8n.yaml"
    val_share: float = 0.2
    seed: int = 0
    # Small batches: more optimizer steps from ~200 photos (each batch steps; see models.detector.train_detector).
    batch: int = 8
    mosaic: float = 1.0
    # Fewer annotated photos than this: no training, whole photos downstream.
    min_annotations: int = 4
    # A trained ultralytics .pt to use instead of training (its mAP is still measured when annotations exist).
    weights_path: str | None = None


@dataclass(frozen=True)
class DetectorRun:
    """What `fit_fluke_detector` made: the weights (None: no model), `info`, and how it went."""

    weights: bytes | None
    info: dict
    reused: bool
    seconds: float
    annotations_in_file: int
    annotations_used: int

    def value(self) -> FlukeDetector:
        value: FlukeDetector = {"info": self.info}
        if self.weights is not None:
            value["weights"] = self.weights
        return value


def untrained_info(reason: str, settings: DetectorSettings, annotations: int = 0) -> dict:
    return {
        "trained": False,
        "source": "none",
        "reason": reason,
        "annotations": annotations,
        "epochs": settings.epochs,
        "imgsz": settings.imgsz,
        "model_yaml": settings.model_yaml,
    }


def training_key(settings: DetectorSettings, boxes: pd.DataFrame, manifest: pd.DataFrame) -> str:
    """What the detector learns from: the annotated photos' content, their boxes and folds, the settings."""
    return stable_digest(
        CODE_VERSION,
        asdict(settings),
        boxes.drop(columns=["path"], errors="ignore").astype(str).values.tolist(),
        annotated_content(boxes, manifest),
    )


def fit_fluke_detector(
    annotations_csv: Path,
    manifest: pd.DataFrame,
    data_root: Path,
    work_dir: Path,
    config_dir: Path,
    settings: DetectorSettings,
    device: object = "cpu",
) -> DetectorRun:
    """The whole stage: read and prepare the annotations, then train (or load) and evaluate, reusing the
    artifact of an identical earlier training kept under `work_dir/trained`."""
    annotations = read_annotations(annotations_csv)
    boxes = prepare_annotations(annotations, manifest, settings.val_share, settings.seed)
    started = time.perf_counter()
    weights, info, reused = memoized_artifact(
        Path(work_dir) / "trained",
        training_key(settings, boxes, manifest),
        lambda: train_fluke_detector(boxes, data_root, work_dir, config_dir, settings, device=device),
    )
    return DetectorRun(
        weights=weights,
        info=info,
        reused=reused,
        seconds=time.perf_counter() - started,
        annotations_in_file=0 if annotations is None else int(len(annotations)),
        annotations_used=int(len(boxes)),
    )


def train_fluke_detector(
    boxes: pd.DataFrame,
    data_root: Path,
    work_dir: Path,
    config_dir: Path,
    settings: DetectorSettings,
    device: object = "cpu",
) -> tuple[bytes | None, dict]:
    """Trains (or loads `settings.weights_path`) and evaluates; returns (weights bytes or None, info)."""
    n_annotations = int(len(boxes))
    if settings.weights_path is None and n_annotations < settings.min_annotations:
        reason = (
            "no annotations (annotations/boxes.csv missing or empty)"
            if n_annotations == 0
            else f"only {n_annotations} usable annotated photos; training needs at least {settings.min_annotations}"
        )
        return None, untrained_info(reason, settings, n_annotations)
    data_yaml = det.build_yolo_dataset(boxes, data_root, work_dir) if n_annotations >= 2 else None
    info = untrained_info("", settings, n_annotations)
    info.update(
        train_photos=int((boxes["part"] == "train").sum()) if n_annotations else 0,
        val_photos=int((boxes["part"] == "val").sum()) if n_annotations else 0,
    )
    if settings.weights_path is not None:
        weights_path = Path(settings.weights_path).expanduser()
        if not weights_path.exists():
            raise FileNotFoundError(f"weights_path={weights_path} does not exist")
        info.update(trained=False, source="weights_path", reason=f"weights given: {weights_path}")
    else:
        result = det.train_detector(
            data_yaml,
            work_dir,
            model_yaml=settings.model_yaml,
            epochs=settings.epochs,
            imgsz=settings.imgsz,
            batch=settings.batch,
            seed=settings.seed,
            device=device,
            mosaic=settings.mosaic,
            config_dir=config_dir,
        )
        weights_path = result.weights_path
        info.update(trained=True, source="trained", training_seconds=round(result.seconds, 1))
        history = Path(work_dir) / "runs" / "train" / "results.csv"
        if history.exists():
            info["history"] = read_history(history)
    if data_yaml is not None:
        info.update(
            det.evaluate_detector(
                weights_path, data_yaml, settings.imgsz, device=device, config_dir=config_dir
            )
        )
    weights = Path(weights_path).read_bytes()
    info["version"] = det.weights_version(weights)
    return weights, info


def read_history(results_csv: Path) -> list[dict]:
    """Per-epoch box loss and held-out mAP from ultralytics' `results.csv`, as JSON records."""
    table = pd.read_csv(results_csv)
    table.columns = [c.strip() for c in table.columns]
    keep = {
        "epoch": "epoch",
        "train/box_loss": "box_loss",
        "metrics/mAP50(B)": "mAP50",
        "metrics/mAP50-95(B)": "mAP50-95",
    }
    table = table[[c for c in keep if c in table.columns]].rename(columns=keep)
    return json.loads(table.round(4).to_json(orient="records"))
