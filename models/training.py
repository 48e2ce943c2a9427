"""Metric-learning training of the fluke embedder: the settings, the data, and the loop, read top to bottom.

Follow one run (as nanoGPT's train.py): `start_or_resume` builds the network, the losses and the optimiser, and
carries on from the run's checkpoint when there is one (models/checkpoint.py); then each epoch `train_epoch`
draws P individuals x K photos plus new_whale negatives (models/batches.py, models/sampler.py), augments them on
the device (models/augment.py) and steps on ArcFace + mined triplet losses (models/losses.py, models/epoch.py);
`validate` ranks the validation fold against the training fold with the retrieval module's tuner
(models/epoch_validation.py), which may reweight hard individuals; and the one checkpoint dict is written
atomically. A killed run resumes from the last checkpoint and, because every epoch reseeds its own randomness,
ends where an uninterrupted run ends. A time budget (`max_minutes`) lets no epoch start once the epochs so far
took that long: the run stops cleanly after an epoch, its checkpoint whole, and is carried on from there by a
larger budget (or none), on the way an uncut run goes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from models.batches import batch_sampler, make_loader, training_items
from models.checkpoint import CHECKPOINT_NAME, checkpoint_state, save_checkpoint, start_or_resume
from models.embedding import EmbeddingSpec, FlukeEmbedder
from models.epoch import train_epoch
from models.epoch_validation import Validation, reweight_hard_individuals, validate


@dataclass(frozen=True)
class TrainingConfig:
    """Every knob of a training run. The defaults are the best recipe found on the demo data (docs/training.md);
    the asset's Config declares the same fields with these defaults (assets/train/assets.py)."""

    # network (see EmbeddingSpec)
    backbone: str = "slim_resnet14"
    pretrained: str = ""
    embedding_dim: int = 256
    head_depth: int = 1
    head_hidden: int = 512
    norm_order: str = "after"
    hidden_norm: str = "before_relu"  # hidden head layers (head_depth >= 2): BN before_relu | after_relu
    pooling: str = "gem"
    dropout: float = 0.0
    input_downscale: int = 4  # the 128 x 256 crops seen at 32 x 64: patterns are coarse, CPU time is short
    # batches: P individuals x K photos + new_whale negatives
    individuals_per_batch: int = 12
    photos_per_individual: int = 4
    negatives_per_batch: int = 8
    epochs: int = 120
    max_steps_per_epoch: int = 0  # 0: a full pass over the individuals; >0 caps it (benchmarks, smoke runs)
    # A time budget: no epoch starts once this many minutes of epochs (training and validation, summed over
    # resumed sessions) are spent; 0: none. Not part of the run key (assets/train/run.py): it only caps how far
    # the same run goes, so a cut run is found again by the same budget and carried on by a larger one.
    max_minutes: float = 0.0
    # optimisation
    learning_rate: float = 2e-3
    backbone_lr_scale: float = 1.0  # < 1 for pretrained backbones
    loss_lr_scale: float = 10.0  # class centres of the margin loss learn faster
    weight_decay: float = 1e-4
    warmup_fraction: float = 0.05
    grad_clip: float = 5.0
    # losses (pytorch-metric-learning)
    margin_loss: str = "arcface"  # arcface | subcenter_arcface | none
    margin_loss_weight: float = 1.0
    arcface_margin_degrees: float = 17.0
    arcface_scale: float = 30.0
    subcenters: int = 3
    triplet_weight: float = 1.0
    triplet_margin: float = 0.2
    mining: str = "semihard"  # semihard | hard | all | batch_hard | none (every triplet of the batch)
    # data
    flip_as_new_class: bool = False
    drop_single_photo_individuals: bool = False  # their photos become negatives instead of classes
    use_new_whale: bool = True
    augment_strength: float = 1.6  # 0: no augmentation
    # validation and hard-individual reweighting
    validate_every: int = 10  # epochs; the last epoch is always validated
    # 0: off; else an individual's weight *= 1 + hard_reweight * (1 - AP) after each validation
    hard_reweight: float = 0.0
    max_class_weight: float = 4.0
    eval_batch_size: int = 128
    # device and reproducibility
    seed: int = 0
    mixed_precision: bool = True  # bf16 autocast, CUDA only
    channels_last: bool = True  # CUDA only
    loader_workers: int = 0
    # CPU intra-op threads while training (restored after); 0: torch's default. On cores shared with other jobs
    # one thread per process runs up to 15x faster than two that wait for each other (docs/training.md).
    cpu_threads: int = 1

    @classmethod
    def from_dict(cls, values: dict) -> TrainingConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    def to_dict(self) -> dict:
        return asdict(self)

    def embedding_spec(self, in_channels: int) -> EmbeddingSpec:
        return EmbeddingSpec(
            backbone=self.backbone,
            in_channels=in_channels,
            embedding_dim=self.embedding_dim,
            head_depth=self.head_depth,
            head_hidden=self.head_hidden,
            norm_order=self.norm_order,
            hidden_norm=self.hidden_norm,
            pooling=self.pooling,
            dropout=self.dropout,
            input_downscale=self.input_downscale,
            pretrained=self.pretrained,
        )


