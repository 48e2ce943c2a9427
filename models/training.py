"""Metric-learning training of the fluke embedder, readable top to bottom.

Follow one batch: `PKBatchSampler` names P individuals x K photos plus some new_whale photos; `TensorBatches`
gathers them from the uint8 tensor store (no JPEG decoding) and mirrors the ones that stand for a flipped class;
on the device `augment` jitters geometry and contrast; the model embeds them; an ArcFace head (pytorch-metric-
learning) pulls each known individual towards its class centre while a mined triplet loss pushes new_whale and
other individuals away; a step with zero loss is skipped. After each epoch the model ranks the validation fold
against the training fold with `models.retrieval` (MAP@5), the checkpoint is written atomically, and (config)
individuals that validation ranked poorly are sampled more often in the next epoch. A killed run resumes from the
last checkpoint and, because every epoch reseeds its own randomness, ends where an uninterrupted run ends.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from pytorch_metric_learning import losses, miners

from core.constants import NEW_WHALE
from core.files import atomic_path
from core.metrics import map_at_5
from models.embedding import EmbeddingSpec, FlukeEmbedder, build_embedding_model, embed_images
from models.retrieval import exact_index, rank_individuals
from models.sampler import NEGATIVE, PKBatchSampler, same_label_pair_share

CHECKPOINT_NAME = "last.pt"
MINING_STRATEGIES = ("semihard", "hard", "all", "batch_hard", "none")
MARGIN_LOSSES = ("arcface", "subcenter_arcface", "none")
BLUR_MIX = 0.3  # largest share of the blurred photo mixed in (strength 1)
NOISE_STD = 0.015  # pixel noise, [0, 1] units (strength 1)


@dataclass
class TrainingConfig:
    """Every knob of a training run. The defaults are the best recipe found on the demo data (docs/training.md)."""

    # network (see EmbeddingSpec)
    backbone: str = "slim_resnet14"
    pretrained: str = ""
    embedding_dim: int = 256
    head_depth: int = 1
    head_hidden: int = 512
    norm_order: str = "after"
    pooling: str = "gem"
    dropout: float = 0.0
    input_downscale: int = 4  # the 128 x 256 crops seen at 32 x 64: patterns are coarse, CPU time is short
    # batches: P individuals x K photos + new_whale negatives
    individuals_per_batch: int = 12
    photos_per_individual: int = 4
    negatives_per_batch: int = 8
    epochs: int = 120
    max_steps_per_epoch: int = 0  # 0: a full pass over the individuals; >0 caps it (benchmarks, smoke runs)
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
    hard_reweight: float = (
        0.0  # 0: off; else weight *= 1 + hard_reweight * (1 - AP) for poorly ranked individuals
    )
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


# ---------------------------------------------------------------------------------------------------------------
# items, batches, augmentation


@dataclass
class TrainingItems:
    """One entry per (photo, mirrored?) the sampler can draw: its tensor row, whether to mirror it, its class."""

    rows: np.ndarray
    mirrored: np.ndarray
    classes: np.ndarray  # NEGATIVE (-1) for new_whale and other class-less photos
    class_names: list[str] = field(default_factory=list)


def training_items(labels: list[str], rows: np.ndarray, config: TrainingConfig) -> TrainingItems:
    labels_arr = np.asarray(labels, dtype=object)
    known = labels_arr != NEW_WHALE
    counts = pd.Series(labels_arr[known]).value_counts()
    individuals = sorted(counts.index)
    if config.drop_single_photo_individuals:
        individuals = [name for name in individuals if counts[name] > 1]
    class_of = {name: i for i, name in enumerate(individuals)}
    classes = np.array([class_of.get(label, NEGATIVE) for label in labels_arr], dtype=np.int64)
    keep = classes != NEGATIVE
    if config.use_new_whale:
        keep |= ~known
    if config.drop_single_photo_individuals:
        keep |= known  # dropped individuals' photos stay as negatives: they differ from every class
    rows, classes = np.asarray(rows)[keep], classes[keep]
    mirrored = np.zeros(len(rows), dtype=bool)
    names = list(individuals)
    if config.flip_as_new_class:
        # A mirrored fluke is another pattern: it becomes class c + C; mirrored negatives stay negatives.
        flipped_classes = np.where(classes == NEGATIVE, NEGATIVE, classes + len(individuals))
        rows = np.concatenate([rows, rows])
        classes = np.concatenate([classes, flipped_classes])
        mirrored = np.concatenate([mirrored, np.ones_like(mirrored)])
        names += [f"{name}__flipped" for name in individuals]
    return TrainingItems(rows=rows, mirrored=mirrored, classes=classes, class_names=names)


class TensorBatches(torch.utils.data.Dataset):
    """Items of the tensor store; `__getitems__` gathers a whole batch with one sorted read of the memmap."""

    def __init__(self, tensors: np.ndarray, items: TrainingItems):
        self.tensors, self.items = tensors, items

    def __len__(self) -> int:
        return len(self.items.rows)

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        indices = np.asarray(indices)
        rows = self.items.rows[indices]
        unique_rows, position = np.unique(rows, return_inverse=True)
        images = torch.from_numpy(np.array(self.tensors[unique_rows], dtype=np.uint8))[
            torch.from_numpy(position)
        ]
        mirrored = torch.from_numpy(self.items.mirrored[indices])
        if mirrored.any():
            images[mirrored] = images[mirrored].flip(-1)
        return images, torch.from_numpy(self.items.classes[indices])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        images, classes = self.__getitems__([index])
        return images[0], classes[0]


def _batch_as_is(batch):
    return batch


def batch_sampler(items: TrainingItems, config: TrainingConfig) -> PKBatchSampler:
    """P individuals x K photos (+ new_whale negatives) per batch, as the config says."""
    return PKBatchSampler(
        items.classes,
        config.individuals_per_batch,
        config.photos_per_individual,
        config.negatives_per_batch,
        seed=config.seed,
    )


def make_loader(
    tensors: np.ndarray, items: TrainingItems, sampler: PKBatchSampler, device: torch.device, workers: int = 0
) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(
        TensorBatches(tensors, items),
        batch_sampler=sampler,
        collate_fn=_batch_as_is,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )


def augment(images: torch.Tensor, generator: torch.Generator, strength: float = 1.0) -> torch.Tensor:
    """A batch (uint8, or float in [0, 1]) -> float in [0, 1], on the batch's device: rotated, scaled (more along
    one axis than the other, as a tilted fluke is foreshortened), sheared and shifted; blurred; contrast-, gamma-
    and brightness-jittered; noised. Never mirrored: a mirrored fluke is another whale."""
    x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
    if strength <= 0:
        return x
    n, device = x.shape[0], x.device

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(n, device=device, generator=generator)

    # geometry: one affine warp per photo
    angle = uniform(-10, 10) * strength * math.pi / 180
    scale_x = 1 + uniform(-0.15, 0.15) * strength
    scale_y = scale_x * (1 + uniform(-0.15, 0.15) * strength)
    shear = uniform(-0.1, 0.1) * strength
    shift_x, shift_y = uniform(-0.08, 0.08) * strength, uniform(-0.08, 0.08) * strength
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack(
        [
            torch.stack([cos / scale_x, (-sin + shear) / scale_x, shift_x], dim=1),
            torch.stack([sin / scale_y, cos / scale_y, shift_y], dim=1),
        ],
        dim=1,
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    # blur: a random mix of the photo and its 3 x 3 box-blurred self. At the reduced size a full 3 x 3 blur
    # erases the small spots that tell individuals apart (docs/training.md), so the mix stays light.
    blurred = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
    mix = (uniform(0, BLUR_MIX) * min(1.0, strength)).view(-1, 1, 1, 1)
    x = x + mix * (blurred - x)
    # photometry
    gamma = torch.exp(uniform(-0.3, 0.3) * strength).view(-1, 1, 1, 1)
    x = x.clamp(1e-4, 1).pow(gamma)
    contrast = 1 + uniform(-0.3, 0.3) * strength
    brightness = uniform(-0.1, 0.1) * strength
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * contrast.view(-1, 1, 1, 1) + mean + brightness.view(-1, 1, 1, 1)
    noise = torch.randn(x.shape, device=device, generator=generator) * (NOISE_STD * strength)
    return (x + noise).clamp_(0, 1)


# ---------------------------------------------------------------------------------------------------------------
# losses, optimiser


class EmbeddingLosses(torch.nn.Module):
    """The margin-based classification loss over known classes plus the mined triplet loss over the whole batch."""

    def __init__(self, config: TrainingConfig, num_classes: int, embedding_dim: int):
        super().__init__()
        if config.margin_loss not in MARGIN_LOSSES:
            raise ValueError(f"margin_loss must be one of {MARGIN_LOSSES}, got {config.margin_loss!r}")
        if config.mining not in MINING_STRATEGIES:
            raise ValueError(f"mining must be one of {MINING_STRATEGIES}, got {config.mining!r}")
        self.config = config
        self.margin_loss = None
        if config.margin_loss != "none" and config.margin_loss_weight > 0:
            common = dict(
                num_classes=num_classes,
                embedding_size=embedding_dim,
                margin=config.arcface_margin_degrees,
                scale=config.arcface_scale,
            )
            if config.margin_loss == "subcenter_arcface":
                self.margin_loss = losses.SubCenterArcFaceLoss(sub_centers=config.subcenters, **common)
            else:
                self.margin_loss = losses.ArcFaceLoss(**common)
        self.triplet_loss = losses.TripletMarginLoss(margin=config.triplet_margin)
        if config.mining == "batch_hard":
            self.miner = miners.BatchHardMiner()
        elif config.mining == "none":
            self.miner = None
        else:
            self.miner = miners.TripletMarginMiner(
                margin=config.triplet_margin, type_of_triplets=config.mining
            )

    def forward(self, embeddings: torch.Tensor, classes: torch.Tensor) -> dict[str, torch.Tensor]:
        embeddings = embeddings.float()  # losses in float32 even under bf16 autocast
        zero = embeddings.sum() * 0.0
        known = classes != NEGATIVE
        margin = zero
        if self.margin_loss is not None and known.any():
            margin = self.margin_loss(embeddings[known], classes[known])
        triplet, mined = zero, 0
        if self.config.triplet_weight > 0:
            # Each negative gets a label of its own: it can only ever be the negative of a triplet.
            labels = classes.clone()
            labels[~known] = (
                classes.max().clamp(min=0) + 1 + torch.arange(int((~known).sum()), device=labels.device)
            )
            triplets = self.miner(embeddings, labels) if self.miner is not None else None
            mined = len(triplets[0]) if triplets is not None else -1
            triplet = self.triplet_loss(embeddings, labels, triplets)
        total = self.config.margin_loss_weight * margin + self.config.triplet_weight * triplet
        return {
            "loss": total,
            "margin_loss": margin,
            "triplet_loss": triplet,
            "mined_triplets": torch.tensor(float(mined)),
        }


def parameter_groups(model: FlukeEmbedder, loss: EmbeddingLosses, config: TrainingConfig) -> list[dict]:
    groups = [
        {
            "name": "backbone",
            "params": list(model.backbone.parameters()),
            "lr": config.learning_rate * config.backbone_lr_scale,
        },
        {
            "name": "head",
            "params": list(model.pool.parameters()) + list(model.head.parameters()),
            "lr": config.learning_rate,
        },
        {
            "name": "loss",
            "params": list(loss.parameters()),
            "lr": config.learning_rate * config.loss_lr_scale,
        },
    ]
    return [g for g in groups if g["params"]]


def learning_rate_factor(step: int, total_steps: int, warmup_fraction: float) -> float:
    """Linear warm-up, then cosine decay to zero."""
    warmup = max(1, int(total_steps * warmup_fraction))
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
    return 0.5 * (1 + math.cos(math.pi * progress))


def train_step(
    model: FlukeEmbedder,
    loss_fn: EmbeddingLosses,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    images: torch.Tensor,
    classes: torch.Tensor,
    generator: torch.Generator,
    config: TrainingConfig,
    check_gradients: bool = False,
) -> dict[str, float]:
    """One optimisation step on a uint8 batch already on the device. A zero loss (no valid pairs, no known
    photos) skips the update and restores the BatchNorm statistics, so such a step changes nothing."""
    cuda = images.device.type == "cuda"
    buffers_before = [b.detach().clone() for b in model.buffers()]
    x = augment(model.downscale(images), generator, config.augment_strength)
    if cuda and config.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda and config.mixed_precision):
        embeddings = model(x, downscaled=True)
    parts = loss_fn(embeddings, classes)
    loss = parts["loss"]
    stats = {
        name: float(parts[name].detach())
        for name in ("loss", "margin_loss", "triplet_loss", "mined_triplets")
    }
    stats["same_label_share"] = same_label_pair_share(classes)
    stats["layers_without_gradient"] = -1
    stats["stepped"] = loss.requires_grad and stats["loss"] != 0.0
    if not stats["stepped"]:
        with torch.no_grad():
            for buffer, before in zip(model.buffers(), buffers_before):
                buffer.copy_(before)
        return stats
    parameters = [p for group in optimizer.param_groups for p in group["params"]]
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if check_gradients:
        stats["layers_without_gradient"] = sum(
            int(p.grad is None or not bool(p.grad.abs().sum() > 0)) for p in parameters
        )
    if config.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(parameters, config.grad_clip)
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    return stats


# ---------------------------------------------------------------------------------------------------------------
# validation


@dataclass
class Validation:
    map5: float
    threshold: float
    query_ap: np.ndarray  # per query: 1/rank of the truth among the five predictions (0 when absent)
    truths: list[str]


def validation_truths(query_labels: list[str], gallery_labels: list[str]) -> list[str]:
    """A validation photo of an individual absent from the gallery can only be answered `new_whale`."""
    known = set(gallery_labels) - {NEW_WHALE}
    return [label if label in known else NEW_WHALE for label in query_labels]


def rank_and_score(
    gallery: np.ndarray,
    gallery_labels: list[str],
    queries: np.ndarray,
    query_labels: list[str],
    thresholds: np.ndarray | None = None,
    neighbours: int = 50,
) -> Validation:
    """MAP@5 of nearest-neighbour identification, with the new_whale threshold tuned by a small sweep."""
    truths = validation_truths(query_labels, gallery_labels)
    keep = np.array([label != NEW_WHALE for label in gallery_labels], dtype=bool)
    gallery, labels = gallery[keep], [lab for lab, k in zip(gallery_labels, keep) if k]
    fill = pd.Series(labels).value_counts().index.tolist()[:5]
    if len(labels) == 0 or len(queries) == 0:
        rows = [[NEW_WHALE, *fill][:5] for _ in truths]
        return Validation(map_at_5(rows, truths), 1.0, _per_query_ap(rows, truths), truths)
    similarities, ids = exact_index(gallery).search(
        np.ascontiguousarray(queries, np.float32), min(neighbours, len(labels))
    )
    if thresholds is None:
        top = similarities[:, 0]
        thresholds = np.unique(np.concatenate([np.quantile(top, np.linspace(0, 1, 21)), [top.max() + 1e-3]]))
    best = None
    for threshold in thresholds:
        rows = rank_individuals(similarities, ids, labels, float(threshold), fill_labels=fill)
        score = map_at_5(rows, truths)
        if best is None or score > best[0]:
            best = (score, float(threshold), rows)
    return Validation(best[0], best[1], _per_query_ap(best[2], truths), truths)


def _per_query_ap(rows: list[list[str]], truths: list[str]) -> np.ndarray:
    return np.array([map_at_5([row], [truth]) for row, truth in zip(rows, truths)], dtype=np.float64)


def validate(
    model: FlukeEmbedder, data: TrainingData, device: torch.device, batch_size: int = 128
) -> Validation:
    gallery = embed_images(model, data.tensors[np.sort(data.train_rows)], device, batch_size)
    order = np.argsort(data.train_rows, kind="stable")
    gallery_labels = [data.train_labels[i] for i in order]
    queries = (
        embed_images(model, data.tensors[data.val_rows], device, batch_size)
        if len(data.val_rows)
        else np.zeros((0, gallery.shape[1]), np.float32)
    )
    return rank_and_score(gallery, gallery_labels, queries, data.val_labels)


def reweight_hard_individuals(
    weights: np.ndarray, validation: Validation, items: TrainingItems, config: TrainingConfig
) -> np.ndarray:
    """Raise the sampling weight of individuals whose validation photos were ranked poorly."""
    weights = weights.copy()
    class_of = {name: i for i, name in enumerate(items.class_names)}
    for truth, ap in zip(validation.truths, validation.query_ap):
        if truth == NEW_WHALE or truth not in class_of or ap >= 1.0:
            continue
        for name in (truth, f"{truth}__flipped"):
            if name in class_of:
                c = class_of[name]
                weights[c] = min(config.max_class_weight, weights[c] * (1 + config.hard_reweight * (1 - ap)))
    return weights


# ---------------------------------------------------------------------------------------------------------------
# the loop


@dataclass
class TrainingResult:
    model: FlukeEmbedder
    spec: EmbeddingSpec
    history: pd.DataFrame
    resumed_from_epoch: int
    seconds: float
    classes: int
    items: int


def _seed_epoch(config: TrainingConfig, epoch: int, device: torch.device) -> torch.Generator:
    """Every epoch draws from its own seeds, so a resumed epoch replays exactly what it would have drawn."""
    torch.manual_seed(config.seed * 1_000_003 + epoch)
    generator = torch.Generator(device=device)
    generator.manual_seed(config.seed * 7_919 + epoch)
    return generator


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
    threads_before = torch.get_num_threads()
    if device.type == "cpu" and config.cpu_threads > 0:
        torch.set_num_threads(config.cpu_threads)
    try:
        return _train_embedding(data, config, device, checkpoint_dir, run_key, on_step, log)
    finally:
        torch.set_num_threads(threads_before)


def _train_embedding(
    data: TrainingData,
    config: TrainingConfig,
    device: torch.device,
    checkpoint_dir: Path | None,
    run_key: str,
    on_step: Callable[[int, int, dict], None] | None,
    log: Callable[[str], None],
) -> TrainingResult:
    started = time.perf_counter()
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True

    # ---- data: items, sampler, loader
    items = training_items(data.train_labels, data.train_rows, config)
    num_classes = len(items.class_names)
    sampler = batch_sampler(items, config)
    loader = make_loader(data.tensors, items, sampler, device, config.loader_workers)
    steps_per_epoch = (
        len(sampler) if config.max_steps_per_epoch <= 0 else min(len(sampler), config.max_steps_per_epoch)
    )
    total_steps = steps_per_epoch * config.epochs

    # ---- model, losses, optimiser
    torch.manual_seed(config.seed)
    spec = config.embedding_spec(in_channels=int(data.tensors.shape[1]))
    model = build_embedding_model(spec).to(device)
    loss_fn = EmbeddingLosses(config, num_classes, model.embedding_dim).to(device)
    if cuda and config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(parameter_groups(model, loss_fn, config), weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: learning_rate_factor(step, total_steps, config.warmup_fraction)
    )
    class_weights = np.ones(num_classes)
    history: list[dict] = []
    first_epoch = 0

    # ---- resume from the last checkpoint of this run, if any
    checkpoint = Path(checkpoint_dir) / CHECKPOINT_NAME if checkpoint_dir is not None else None
    if checkpoint is not None and checkpoint.exists():
        state = torch.load(checkpoint, map_location=device, weights_only=False)
        if state.get("run_key") == run_key:
            model.load_state_dict(state["model"])
            loss_fn.load_state_dict(state["loss"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            class_weights = np.asarray(state["class_weights"])
            history = list(state["history"])
            first_epoch = int(state["epoch"]) + 1
            log(f"resumed from {checkpoint} after epoch {first_epoch}")
        else:
            log(f"ignoring {checkpoint}: it belongs to another run (config or data changed)")
    resumed_from = first_epoch

    for epoch in range(first_epoch, config.epochs):
        # ---- one epoch of training
        generator = _seed_epoch(config, epoch, device)
        sampler.set_epoch(epoch)
        sampler.set_class_weights(class_weights)
        model.train()
        sums = {
            "loss": 0.0,
            "margin_loss": 0.0,
            "triplet_loss": 0.0,
            "mined_triplets": 0.0,
            "same_label_share": 0.0,
        }
        steps = skipped = images_seen = 0
        load_seconds = compute_seconds = 0.0
        layers_without_gradient = -1  # parameter tensors the first step's gradient missed
        epoch_started = tick = time.perf_counter()
        for step, (images, classes) in enumerate(loader):
            if step >= steps_per_epoch:
                break
            images = images.to(device, non_blocking=cuda)
            classes = classes.to(device, non_blocking=cuda)
            now = time.perf_counter()
            load_seconds += now - tick
            tick = now

            stats = train_step(
                model,
                loss_fn,
                optimizer,
                scheduler,
                images,
                classes,
                generator,
                config,
                check_gradients=step == 0,
            )
            skipped += int(not stats["stepped"])
            if step == 0:
                layers_without_gradient = stats["layers_without_gradient"]
            stats = {k: v for k, v in stats.items() if k in sums}
            for name, value in stats.items():
                sums[name] += value
            steps += 1
            images_seen += len(images)
            now = time.perf_counter()
            compute_seconds += now - tick
            tick = now
            if on_step is not None:
                on_step(epoch, step, stats)
        train_seconds = time.perf_counter() - epoch_started

        # ---- validation, reweighting
        row = {name: value / max(1, steps) for name, value in sums.items()}
        row.update(
            epoch=epoch + 1,
            steps=steps,
            skipped_steps=skipped,
            images=images_seen,
            images_per_sec=images_seen / max(train_seconds, 1e-9),
            load_seconds=load_seconds,
            compute_seconds=compute_seconds,
            layers_without_gradient=layers_without_gradient,
            learning_rate=optimizer.param_groups[0]["lr"],
            val_map5=float("nan"),
            val_threshold=float("nan"),
            val_seconds=0.0,
        )
        last_epoch = epoch == config.epochs - 1
        if len(data.val_rows) and (last_epoch or (epoch + 1) % max(1, config.validate_every) == 0):
            val_started = time.perf_counter()
            validation = validate(model, data, device, config.eval_batch_size)
            row.update(
                val_map5=validation.map5,
                val_threshold=validation.threshold,
                val_seconds=time.perf_counter() - val_started,
            )
            if config.hard_reweight > 0:
                class_weights = reweight_hard_individuals(class_weights, validation, items, config)
        row["hard_individuals_weighted"] = int((class_weights > 1.0 + 1e-9).sum())
        history.append(row)
        log(
            f"epoch {epoch + 1}/{config.epochs}: loss {row['loss']:.3f} (margin {row['margin_loss']:.3f}, "
            f"triplet {row['triplet_loss']:.3f}), {row['images_per_sec']:.0f} img/s, "
            f"val MAP@5 {row['val_map5']:.3f}"
        )

        # ---- checkpoint, atomically
        if checkpoint is not None:
            state = {
                "run_key": run_key,
                "epoch": epoch,
                "model": model.state_dict(),
                "loss": loss_fn.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "class_weights": class_weights,
                "history": history,
                "config": config.to_dict(),
            }
            with atomic_path(checkpoint) as tmp:
                torch.save(state, tmp)

    model.eval()
    model.flip_as_new_class = config.flip_as_new_class
    return TrainingResult(
        model=model,
        spec=spec,
        history=pd.DataFrame(history),
        resumed_from_epoch=resumed_from,
        seconds=time.perf_counter() - started,
        classes=num_classes,
        items=len(items.rows),
    )
