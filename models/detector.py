"""The fluke detector: a thin, offline and quiet wrapper around an ultralytics YOLO model.

Follow one annotated photo: `build_yolo_dataset` links it into a YOLO folder (`images/<part>/`, `labels/<part>/`)
with its box as a normalised label line; `train_detector` trains a model from an architecture YAML (no weights
downloaded) on the `train` part; `evaluate_detector` reports mAP on the held-out `val` part; `predict_boxes` then
finds one best box per photo for every photo, in batches.

ultralytics loads `.pt` files with a full unpickling, which can run code: a weights file reaches it only after its
sha256 was checked (`read_trusted_weights`, `materialise_weights`), and models are built from architecture YAMLs.

ultralytics reads its settings folder when it is first imported and, unless told otherwise, probes the network, looks
for a font online and syncs events. `configure_offline` must therefore run before the first import; every function
here calls it, and imports ultralytics lazily.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from core.files import write_bytes
from core.images import decode_photo
from models.detector_budget import DetectorProgress

CLASS_NAME = "fluke"
BOX_COLUMNS = ["x0", "y0", "x1", "y1"]
# ultralytics integrations that would log to outside services; all off (sync is its telemetry).
_SETTINGS_OFF = {
    "sync": False,
    "clearml": False,
    "comet": False,
    "dvc": False,
    "mlflow": False,
    "raytune": False,
    "tensorboard": False,
    "wandb": False,
    "vscode_msg": False,
    "openvino_msg": False,
}


@dataclass(frozen=True)
class Detection:
    """One photo's best box in original pixels, or `found=False` when the model saw nothing."""

    x0: float = 0.0
    y0: float = 0.0
    x1: float = 0.0
    y1: float = 0.0
    confidence: float = 0.0
    found: bool = False


def configure_offline(config_dir: Path) -> Path:
    """Point ultralytics at `config_dir` and keep it off the network; returns its settings folder.

    Sets `YOLO_OFFLINE=1` (no connectivity probes), `YOLO_CONFIG_DIR` (settings and the font live in the project's
    storage, not the home folder), `YOLO_VERBOSE=False`; copies matplotlib's DejaVuSans.ttf in as `Arial.ttf` (every
    training run looks for it and would download it); and turns sync and logger integrations off. When ultralytics is
    already imported its settings folder is fixed, so the font is copied there too.
    """
    config_dir = Path(config_dir)
    import sys

    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_VERBOSE"] = "False"
    already_imported = "ultralytics" in sys.modules
    if not already_imported:
        os.environ["YOLO_CONFIG_DIR"] = str(config_dir)
    folders = {config_dir / "Ultralytics"}
    if already_imported:
        from ultralytics.utils import USER_CONFIG_DIR

        folders.add(Path(USER_CONFIG_DIR))
    for folder in folders:
        _install_font(folder)
    from ultralytics.utils import LOGGER, SETTINGS, USER_CONFIG_DIR

    if any(SETTINGS.get(key) != value for key, value in _SETTINGS_OFF.items()):
        SETTINGS.update(_SETTINGS_OFF)
    LOGGER.setLevel(logging.WARNING)
    return Path(USER_CONFIG_DIR)


def _install_font(folder: Path) -> None:
    import matplotlib

    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "Arial.ttf"
    if not target.exists():
        source = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)


def clean_annotations(annotations: pd.DataFrame, manifest: pd.DataFrame) -> pd.DataFrame:
    """Annotated boxes of accepted photos, clipped to the image, with positive area.

    `annotations` has Image (or image), x0, y0, x1, y1; `manifest` is `raw_images["images"]`. Returns image, split,
    path, width, height, x0, y0, x1, y1, one row per photo (the first box when a photo has several).
    """
    table = annotations.rename(columns={"Image": "image"})
    missing = {"image", *BOX_COLUMNS} - set(table.columns)
    if missing:
        raise ValueError(f"annotations need columns Image,x0,y0,x1,y1; missing {sorted(missing)}")
    table = table[["image", *BOX_COLUMNS]].dropna().drop_duplicates("image")
    merged = table.merge(manifest[["image", "split", "path", "width", "height"]], on="image", how="inner")
    merged = merged.drop_duplicates("image")
    for column, limit in (("x0", "width"), ("x1", "width"), ("y0", "height"), ("y1", "height")):
        merged[column] = merged[column].astype(float).clip(lower=0.0, upper=merged[limit].astype(float))
    keep = (merged["x1"] > merged["x0"] + 1) & (merged["y1"] > merged["y0"] + 1)
    columns = ["image", "split", "path", "width", "height", *BOX_COLUMNS]
    return merged.loc[keep, columns].sort_values("image").reset_index(drop=True)