@dataclass
class TrainingData:
    """The tensor store and which of its rows are training and validation photos, with their labels."""

    tensors: np.ndarray  # uint8 N x C x H x W, may be a read-only memmap
    train_rows: np.ndarray
    train_labels: list[str]
    val_rows: np.ndarray
    val_labels: list[str]


def prepare_training_data(tensors: np.ndarray, index: pd.DataFrame, manifest: pd.DataFrame) -> TrainingData:
    """Join `training_manifest` (image, label, fold) to `fluke_tensors` (index: row, image, split)."""
    rows = index[index["split"] == "train"].set_index("image")["row"]
    missing = manifest.loc[~manifest["image"].isin(rows.index), "image"]
    if len(missing):
        raise ValueError(f"{len(missing)} manifest photos have no tensor row, e.g. {missing.iloc[0]}")
    manifest = manifest.sort_values("image", kind="stable")
    train = manifest[manifest["fold"] == "train"]
    val = manifest[manifest["fold"] == "val"]
    return TrainingData(
        tensors=tensors,
        train_rows=rows.loc[train["image"]].to_numpy(np.int64),
        train_labels=train["label"].astype(str).tolist(),
        val_rows=rows.loc[val["image"]].to_numpy(np.int64),
        val_labels=val["label"].astype(str).tolist(),
    )


@dataclass
class TrainingResult:
    model: FlukeEmbedder
    spec: EmbeddingSpec
    history: pd.DataFrame
    resumed_from_epoch: int
    seconds: float
    classes: int
    items: int
    stopped_by_budget: bool = False
    training_minutes: float = 0.0  # the epochs' training and validation time, summed over resumed sessions


