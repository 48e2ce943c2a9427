"""Stage: the embedding network, trained by metric learning on the fluke crops (see models/training.py).

Follow one training photo: `training_manifest` gives its label and fold, `fluke_tensors` its uint8 crop; the
training loop samples it in P x K batches, and after every epoch the validation fold is ranked against the
training fold (MAP@5). Beside the trained model, the same validation fold is scored by two baselines computed in
this run: `new_whale` then the four most frequent individuals, and whole-image pixel nearest neighbours; the
metadata shows the three side by side.
"""

import time

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from dagster import AssetExecutionContext, Config, DataVersion, MetadataValue, Output, asset
from pydantic import Field

from core.constants import NEW_WHALE
from core.digests import content_version, stable_digest
from core.metrics import map_at_5
from core.profiles import asset_version
from core.reporting import figure_metadata, table_metadata
from core.resources import ComputeDevice, FlukeStorage
from models.embedding import parameter_count, weights_to_bytes
from models.training import (
    TrainingConfig,
    TrainingData,
    prepare_training_data,
    rank_and_score,
    train_embedding,
    validation_truths,
)

CODE_VERSION = "embedding_model-1"
PIXEL_BASELINE_SIZE = (16, 32)  # height, width of the downscaled crops the pixel baseline compares


# ---------------------------------------------------------------------------------------------------------------
# plain functions


def new_whale_first_baseline(data: TrainingData) -> float:
    """MAP@5 of answering every validation photo `new_whale` then the four most frequent training individuals."""
    known = pd.Series([label for label in data.train_labels if label != NEW_WHALE])
    row = [NEW_WHALE, *known.value_counts().index[:4].tolist()]
    truths = validation_truths(data.val_labels, data.train_labels)
    return map_at_5([row] * len(truths), truths)


def pixel_vectors(
    tensors: np.ndarray, rows: np.ndarray, size: tuple[int, int] = PIXEL_BASELINE_SIZE
) -> np.ndarray:
    """Downscaled raw crops as centred, L2-normalised vectors (cosine similarity of pixel patterns)."""
    if len(rows) == 0:
        return np.zeros((0, tensors.shape[1] * size[0] * size[1]), np.float32)
    images = torch.from_numpy(np.array(tensors[np.asarray(rows)], dtype=np.float32))
    small = F.adaptive_avg_pool2d(images, size).flatten(1)
    small = small - small.mean(dim=1, keepdim=True)
    return F.normalize(small, dim=1).numpy().astype(np.float32)


def pixel_nearest_neighbour_baseline(data: TrainingData) -> tuple[float, float]:
    """MAP@5 (and the tuned threshold) of whole-image pixel nearest neighbours, ranked like the model (faiss)."""
    gallery = pixel_vectors(data.tensors, data.train_rows)
    queries = pixel_vectors(data.tensors, data.val_rows)
    validation = rank_and_score(gallery, data.train_labels, queries, data.val_labels)
    return validation.map5, validation.threshold


def run_key(config: TrainingConfig, data: TrainingData) -> str:
    """Names the checkpoint folder: a resumed run must have the same code, config and training photos.

    Keyed by the crops the run learns from (in manifest order), not by their row numbers or the rest of the
    store, so new test photos leave the key alone and the finished run is found instead of trained again.
    """
    return stable_digest(
        CODE_VERSION,
        config.to_dict(),
        content_version(np.asarray(data.tensors[np.asarray(data.train_rows, dtype=np.int64)])),
        data.train_labels,
        content_version(np.asarray(data.tensors[np.asarray(data.val_rows, dtype=np.int64)])),
        data.val_labels,
    )


def train_embedding_artifact(
    data: TrainingData, config: TrainingConfig, device: torch.device, checkpoint_root, log=print
) -> tuple[dict, dict]:
    """Train (resuming when a checkpoint of the same run exists) and score the baselines.

    Returns the artifact value (`weights`, `config`, `history`) and a summary of numbers for the metadata.
    """
    started = time.perf_counter()
    key = run_key(config, data)
    result = train_embedding(data, config, device, checkpoint_dir=checkpoint_root / key, run_key=key, log=log)
    history = result.history
    validated = history.dropna(subset=["val_map5"])
    final = validated.iloc[-1] if len(validated) else None
    baseline_started = time.perf_counter()
    pixel_map5, pixel_threshold = pixel_nearest_neighbour_baseline(data)
    summary = {
        "val_map5": float(final["val_map5"]) if final is not None else float("nan"),
        "val_threshold": float(final["val_threshold"]) if final is not None else float("nan"),
        "baseline_new_whale_map5": new_whale_first_baseline(data),
        "baseline_pixel_nn_map5": pixel_map5,
        "baseline_pixel_nn_threshold": pixel_threshold,
        "baseline_seconds": time.perf_counter() - baseline_started,
        "parameters": parameter_count(result.model),
        "classes": result.classes,
        "training_items": result.items,
        "resumed_from_epoch": result.resumed_from_epoch,
        "train_seconds": result.seconds,
        "wall_seconds": time.perf_counter() - started,
        "run_key": key,
    }
    artifact_config = {
        "model": result.spec.to_dict(),
        "training": config.to_dict(),
        "input": {
            "channels": int(data.tensors.shape[1]),
            "height": int(data.tensors.shape[2]),
            "width": int(data.tensors.shape[3]),
        },
        "embedding_dim": int(result.model.embedding_dim),
        "flip_tta_concatenates": bool(config.flip_as_new_class),
        "val_map5": summary["val_map5"],
        "val_threshold": summary["val_threshold"],
        "code_version": CODE_VERSION,
    }
    value = {"weights": weights_to_bytes(result.model), "config": artifact_config, "history": history}
    return value, summary


