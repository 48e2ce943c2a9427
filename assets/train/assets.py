"""Dagster definitions of the train stage: `embedding_model`, its config and its metadata."""

from functools import partial

import pandas as pd
import torch
from dagster import (
    AssetExecutionContext,
    Config,
    DataVersion,
    MetadataValue,
    Output,
    asset,
)
from pydantic import Field

from assets.train.plots import draw_losses, draw_val_map5, losses_title, val_map5_title
from assets.train.run import (
    CODE_VERSION,
    TrainingSummary,
    artifact_version,
    comparison_table,
    history_figures,
    train_embedding_artifact,
)
from core.dagster_types import EmbeddingModel, FlukeTensors
from core.profiles import asset_version
from core.reporting import figure_metadata, process_peak_rss_mb, table_metadata
from core.resources import ComputeDevice, FlukeStorage
from models.training import TrainingConfig

DEFAULTS = TrainingConfig  # the one source of the defaults


class EmbeddingModelConfig(Config):
    """The knobs of models.training.TrainingConfig, with its defaults: the best CPU recipe on the demo data
    (docs/training.md)."""

    backbone: str = Field(
        default=DEFAULTS.backbone,
        description="slim_resnet8/14/18, tiny_resnet (tests) or any "
        "torchvision classification model name (resnet18, resnet50, efficientnet_b0, ...).",
    )
    pretrained: str = Field(
        default=DEFAULTS.pretrained,
        description="'' (from scratch), a torchvision weights name (DEFAULT, "
        "IMAGENET1K_V1; must be in the torch cache offline) or a path to a state dict.",
    )
    embedding_dim: int = Field(default=DEFAULTS.embedding_dim, ge=1, description="Embedding dimension.")
    head_depth: int = Field(
        default=DEFAULTS.head_depth,
        ge=0,
        description="Linear layers in the projection head (0: pooled features).",
    )
    head_hidden: int = Field(
        default=DEFAULTS.head_hidden, ge=1, description="Width of the head's hidden layers."
    )
    norm_order: str = Field(
        default=DEFAULTS.norm_order, description="BatchNorm1d in the head: after | before | both | none."
    )
    hidden_norm: str = Field(
        default=DEFAULTS.hidden_norm,
        description="BatchNorm1d of each hidden head layer (head_depth >= 2): before_relu | after_relu.",
    )
    pooling: str = Field(default=DEFAULTS.pooling, description="gem | avg.")
    dropout: float = Field(default=DEFAULTS.dropout, ge=0.0, lt=1.0, description="Dropout before the head.")
    input_downscale: int = Field(
        default=DEFAULTS.input_downscale,
        ge=1,
        description="Average-pool the crops by this factor inside the "
        "model (2: a 128 x 256 crop is seen at 64 x 128, a quarter of the compute).",
    )
    individuals_per_batch: int = Field(
        default=DEFAULTS.individuals_per_batch, ge=1, description="P: individuals per batch."
    )
    photos_per_individual: int = Field(
        default=DEFAULTS.photos_per_individual,
        ge=1,
        description="K: photos per individual (repeats when fewer).",
    )
    negatives_per_batch: int = Field(
        default=DEFAULTS.negatives_per_batch,
        ge=0,
        description="new_whale photos per batch, as negatives only.",
    )
    epochs: int = Field(
        default=DEFAULTS.epochs, ge=1, description="Epochs (one epoch visits every individual about once)."
    )
    max_steps_per_epoch: int = Field(
        default=DEFAULTS.max_steps_per_epoch, ge=0, description="Cap on steps per epoch; 0: no cap."
    )
    max_minutes: float = Field(
        default=DEFAULTS.max_minutes,
        ge=0.0,
        description="Time budget: no epoch starts once the epochs took this many minutes (summed over resumed "
        "sessions); 0: none. Not in the run key: a rerun finds the cut run, a larger budget carries it on.",
    )
    learning_rate: float = Field(
        default=DEFAULTS.learning_rate, gt=0.0, description="AdamW learning rate of the head."
    )
    backbone_lr_scale: float = Field(
        default=DEFAULTS.backbone_lr_scale,
        ge=0.0,
        description="Backbone learning rate factor (< 1 if pretrained).",
    )
    loss_lr_scale: float = Field(
        default=DEFAULTS.loss_lr_scale,
        ge=0.0,
        description="Learning rate factor of the margin loss' centres.",
    )
    weight_decay: float = Field(default=DEFAULTS.weight_decay, ge=0.0, description="AdamW weight decay.")
    warmup_fraction: float = Field(
        default=DEFAULTS.warmup_fraction, ge=0.0, le=1.0, description="Share of steps with linear warm-up."
    )
    grad_clip: float = Field(default=DEFAULTS.grad_clip, ge=0.0, description="Gradient norm clip; 0: off.")
    margin_loss: str = Field(default=DEFAULTS.margin_loss, description="arcface | subcenter_arcface | none.")
    margin_loss_weight: float = Field(
        default=DEFAULTS.margin_loss_weight, ge=0.0, description="Weight of the margin (classification) loss."
    )
    arcface_margin_degrees: float = Field(
        default=DEFAULTS.arcface_margin_degrees,
        ge=0.0,
        le=90.0,
        description="ArcFace angular margin in degrees.",
    )
    arcface_scale: float = Field(default=DEFAULTS.arcface_scale, gt=0.0, description="ArcFace logit scale.")
    subcenters: int = Field(
        default=DEFAULTS.subcenters, ge=1, description="Sub-centres per class (subcenter_arcface)."
    )
    triplet_weight: float = Field(
        default=DEFAULTS.triplet_weight, ge=0.0, description="Weight of the triplet loss."
    )
    triplet_margin: float = Field(
        default=DEFAULTS.triplet_margin, ge=0.0, description="Triplet margin (and the miner's)."
    )
    mining: str = Field(default=DEFAULTS.mining, description="semihard | hard | all | batch_hard | none.")
    flip_as_new_class: bool = Field(
        default=DEFAULTS.flip_as_new_class,
        description="Mirrored photos as extra classes (top Kaggle "
        "trick); flip TTA then concatenates instead of averaging.",
    )
    drop_single_photo_individuals: bool = Field(
        default=DEFAULTS.drop_single_photo_individuals,
        description="One-photo individuals become negatives instead of classes.",
    )
    use_new_whale: bool = Field(
        default=DEFAULTS.use_new_whale, description="Use new_whale photos as negatives."
    )
    augment_strength: float = Field(
        default=DEFAULTS.augment_strength, ge=0.0, description="Scale of the tensor augmentations; 0: none."
    )
    validate_every: int = Field(
        default=DEFAULTS.validate_every, ge=1, description="Validate every N epochs (always the last)."
    )
    hard_reweight: float = Field(
        default=DEFAULTS.hard_reweight,
        ge=0.0,
        description="Raise poorly ranked individuals' sampling weight by "
        "1 + this * (1 - AP) after each validation; 0: off.",
    )
    max_class_weight: float = Field(
        default=DEFAULTS.max_class_weight, ge=1.0, description="Cap on a reweighted individual's weight."
    )
    eval_batch_size: int = Field(
        default=DEFAULTS.eval_batch_size, ge=1, description="Batch size for embedding during validation."
    )
    seed: int = Field(
        default=DEFAULTS.seed, ge=0, description="Seed of initialisation, sampling and augmentation."
    )
    mixed_precision: bool = Field(
        default=DEFAULTS.mixed_precision, description="bf16 autocast on CUDA (ignored on CPU)."
    )
    channels_last: bool = Field(
        default=DEFAULTS.channels_last, description="channels-last memory format on CUDA."
    )
    loader_workers: int = Field(
        default=DEFAULTS.loader_workers, ge=0, description="DataLoader worker processes."
    )
    cpu_threads: int = Field(
        default=DEFAULTS.cpu_threads,
        ge=0,
        description="CPU threads while training (0: torch's default); 1 is fastest on cores shared with other jobs.",
    )

    def settings(self) -> TrainingConfig:
        return TrainingConfig.from_dict(self.model_dump())