def train_embedding(
    data: TrainingData,
    config: TrainingConfig,
    device: torch.device | str = "cpu",
    checkpoint_dir: Path | None = None,
    run_key: str = "",
    on_step: Callable[[int, int, dict], None] | None = None,
    log: Callable[[str], None] = print,
) -> TrainingResult:
    """Train (or resume training) the embedder; returns the model after the last epoch and the per-epoch history.

    `on_step(epoch, step, stats)` is called after every step (tests use it to kill a run half-way).
    """
    device = torch.device(device)
    with cpu_threads(config.cpu_threads if device.type == "cpu" else 0):
        started = time.perf_counter()
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = False
            torch.backends.cudnn.deterministic = True
        items = training_items(data.train_labels, data.train_rows, config)
        num_classes = len(items.class_names)
        sampler = batch_sampler(items, config)
        loader = make_loader(data.tensors, items, sampler, device, config.loader_workers)
        steps_per_epoch = (
            len(sampler) if config.max_steps_per_epoch <= 0 else min(len(sampler), config.max_steps_per_epoch)
        )
        checkpoint = Path(checkpoint_dir) / CHECKPOINT_NAME if checkpoint_dir is not None else None

        run = start_or_resume(
            config,
            int(data.tensors.shape[1]),
            num_classes,
            steps_per_epoch * config.epochs,
            device,
            checkpoint,
            run_key,
            log,
        )
        resumed_from, stopped_by_budget = run.epochs_done, False
        for epoch in range(run.epochs_done, config.epochs):
            if budget_spent(run.history, config):
                stopped_by_budget = True
                log(
                    f"time budget of {config.max_minutes:g} min spent after {run.epochs_done} of "
                    f"{config.epochs} epochs: training stops here"
                )
                break
            row = train_epoch(run, loader, sampler, epoch, steps_per_epoch, config, on_step)
            validation, val_seconds = None, 0.0
            due = validation_due(epoch, config)
            # The last epoch a budget allows is validated too; only scheduled validations reweight, so a cut run
            # carried on later goes the way an uncut run goes.
            if len(data.val_rows) and (due or budget_spent([*run.history, row], config)):
                val_started = time.perf_counter()
                validation = validate(run.model, data, device, config.eval_batch_size)
                val_seconds = time.perf_counter() - val_started
                if config.hard_reweight > 0 and due:
                    run.class_weights = reweight_hard_individuals(
                        run.class_weights, validation, items, config
                    )
            row.update(validation_columns(validation, val_seconds))
            row["hard_individuals_weighted"] = int((run.class_weights > 1.0 + 1e-9).sum())
            run.history.append(row)
            run.epochs_done = epoch + 1
            log(
                f"epoch {epoch + 1}/{config.epochs}: loss {row['loss']:.3f} (margin {row['margin_loss']:.3f}, "
                f"triplet {row['triplet_loss']:.3f}), {row['images_per_sec']:.0f} img/s, "
                f"val MAP@5 {row['val_map5']:.3f}"
            )
            if checkpoint is not None:
                save_checkpoint(checkpoint, checkpoint_state(run, run_key, config))

        run.model.eval()
        run.model.flip_as_new_class = config.flip_as_new_class
        return TrainingResult(
            model=run.model,
            spec=run.spec,
            history=pd.DataFrame(run.history),
            resumed_from_epoch=resumed_from,
            seconds=time.perf_counter() - started,
            classes=num_classes,
            items=len(items.rows),
            stopped_by_budget=stopped_by_budget,
            training_minutes=epoch_seconds(run.history) / 60.0,
        )


def epoch_seconds(history: list[dict]) -> float:
    """The epochs' training and validation seconds in a history (a resumed run's history holds earlier sessions')."""
    return float(
        sum(row["load_seconds"] + row["compute_seconds"] + row.get("val_seconds", 0.0) for row in history)
    )


def budget_spent(history: list[dict], config: TrainingConfig) -> bool:
    """Whether the epochs of `history` used up `config.max_minutes` (never with no budget)."""
    return config.max_minutes > 0 and epoch_seconds(history) >= config.max_minutes * 60.0


def validation_due(epoch: int, config: TrainingConfig) -> bool:
    """Every `validate_every` epochs, and always after the last."""
    return epoch == config.epochs - 1 or (epoch + 1) % max(1, config.validate_every) == 0


def validation_columns(validation: Validation | None, seconds: float) -> dict:
    """The history row's validation figures; NaN in an epoch without validation."""
    if validation is None:
        return {"val_map5": float("nan"), "val_threshold": float("nan"), "val_seconds": 0.0}
    return {"val_map5": validation.map5, "val_threshold": validation.threshold, "val_seconds": seconds}


@contextmanager
def cpu_threads(threads: int) -> Iterator[None]:
    """torch's intra-op CPU threads set to `threads` (0: left alone) inside the block, restored after it."""
    before = torch.get_num_threads()
    if threads > 0:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