# ---------------------------------------------------------------------------------------------------------------
# Dagster


class EmbeddingModelConfig(Config):
    """The knobs of models.training.TrainingConfig; defaults are the best CPU recipe on the demo data
    (docs/training.md)."""

    backbone: str = Field(
        default="slim_resnet14",
        description="slim_resnet8/14/18, tiny_resnet (tests) or any "
        "torchvision classification model name (resnet18, resnet50, efficientnet_b0, ...).",
    )
    pretrained: str = Field(
        default="",
        description="'' (from scratch), a torchvision weights name (DEFAULT, "
        "IMAGENET1K_V1; must be in the torch cache offline) or a path to a state dict.",
    )
    embedding_dim: int = Field(default=256, description="Embedding dimension.")
    head_depth: int = Field(
        default=1, description="Linear layers in the projection head (0: pooled features)."
    )
    head_hidden: int = Field(default=512, description="Width of the head's hidden layers.")
    norm_order: str = Field(
        default="after", description="BatchNorm1d in the head: after | before | both | none."
    )
    pooling: str = Field(default="gem", description="gem | avg.")
    dropout: float = Field(default=0.0, description="Dropout before the head.")
    input_downscale: int = Field(
        default=4,
        description="Average-pool the crops by this factor inside the "
        "model (2: a 128 x 256 crop is seen at 64 x 128, a quarter of the compute).",
    )
    individuals_per_batch: int = Field(default=12, description="P: individuals per batch.")
    photos_per_individual: int = Field(
        default=4, description="K: photos per individual (repeats when fewer)."
    )
    negatives_per_batch: int = Field(default=8, description="new_whale photos per batch, as negatives only.")
    epochs: int = Field(default=120, description="Epochs (one epoch visits every individual about once).")
    max_steps_per_epoch: int = Field(default=0, description="Cap on steps per epoch; 0: no cap.")
    learning_rate: float = Field(default=2e-3, description="AdamW learning rate of the head.")
    backbone_lr_scale: float = Field(
        default=1.0, description="Backbone learning rate factor (< 1 if pretrained)."
    )
    loss_lr_scale: float = Field(
        default=10.0, description="Learning rate factor of the margin loss' centres."
    )
    weight_decay: float = Field(default=1e-4, description="AdamW weight decay.")
    warmup_fraction: float = Field(default=0.05, description="Share of steps with linear warm-up.")
    grad_clip: float = Field(default=5.0, description="Gradient norm clip; 0: off.")
    margin_loss: str = Field(default="arcface", description="arcface | subcenter_arcface | none.")
    margin_loss_weight: float = Field(default=1.0, description="Weight of the margin (classification) loss.")
    arcface_margin_degrees: float = Field(default=17.0, description="ArcFace angular margin in degrees.")
    arcface_scale: float = Field(default=30.0, description="ArcFace logit scale.")
    subcenters: int = Field(default=3, description="Sub-centres per class (subcenter_arcface).")
    triplet_weight: float = Field(default=1.0, description="Weight of the triplet loss.")
    triplet_margin: float = Field(default=0.2, description="Triplet margin (and the miner's).")
    mining: str = Field(default="semihard", description="semihard | hard | all | batch_hard | none.")
    flip_as_new_class: bool = Field(
        default=False,
        description="Mirrored photos as extra classes (top Kaggle "
        "trick); flip TTA then concatenates instead of averaging.",
    )
    drop_single_photo_individuals: bool = Field(
        default=False, description="One-photo individuals become negatives instead of classes."
    )
    use_new_whale: bool = Field(default=True, description="Use new_whale photos as negatives.")
    augment_strength: float = Field(default=1.6, description="Scale of the tensor augmentations; 0: none.")
    validate_every: int = Field(default=10, description="Validate every N epochs (always the last).")
    hard_reweight: float = Field(
        default=0.0,
        description="Raise poorly ranked individuals' sampling weight by "
        "1 + this * (1 - AP) after each validation; 0: off.",
    )
    max_class_weight: float = Field(default=4.0, description="Cap on a reweighted individual's weight.")
    eval_batch_size: int = Field(default=128, description="Batch size for embedding during validation.")
    seed: int = Field(default=0, description="Seed of initialisation, sampling and augmentation.")
    mixed_precision: bool = Field(default=True, description="bf16 autocast on CUDA (ignored on CPU).")
    channels_last: bool = Field(default=True, description="channels-last memory format on CUDA.")
    loader_workers: int = Field(default=0, description="DataLoader worker processes.")
    cpu_threads: int = Field(
        default=1,
        description="CPU threads while training (0: torch's default); 1 is fastest on cores shared with other jobs.",
    )


