"""Stage: the fluke detector. A YOLO model trained on the hand-annotated subset (or weights the user gives).

Follow one annotated photo: `annotations/boxes.csv` names it with its box; `prepare_annotations` keeps it when it is
an accepted photo and the box lies in it, and files it under the training or the held-out part; `train_fluke_detector`
trains a small YOLO from its architecture YAML (nothing downloaded) and measures mAP on the held-out part. With no
annotations the asset returns no weights and says why: `fluke_boxes` then uses whole photos, flagged.
"""

import json
import time
from pathlib import Path

import pandas as pd
from dagster import AssetExecutionContext, Config, DataVersion, MetadataValue, Output, asset

from core.caches import memoized_artifact
from core.digests import content_version, stable_digest
from core.profiles import asset_version
from core.reporting import figure_metadata
from core.resources import ComputeDevice, FlukeData, FlukeStorage
from models import detector as det

CODE_VERSION = "fluke_detector-1"


class FlukeDetectorConfig(Config):
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


# ---------------------------------------------------------------------------------------------------------------
# plain functions


def read_annotations(path: Path) -> pd.DataFrame | None:
    """The annotation table (Image,x0,y0,x1,y1), or None when the data folder has none (or it is empty)."""
    path = Path(path)
    if not path.exists():
        return None
    table = pd.read_csv(path)
    return table if len(table) else None


def prepare_annotations(
    annotations: pd.DataFrame | None, manifest: pd.DataFrame, val_share: float, seed: int
) -> pd.DataFrame:
    """Usable annotated boxes with a `part` (train/val) column; empty when there are none."""
    if annotations is None:
        return pd.DataFrame(columns=["image", "split", "path", "width", "height", *det.BOX_COLUMNS, "part"])
    boxes = det.clean_annotations(annotations, manifest)
    return det.split_annotations(boxes, val_share, seed)


def untrained_info(reason: str, config: FlukeDetectorConfig, annotations: int = 0) -> dict:
    return {
        "trained": False,
        "source": "none",
        "reason": reason,
        "annotations": annotations,
        "epochs": config.epochs,
        "imgsz": config.imgsz,
        "model_yaml": config.model_yaml,
    }


def train_fluke_detector(
    boxes: pd.DataFrame,
    data_root: Path,
    work_dir: Path,
    config_dir: Path,
    config: FlukeDetectorConfig,
    device: object = "cpu",
) -> tuple[bytes | None, dict]:
    """Trains (or loads `config.weights_path`) and evaluates; returns (weights bytes or None, info)."""
    n_annotations = int(len(boxes))
    if config.weights_path is None and n_annotations < config.min_annotations:
        reason = (
            "no annotations (annotations/boxes.csv missing or empty)"
            if n_annotations == 0
            else f"only {n_annotations} usable annotated photos; training needs at least {config.min_annotations}"
        )
        return None, untrained_info(reason, config, n_annotations)
    data_yaml = det.build_yolo_dataset(boxes, data_root, work_dir) if n_annotations >= 2 else None
    info = untrained_info("", config, n_annotations)
    info.update(
        train_photos=int((boxes["part"] == "train").sum()) if n_annotations else 0,
        val_photos=int((boxes["part"] == "val").sum()) if n_annotations else 0,
    )
    if config.weights_path is not None:
        weights_path = Path(config.weights_path).expanduser()
        if not weights_path.exists():
            raise FileNotFoundError(f"weights_path={weights_path} does not exist")
        info.update(trained=False, source="weights_path", reason=f"weights given: {weights_path}")
    else:
        result = det.train_detector(
            data_yaml,
            work_dir,
            model_yaml=config.model_yaml,
            epochs=config.epochs,
            imgsz=config.imgsz,
            batch=config.batch,
            seed=config.seed,
            device=device,
            mosaic=config.mosaic,
            config_dir=config_dir,
        )
        weights_path = result.weights_path
        info.update(trained=True, source="trained", training_seconds=round(result.seconds, 1))
        history = Path(work_dir) / "runs" / "train" / "results.csv"
        if history.exists():
            info["history"] = _history(history)
    if data_yaml is not None:
        info.update(
            det.evaluate_detector(weights_path, data_yaml, config.imgsz, device=device, config_dir=config_dir)
        )
    weights = Path(weights_path).read_bytes()
    info["version"] = det.weights_version(weights)
    return weights, info


def _history(results_csv: Path) -> list[dict]:
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


# ---------------------------------------------------------------------------------------------------------------
# Dagster


@asset(
    code_version=asset_version("fluke_detector", CODE_VERSION),
    group_name="detect",
    description="YOLO fluke detector trained offline on the annotated subset (or given weights); mAP on held-out boxes.",
)
def fluke_detector(
    context: AssetExecutionContext,
    config: FlukeDetectorConfig,
    data: FlukeData,
    storage: FlukeStorage,
    device: ComputeDevice,
    raw_images: dict,
) -> Output[dict]:
    manifest = raw_images["images"]
    annotations = read_annotations(data.annotations_csv)
    boxes = prepare_annotations(annotations, manifest, config.val_share, config.seed)
    started = time.perf_counter()
    # What the detector learns from: annotated photos' content, their boxes and folds, the config.
    annotated = (
        manifest.set_index("image").reindex(boxes["image"])["content_hash"].tolist() if len(boxes) else []
    )
    training_key = stable_digest(
        CODE_VERSION,
        config.model_dump(),
        boxes.drop(columns=["path"], errors="ignore").astype(str).values.tolist(),
        annotated,
    )
    weights, info, reused = memoized_artifact(
        storage.work_dir("fluke_detector") / "trained",
        training_key,
        lambda: train_fluke_detector(
            boxes,
            data.root,
            storage.work_dir("fluke_detector"),
            storage.work_dir("ultralytics"),
            config,
            device=device.torch_device(),
        ),
    )
    seconds = time.perf_counter() - started
    if reused:
        context.log.info(
            "same annotated photos, boxes and config as a previous training: its weights are reused"
        )
    if weights is None:
        context.log.warning(
            f"fluke_detector not trained: {info['reason']}; fluke_boxes will use whole photos"
        )
    metadata = {
        "trained": bool(info["trained"]),
        "source": info["source"],
        "reason": info.get("reason", ""),
        "annotations_in_file": 0 if annotations is None else int(len(annotations)),
        "annotations_used": int(len(boxes)),
        "train_photos": int(info.get("train_photos", 0)),
        "val_photos": int(info.get("val_photos", 0)),
        "epochs": config.epochs,
        "imgsz": config.imgsz,
        "model_yaml": config.model_yaml,
        "seconds": round(seconds, 1),
        "reused_previous_training": reused,
    }
    for key in ("mAP50", "mAP50-95", "training_seconds", "version"):
        if key in info:
            metadata[key] = round(info[key], 4) if isinstance(info[key], float) else info[key]
    history = info.get("history")
    if history:
        frame = pd.DataFrame(history)

        def curves(ax):
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

        last = frame["mAP50"].dropna()
        metadata["training_curves"] = figure_metadata(
            curves,
            "Has the detector learned to find flukes? "
            + (f"mAP50 {last.iloc[-1]:.3f} after {int(frame['epoch'].max())} epochs" if len(last) else ""),
        )
    metadata["info"] = MetadataValue.json({k: v for k, v in info.items() if k != "history"})
    value: dict = {"info": info}
    if weights is not None:
        value["weights"] = weights
    return Output(value, metadata=metadata, data_version=DataVersion(content_version(value)))
