"""The train stage as plain code: one training run of the embedding network and the baselines beside it.

Follow one training photo: `training_manifest` gives its label and fold, `fluke_tensors` its uint8 crop;
`models.training.train_embedding` samples it in P x K batches, and after every `validate_every` epochs the
validation fold is ranked against the training fold (MAP@5, threshold tuned by `models.retrieval`). Beside the
trained model, the same validation fold is scored by the two baselines of `models.baselines`, computed in this
run and ranked by the same rule and tuner: `new_whale` then the four most frequent individuals, and whole-crop
pixel nearest neighbours. The run checkpoints under `<work dir>/<run key>/` and resumes from there; one process
at a time trains a run key (the lock file `<work dir>/<run key>.lock` holds its pid), so a second run wanting the
same training waits for the first and then finds its finished checkpoint instead of training beside it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TypedDict

import pandas as pd
import torch

from core.artifacts import EmbeddingModel, EmbeddingModelInfo, FlukeTensors, TrainingBudget
from core.digests import content_version, rows_version, stable_digest
from core.files import pid_lock
from models.baselines import frequent_whale_baseline, pixel_vectors
from models.embedding import parameter_count, weights_to_bytes
from models.epoch_validation import rank_and_score, validation_truths
from models.training import TrainingConfig, TrainingData, prepare_training_data, train_embedding

CODE_VERSION = "embedding_model-2"  # -2: per-epoch validation tuned by models.retrieval (101 points)
PIXEL_BASELINE_SIZE = (16, 32)  # height, width of the downscaled crops the pixel baseline compares
UNKEYED_SETTINGS = ("max_minutes",)  # settings the run key leaves out (see run_key)
# Settings added after runs were first keyed, left out of the key at their default so that earlier runs are found
# again (a non-default value is keyed as usual).
LATER_SETTINGS = {"hidden_norm": "before_relu"}


def training_budget(config: TrainingConfig, history: pd.DataFrame, stopped_by_budget: bool) -> TrainingBudget:
    """What ran against what was asked: read from the history, so a run found again reports the same."""
    return TrainingBudget(
        max_minutes=float(config.max_minutes),
        stopped_by_budget=bool(stopped_by_budget),
        epochs_configured=int(config.epochs),
        epochs_completed=int(len(history)),
        steps_completed=int(history["steps"].sum()) if len(history) else 0,
    )


class TrainingSummary(TypedDict):
    """The numbers of a run that the metadata shows beside the history."""

    val_map5: float
    val_threshold: float
    baseline_new_whale_map5: float
    baseline_pixel_nn_map5: float
    baseline_pixel_nn_threshold: float
    baseline_seconds: float
    parameters: int
    classes: int
    training_items: int
    training_photos: int
    validation_photos: int
    resumed_from_epoch: int
    train_seconds: float
    wall_seconds: float
    run_key: str
    budget: TrainingBudget
    training_minutes: float  # wall-clock, so in the metadata only: the artifact's version must not follow it
    cuda_max_memory_mb: float | None


def pixel_nearest_neighbour_baseline(data: TrainingData) -> tuple[float, float]:
    """MAP@5 (and the tuned threshold) of whole-crop pixel nearest neighbours, ranked like the model."""
    gallery = pixel_vectors(data.tensors, PIXEL_BASELINE_SIZE, rows=data.train_rows)
    queries = pixel_vectors(data.tensors, PIXEL_BASELINE_SIZE, rows=data.val_rows)
    validation = rank_and_score(gallery, data.train_labels, queries, data.val_labels)
    return validation.map5, validation.threshold


def run_key(config: TrainingConfig, data: TrainingData) -> str:
    """Names the checkpoint folder: a resumed run must have the same code, config and training photos.

    Keyed by the crops the run learns from (in manifest order), not by their row numbers or the rest of the
    store, so new test photos leave the key alone and the finished run is found instead of trained again. The
    time budget is left out: it changes where a run stops, not the run (models/training.py), so a run cut by a
    budget is found again by the same budget and carried on by a larger one, never by another config.
    """
    return stable_digest(
        CODE_VERSION,
        {
            name: value
            for name, value in config.to_dict().items()
            if name not in UNKEYED_SETTINGS and not (name in LATER_SETTINGS and LATER_SETTINGS[name] == value)
        },
        rows_version(data.tensors, data.train_rows),
        data.train_labels,
        rows_version(data.tensors, data.val_rows),
        data.val_labels,
    )


def train_embedding_artifact(
    fluke_tensors: FlukeTensors,
    training_manifest: pd.DataFrame,
    config: TrainingConfig,
    device: torch.device,
    checkpoint_root: Path,
    log: Callable[[str], None] = print,
) -> tuple[EmbeddingModel, TrainingSummary]:
    """Train (resuming when a checkpoint of the same run exists under `checkpoint_root`) and score the baselines.

    Returns the artifact value and a summary of numbers for the metadata.
    """
    started = time.perf_counter()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    data = prepare_training_data(fluke_tensors["tensors"], fluke_tensors["index"], training_manifest)
    key = run_key(config, data)
    with pid_lock(Path(checkpoint_root) / f"{key}.lock", log=log):
        result = train_embedding(
            data, config, device, checkpoint_dir=Path(checkpoint_root) / key, run_key=key, log=log
        )
    history = result.history
    validated = history.dropna(subset=["val_map5"])
    final = validated.iloc[-1] if len(validated) else None
    baseline_started = time.perf_counter()
    pixel_map5, pixel_threshold = pixel_nearest_neighbour_baseline(data)
    summary = TrainingSummary(
        val_map5=float(final["val_map5"]) if final is not None else float("nan"),
        val_threshold=float(final["val_threshold"]) if final is not None else float("nan"),
        baseline_new_whale_map5=frequent_whale_baseline(
            data.train_labels, validation_truths(data.val_labels, data.train_labels)
        ),
        baseline_pixel_nn_map5=pixel_map5,
        baseline_pixel_nn_threshold=pixel_threshold,
        baseline_seconds=time.perf_counter() - baseline_started,
        parameters=parameter_count(result.model),
        classes=result.classes,
        training_items=result.items,
        training_photos=len(data.train_rows),
        validation_photos=len(data.val_rows),
        resumed_from_epoch=result.resumed_from_epoch,
        train_seconds=result.seconds,
        wall_seconds=time.perf_counter() - started,
        run_key=key,
        budget=training_budget(config, history, result.stopped_by_budget),
        training_minutes=result.training_minutes,
        cuda_max_memory_mb=torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
    )
    info = EmbeddingModelInfo(
        model=result.spec.to_dict(),
        training=config.to_dict(),
        input={
            "channels": int(data.tensors.shape[1]),
            "height": int(data.tensors.shape[2]),
            "width": int(data.tensors.shape[3]),
        },
        embedding_dim=int(result.model.embedding_dim),
        flip_tta_concatenates=bool(config.flip_as_new_class),
        val_map5=summary["val_map5"],
        val_threshold=summary["val_threshold"],
        code_version=CODE_VERSION,
        budget=summary["budget"],
    )
    value = EmbeddingModel(weights=weights_to_bytes(result.model), config=info, history=history)
    return value, summary


def artifact_version(value: EmbeddingModel) -> str:
    """The data version follows what downstream uses (weights and config), not the history's timings, so a run
    that finds its finished checkpoint leaves the gallery and everything after it fresh."""
    return content_version({"weights": value["weights"], "config": value["config"]})


def history_figures(history: pd.DataFrame) -> dict:
    """Whole-run figures of the per-epoch history: batch make-up, throughput, where step time went, and the
    two training sanity counts (steps skipped for a zero loss, parameters the first step's gradient missed)."""
    load, compute = history["load_seconds"].sum(), history["compute_seconds"].sum()
    return {
        "same_label_pair_share": round(float(history["same_label_share"].mean()), 4),
        "images_per_second": round(float(history["images_per_sec"].mean()), 1),
        "load_share_of_step_time": round(float(load / max(1e-9, load + compute)), 4),
        "skipped_zero_loss_steps": int(history["skipped_steps"].sum()),
        "layers_without_gradient": int(history["layers_without_gradient"].max()),
    }


def comparison_table(summary: TrainingSummary) -> pd.DataFrame:
    """Validation MAP@5 of the model and the two baselines, side by side."""
    return pd.DataFrame(
        {
            "method": ["embedding model", "pixel nearest neighbours", "new_whale + top 4"],
            "val_map5": [
                round(summary["val_map5"], 4),
                round(summary["baseline_pixel_nn_map5"], 4),
                round(summary["baseline_new_whale_map5"], 4),
            ],
        }
    )