def split_annotations(boxes: pd.DataFrame, val_share: float, seed: int) -> pd.DataFrame:
    """Adds a `part` column (`train`/`val`): a seeded random held-out share, at least one photo in each part."""
    boxes = boxes.copy()
    order = np.random.default_rng(seed).permutation(len(boxes))
    n_val = int(round(len(boxes) * val_share))
    n_val = min(max(n_val, 1), len(boxes) - 1) if len(boxes) >= 2 else 0
    part = np.array(["train"] * len(boxes), dtype=object)
    part[order[:n_val]] = "val"
    boxes["part"] = part
    return boxes


def build_yolo_dataset(boxes: pd.DataFrame, data_root: Path, work_dir: Path) -> Path:
    """Writes a YOLO dataset folder under `work_dir` and returns its `data.yaml`.

    `boxes` comes from `split_annotations`. Photos are symlinked (copied where links fail): the data folder stays
    read-only and untouched. The folder is rebuilt from scratch each time, so stale labels never linger.
    """
    import yaml

    root = Path(work_dir) / "dataset"
    if root.exists():
        shutil.rmtree(root)
    for row in boxes.itertuples(index=False):
        image_dir, label_dir = root / "images" / row.part, root / "labels" / row.part
        image_dir.mkdir(parents=True, exist_ok=True)
        label_dir.mkdir(parents=True, exist_ok=True)
        source = (Path(data_root) / row.path).resolve()
        link = image_dir / Path(row.path).name
        try:
            link.symlink_to(source)
        except OSError:
            shutil.copyfile(source, link)
        cx = (row.x0 + row.x1) / 2 / row.width
        cy = (row.y0 + row.y1) / 2 / row.height
        w = (row.x1 - row.x0) / row.width
        h = (row.y1 - row.y0) / row.height
        (label_dir / f"{link.stem}.txt").write_text(f"0 {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n")
    data_yaml = root / "data.yaml"
    spec = {
        "path": str(root.resolve()),
        "train": "images/train",
        "val": "images/val",
        "names": {0: CLASS_NAME},
    }
    data_yaml.write_text(yaml.safe_dump(spec, sort_keys=False))
    return data_yaml


def ultralytics_device(device: object) -> str:
    """A torch device (or string) in the form ultralytics accepts: `cpu` or a CUDA index."""
    text = str(device).lower()
    if text.startswith("cuda"):
        return text.split(":", 1)[1] if ":" in text else "0"
    return "cpu"


@dataclass(frozen=True)
class TrainingResult:
    weights_path: Path
    seconds: float
    epochs_run: int
    budget: dict = field(default_factory=dict)  # `DetectorProgress.summary()`: what ran against the budget
    cuda_max_memory_mb: float | None = None  # the peak torch allocated while training, on CUDA