def embedding_model_metadata(value: EmbeddingModel, summary: TrainingSummary, device: torch.device) -> dict:
    """The model's val MAP@5 beside the two baselines, the loss and MAP@5 curves, throughput, the history."""
    history = value["history"]
    pixel, new_whale = summary["baseline_pixel_nn_map5"], summary["baseline_new_whale_map5"]
    return {
        "val_map5": round(summary["val_map5"], 4),
        "baseline_pixel_nn_map5": round(pixel, 4),
        "baseline_new_whale_map5": round(new_whale, 4),
        "val_map5_vs_baselines": table_metadata(comparison_table(summary)),
        "loss_curves": figure_metadata(partial(draw_losses, history=history), losses_title(history)),
        "val_map5_curve": figure_metadata(
            partial(draw_val_map5, history=history, pixel_nn_map5=pixel, new_whale_map5=new_whale),
            val_map5_title(history),
        ),
        **history_figures(history),
        "device": str(device),
        "parameters": summary["parameters"],
        "classes": summary["classes"],
        "training_photos": summary["training_photos"],
        "validation_photos": summary["validation_photos"],
        "epochs": int(len(history)),
        **budget_metadata(summary, history),
        "resumed_from_epoch": summary["resumed_from_epoch"],
        "wall_seconds": round(summary["wall_seconds"], 1),
        "train_seconds": round(summary["train_seconds"], 1),
        "history": table_metadata(history.round(4), max_rows=50),
        "config": MetadataValue.json(value["config"]),
    }


def budget_metadata(summary: TrainingSummary, history: pd.DataFrame) -> dict:
    """What ran against the budget, and what it took: step time and images (the throughput `bench/stage_report.py`
    compares with the device's peak), peak resident memory, and on CUDA the peak memory torch allocated."""
    metadata = {
        **summary["budget"],
        "training_minutes": round(summary["training_minutes"], 3),
        "images_trained": int(history["images"].sum()) if len(history) else 0,
        "step_seconds": round(float(history["compute_seconds"].sum()), 2) if len(history) else 0.0,
        "process_peak_rss_mb": process_peak_rss_mb(),
    }
    if summary["cuda_max_memory_mb"] is not None:
        metadata["cuda_max_memory_mb"] = round(summary["cuda_max_memory_mb"], 1)
    return metadata


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
    fluke_tensors: FlukeTensors,
    training_manifest: pd.DataFrame,
) -> Output[EmbeddingModel]:
    torch_device = device.torch_device()
    value, summary = train_embedding_artifact(
        fluke_tensors,
        training_manifest,
        config.settings(),
        torch_device,
        storage.work_dir("embedding_model"),
        log=context.log.info,
    )
    return Output(
        value,
        metadata=embedding_model_metadata(value, summary, torch_device),
        data_version=DataVersion(artifact_version(value)),
    )