def _history_plots(history: pd.DataFrame, summary: dict) -> dict:
    def losses(ax):
        for column, colour in (("loss", "#222222"), ("margin_loss", "#33658a"), ("triplet_loss", "#f26419")):
            ax.plot(history["epoch"], history[column], marker="o", ms=3, label=column, color=colour)
        ax.set_xlabel("epoch")
        ax.set_ylabel("mean loss per step (log scale)")
        ax.set_yscale("log")
        ax.legend(fontsize=8)

    def map5(ax):
        valid = history.dropna(subset=["val_map5"])
        ax.plot(valid["epoch"], valid["val_map5"], marker="o", ms=3, color="#2f4858", label="embedding model")
        ax.axhline(
            summary["baseline_pixel_nn_map5"], ls="--", color="#86bbd8", label="pixel nearest neighbours"
        )
        ax.axhline(summary["baseline_new_whale_map5"], ls=":", color="#f6ae2d", label="new_whale + top 4")
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation MAP@5")
        ax.set_ylim(0, 1)
        ax.legend(loc="lower right", fontsize=8)

    last = history["loss"].dropna()
    best = history["val_map5"].dropna()
    return {
        "loss_curves": figure_metadata(
            losses,
            "Is the embedding still learning? "
            + (f"loss {last.iloc[0]:.2f} -> {last.iloc[-1]:.2f}" if len(last) else "no steps"),
        ),
        "val_map5_curve": figure_metadata(
            map5,
            "Does it beat the baselines on held-out photos? "
            + (f"best val MAP@5 {best.max():.3f}" if len(best) else "not validated"),
        ),
    }


@asset(
    code_version=asset_version("embedding_model", CODE_VERSION),
    group_name="train",
    description="Metric-learning embedding network (ArcFace + mined triplets) trained on the fluke crops; "
    "checkpointed every epoch under storage/work/embedding_model and resumed after an interruption.",
)
def embedding_model(
    context: AssetExecutionContext,
    config: EmbeddingModelConfig,
    device: ComputeDevice,
    storage: FlukeStorage,
    fluke_tensors: dict,
    training_manifest: pd.DataFrame,
) -> Output[dict]:
    data = prepare_training_data(fluke_tensors["tensors"], fluke_tensors["index"], training_manifest)
    training_config = TrainingConfig.from_dict(config.model_dump())
    torch_device = device.torch_device()
    value, summary = train_embedding_artifact(
        data, training_config, torch_device, storage.work_dir("embedding_model"), log=context.log.info
    )
    history = value["history"]
    comparison = pd.DataFrame(
        {
            "method": ["embedding model", "pixel nearest neighbours", "new_whale + top 4"],
            "val_map5": [
                round(summary["val_map5"], 4),
                round(summary["baseline_pixel_nn_map5"], 4),
                round(summary["baseline_new_whale_map5"], 4),
            ],
        }
    )
    metadata = {
        "val_map5": round(summary["val_map5"], 4),
        "baseline_pixel_nn_map5": round(summary["baseline_pixel_nn_map5"], 4),
        "baseline_new_whale_map5": round(summary["baseline_new_whale_map5"], 4),
        "val_map5_vs_baselines": table_metadata(comparison),
        **_history_plots(history, summary),
        "same_label_pair_share": round(float(history["same_label_share"].mean()), 4),
        "images_per_second": round(float(history["images_per_sec"].mean()), 1),
        "load_share_of_step_time": round(
            float(
                history["load_seconds"].sum()
                / max(1e-9, history["load_seconds"].sum() + history["compute_seconds"].sum())
            ),
            4,
        ),
        "skipped_zero_loss_steps": int(history["skipped_steps"].sum()),
        "layers_without_gradient": int(history["layers_without_gradient"].max()),
        "device": str(torch_device),
        "parameters": summary["parameters"],
        "classes": summary["classes"],
        "training_photos": len(data.train_rows),
        "validation_photos": len(data.val_rows),
        "epochs": int(len(history)),
        "resumed_from_epoch": summary["resumed_from_epoch"],
        "wall_seconds": round(summary["wall_seconds"], 1),
        "train_seconds": round(summary["train_seconds"], 1),
        "history": table_metadata(history.round(4), max_rows=50),
        "config": MetadataValue.json(value["config"]),
    }
    # The version follows what downstream uses (weights and config), not the history's timings, so a run that
    # finds its finished checkpoint leaves the gallery and everything after it fresh.
    version = content_version({"weights": value["weights"], "config": value["config"]})
    return Output(value, metadata=metadata, data_version=DataVersion(version))