def train_detector(
    data_yaml: Path,
    work_dir: Path,
    model_yaml: str = "yolov8n.yaml",
    epochs: int = 30,
    imgsz: int = 320,
    batch: int = 16,
    seed: int = 0,
    device: object = "cpu",
    workers: int = 0,
    mosaic: float = 1.0,
    config_dir: Path | None = None,
    max_minutes: float = 0.0,
) -> TrainingResult:
    """Trains a YOLO model from its architecture YAML (random init: nothing is downloaded); returns best.pt.

    Plots, AMP (its check downloads a model) and per-epoch chatter are off. The run folder (`<work_dir>/runs/train`)
    is replaced each time: give each training its own `work_dir`. `max_minutes` > 0 is a time budget
    (`models.detector_budget`): at most `epochs`, fewer when the budget runs out, the schedule fitted to it.
    """
    check_architecture(model_yaml)
    configure_offline(config_dir or Path(work_dir) / "ultralytics")
    from ultralytics import YOLO

    project = Path(work_dir).resolve() / "runs"
    if (project / "train").exists():
        shutil.rmtree(project / "train")
    model = YOLO(model_yaml, task="detect")
    progress = DetectorProgress(epochs=epochs, max_minutes=max_minutes)
    progress.attach(model)
    cuda = _reset_cuda_peak(device)
    started = time.perf_counter()
    model.train(
        data=str(data_yaml),
        epochs=epochs,
        imgsz=imgsz,
        batch=batch,
        seed=seed,
        deterministic=True,
        device=ultralytics_device(device),
        workers=workers,
        project=str(project),
        name="train",
        exist_ok=True,
        pretrained=False,
        amp=False,
        plots=False,
        verbose=False,
        mosaic=mosaic,
        # Small data: one optimizer step per batch (the default accumulates to 64 images), and no warm-up, which
        # ultralytics stretches to at least 100 iterations: a short run would otherwise never leave it.
        nbs=batch,
        warmup_epochs=0.0,
        close_mosaic=max(1, epochs // 3),
        patience=max(10, epochs),
        cache=False,
        **progress.train_arguments(),
    )
    seconds = time.perf_counter() - started
    # The last epoch, not best.pt: on a few held-out photos early-epoch fitness is often all zero, and best.pt then
    # stays the first epoch's model; the schedule ends annealed (no mosaic, low learning rate).
    weights = project / "train" / "weights" / "last.pt"
    return TrainingResult(
        weights_path=weights,
        seconds=seconds,
        epochs_run=progress.epochs_completed,
        budget=progress.summary(),
        cuda_max_memory_mb=_cuda_peak_mb(device) if cuda else None,
    )


def _reset_cuda_peak(device: object) -> bool:
    """Reset torch's peak-memory counter when training on CUDA; whether it is CUDA."""
    if not str(device).lower().startswith("cuda"):
        return False
    import torch

    torch.cuda.reset_peak_memory_stats(torch.device(str(device)))
    return True


def _cuda_peak_mb(device: object) -> float:
    import torch

    return torch.cuda.max_memory_allocated(torch.device(str(device))) / 2**20


def evaluate_detector(
    weights_path: Path,
    data_yaml: Path,
    imgsz: int,
    device: object = "cpu",
    batch: int = 16,
    config_dir: Path | None = None,
) -> dict[str, float]:
    """mAP50 and mAP50-95 of the model on the held-out (`val`) part of the dataset."""
    configure_offline(config_dir or Path(weights_path).parent / "ultralytics")
    from ultralytics import YOLO

    model = YOLO(str(weights_path), task="detect")
    metrics = model.val(
        data=str(data_yaml),
        split="val",
        imgsz=imgsz,
        batch=batch,
        device=ultralytics_device(device),
        plots=False,
        verbose=False,
        workers=0,
        project=str(Path(data_yaml).resolve().parent.parent / "runs"),
        name="val",
        exist_ok=True,
    )
    return {"mAP50": float(metrics.box.map50), "mAP50-95": float(metrics.box.map)}


def weights_version(weights: bytes) -> str:
    """The detector's version for caches: a short sha256 of its weights."""
    return hashlib.sha256(weights).hexdigest()[:16]


class UntrustedWeights(ValueError):
    """A weights file refused before ultralytics could unpickle it."""


def check_architecture(model_yaml: str) -> None:
    """Models are built from an architecture YAML: a `.pt` here would be unpickled (and looked for online)."""
    if not str(model_yaml).lower().endswith((".yaml", ".yml")):
        raise UntrustedWeights(
            f"model_yaml={model_yaml!r}: an architecture YAML (e.g. yolov8n.yaml) is expected; to start from "
            "trained weights give weights_path with its weights_sha256"
        )


def read_trusted_weights(path: Path, sha256: str | None, trusted: Iterable[str] = ()) -> bytes:
    """The bytes of a weights file, refused (`UntrustedWeights`) unless its sha256 is the one the user gave, or,
    with none given, one of `trusted` (weights this project trained). ultralytics unpickles what it loads, and an
    unpickled file can run any code: nothing unchecked reaches it."""
    path = Path(path)
    data = path.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if sha256:
        if actual != sha256.strip().lower():
            raise UntrustedWeights(
                f"weights_path={path} has sha256 {actual}, not the weights_sha256 {sha256} given: refusing to "
                "load it (ultralytics unpickles weights, which can run code)"
            )
    elif actual not in set(trusted):
        raise UntrustedWeights(
            f"weights_path={path}: refusing to load it unchecked (ultralytics unpickles weights, which can run "
            f"code). Give its sha256 as weights_sha256 (`sha256sum {path}`: {actual} if this file is the one "
            "you mean), or point weights_path at weights this project trained"
        )
    return data


def materialise_weights(weights: bytes, folder: Path) -> Path:
    """Writes weights bytes once to `folder/detector-<version>.pt` (ultralytics loads models from files); a file
    already there is reused only when its bytes are these (one changed since is rewritten)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"detector-{weights_version(weights)}.pt"
    if not path.exists() or path.read_bytes() != weights:
        write_bytes(weights, path)
    return path


def load_detector(weights_path: Path, config_dir: Path):
    """An ultralytics YOLO model from a weights file, offline."""
    configure_offline(config_dir)
    from ultralytics import YOLO

    return YOLO(str(weights_path), task="detect")


def decode_for_detection(path: Path, imgsz: int) -> tuple[np.ndarray, float, float]:
    """A photo as a BGR uint8 array no smaller than the detector needs, and its (x, y) scale to original pixels.

    JPEG draft mode decodes at 1/2, 1/4 or 1/8 scale when that still leaves the long side >= `imgsz`: the model
    letterboxes to `imgsz` anyway, so the full-resolution decode would be thrown away.
    """

    def request(full: tuple[int, int]) -> tuple[int, int]:
        longest = max(full)
        return (
            max(1, int(np.ceil(imgsz * full[0] / longest))),
            max(1, int(np.ceil(imgsz * full[1] / longest))),
        )

    # Upright and 8-bit (core.images), so boxes are in the frame raw_images, crops and keypoints use.
    rgb, (width, height) = decode_photo(path, "RGB", request)
    array = np.asarray(rgb)[:, :, ::-1]  # ultralytics treats numpy input as BGR (OpenCV order)
    return np.ascontiguousarray(array), width / rgb.width, height / rgb.height


def predict_boxes(
    model,
    paths: Sequence[Path],
    imgsz: int,
    batch: int = 16,
    device: object = "cpu",
    min_detection_confidence: float = 0.01,
) -> list[Detection]:
    """The single most confident box per photo, in original pixels, predicted `batch` photos at a time."""
    detections: list[Detection] = []
    for start in range(0, len(paths), batch):
        decoded = [decode_for_detection(Path(p), imgsz) for p in paths[start : start + batch]]
        results = model.predict(
            [array for array, _, _ in decoded],
            imgsz=imgsz,
            conf=min_detection_confidence,
            max_det=1,
            device=ultralytics_device(device),
            verbose=False,
            save=False,
        )
        for (array, scale_x, scale_y), result in zip(decoded, results):
            boxes = result.boxes
            if boxes is None or len(boxes) == 0:
                detections.append(Detection())
                continue
            best = int(boxes.conf.argmax())
            x0, y0, x1, y1 = (float(v) for v in boxes.xyxy[best].tolist())
            height, width = array.shape[:2]
            detections.append(
                Detection(
                    x0=max(0.0, x0) * scale_x,
                    y0=max(0.0, y0) * scale_y,
                    x1=min(float(width), x1) * scale_x,
                    y1=min(float(height), y1) * scale_y,
                    confidence=float(boxes.conf[best]),
                    found=True,
                )
            )
    return detections


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise IoU of two (N, 4) arrays of x0, y0, x1, y1 boxes."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    ix = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = ix * iy
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a + area_b - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
