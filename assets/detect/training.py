"""The fluke detector: a YOLO model trained on the hand-annotated subset (or weights the user gives).

Follow one annotated photo: `prepare_annotations` (annotations.py) files it under the training or the held-out
part; `train_fluke_detector` trains a small YOLO from its architecture YAML (nothing downloaded) and measures mAP on
the held-out part. With no annotations there are no weights, and `info` says why: `fluke_boxes` then uses whole
photos, flagged. `fit_fluke_detector` reuses a previous training made from exactly the same annotated photos,
boxes and settings (one process at a time: a second run wanting the same training waits for the first, then
reuses it), and each training runs in a folder of its own (`<work_dir>/runs/<key>.<pid>.<random>`, removed after).

Weights given by `weights_path` are unpickled by ultralytics, which can run code: they load only when their
sha256 is the `weights_sha256` given with them, or the digest of weights this project trained and memoized.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from assets.detect.annotations import annotated_content, prepare_annotations, read_annotations
from core.artifacts import FlukeDetector
from core.caches import memoized_artifact, memoized_digests
from core.digests import stable_digest
from core.files import pid_alive
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
    # The sha256 of `weights_path` (`sha256sum FILE`): without it only weights this project trained load.
    weights_sha256: str | None = None
    # A time budget in minutes (0: none): at most `epochs`, fewer when it runs out (models.detector_budget).
    # Keyed when set: a cut training is reused by the same budget, never by another setting.
    max_minutes: float = 0.0


# Settings added after trainings were first keyed: left out of the key while unset, so earlier keys stand.
KEYED_WHEN_SET = ("weights_sha256", "max_minutes")


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


def training_key(
    settings: DetectorSettings, boxes: pd.DataFrame, manifest: pd.DataFrame, given_sha256: str | None = None
) -> str:
    """What the detector learns from: the annotated photos' content, their boxes and folds, the settings (and the
    given weights' digest, when weights are given). Settings added later are left out while unset
    (`KEYED_WHEN_SET`), so they leave the keys of earlier trainings alone."""
    parts = [
        CODE_VERSION,
        {name: value for name, value in asdict(settings).items() if name not in KEYED_WHEN_SET or value},
        boxes.drop(columns=["path"], errors="ignore").astype(str).values.tolist(),
        annotated_content(boxes, manifest),
    ]
    return stable_digest(*parts, *([given_sha256] if given_sha256 else []))


def given_weights(settings: DetectorSettings, trained_dir: Path | None) -> bytes | None:
    """The bytes of `settings.weights_path`, checked (see `models.detector.read_trusted_weights`) before anything
    loads them; None when no weights are given."""
    if settings.weights_path is None:
        return None
    path = Path(settings.weights_path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"weights_path={path} does not exist")
    trusted = memoized_digests(trained_dir, keep=lambda info: info.get("source") == "trained")
    return det.read_trusted_weights(path, settings.weights_sha256, trusted)


def fit_fluke_detector(
    annotations_csv: Path,
    manifest: pd.DataFrame,
    data_root: Path,
    work_dir: Path,
    config_dir: Path,
    settings: DetectorSettings,
    device: object = "cpu",
    log=None,
) -> DetectorRun:
    """The whole stage: read and prepare the annotations, then train (or load) and evaluate, reusing the
    artifact of an identical earlier training kept under `work_dir/trained`."""
    annotations = read_annotations(annotations_csv)
    boxes = prepare_annotations(annotations, manifest, settings.val_share, settings.seed)
    trained_dir = Path(work_dir) / "trained"
    # Checked before the memo, so a refused file is refused every time, memoized or not.
    given = given_weights(settings, trained_dir)
    key = training_key(settings, boxes, manifest, hashlib.sha256(given).hexdigest() if given else None)
    started = time.perf_counter()
    weights, info, reused = memoized_artifact(
        trained_dir,
        key,
        lambda: train_in_own_folder(key, boxes, data_root, work_dir, config_dir, settings, device, given),
        log=log,
    )
    return DetectorRun(
        weights=weights,
        info=info,
        reused=reused,
        seconds=time.perf_counter() - started,
        annotations_in_file=0 if annotations is None else int(len(annotations)),
        annotations_used=int(len(boxes)),
    )


def train_in_own_folder(
    key: str,
    boxes: pd.DataFrame,
    data_root: Path,
    work_dir: Path,
    config_dir: Path,
    settings: DetectorSettings,
    device: object,
    given: bytes | None,
) -> tuple[bytes | None, dict]:
    """`train_fluke_detector` in `<work_dir>/runs/<key>.<pid>.<random>`: two trainings never share a dataset or
    an ultralytics run folder. The folder goes when the training ends; those of killed runs at the next one."""
    runs = Path(work_dir) / "runs"
    remove_dead_run_folders(runs)
    runs.mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix=f"{key}.{os.getpid()}.", dir=runs))
    try:
        return train_fluke_detector(
            boxes, data_root, run_dir, config_dir, settings, device=device, given=given
        )
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def remove_dead_run_folders(runs: Path) -> list[Path]:
    """Remove the run folders (`<key>.<pid>.<random>`) of trainings whose process is gone."""
    removed = []
    for folder in sorted(Path(runs).iterdir()) if Path(runs).is_dir() else []:
        match = re.fullmatch(r"[0-9a-f]+\.(\d+)\.\w+", folder.name)
        if match and folder.is_dir() and not pid_alive(int(match.group(1))):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def train_fluke_detector(
    boxes: pd.DataFrame,
    data_root: Path,
    work_dir: Path,
    config_dir: Path,
    settings: DetectorSettings,
    device: object = "cpu",
    given: bytes | None = None,
) -> tuple[bytes | None, dict]:
    """Trains (or loads `settings.weights_path`, checked: `given` when the caller checked it already) and
    evaluates in `work_dir`; returns (weights bytes or None, info)."""
    if settings.weights_path is not None and given is None:
        given = given_weights(
            settings, Path(work_dir) / "trained"
        )  # before anything else: refused, nothing ran
    det.check_architecture(settings.model_yaml)
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
        # What loads is a private copy of the bytes that were checked, not the file, which may change meanwhile.
        weights_path = det.materialise_weights(given, Path(work_dir) / "given")
        given_path = Path(settings.weights_path).expanduser()
        info.update(trained=False, source="weights_path", reason=f"weights given: {given_path}")
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
            max_minutes=settings.max_minutes,
        )
        weights_path = result.weights_path
        info.update(
            trained=True, source="trained", training_seconds=round(result.seconds, 1), budget=result.budget
        )
        if result.cuda_max_memory_mb is not None:
            info["cuda_max_memory_mb"] = round(result.cuda_max_memory_mb, 1)
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
