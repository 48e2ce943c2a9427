"""The training loss: a margin-based classification loss over known classes plus a mined triplet loss.

As in pytorch-metric-learning, the parts (loss functions, miner) are built by a factory (`build_losses`, from
the run's `TrainingConfig`) and handed in to `EmbeddingLosses`, which only combines them: new_whale photos
(class `NEGATIVE`) never enter the classification loss, and in the triplet loss each of them has a label of its
own, so it can only ever be the negative of a triplet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from pytorch_metric_learning import losses, miners

from models.sampler import NEGATIVE

if TYPE_CHECKING:
    from models.training import TrainingConfig

MINING_STRATEGIES = ("semihard", "hard", "all", "batch_hard", "none")
MARGIN_LOSSES = ("arcface", "subcenter_arcface", "none")


class EmbeddingLosses(torch.nn.Module):
    """`margin_weight * margin_loss(known photos) + triplet_weight * triplet_loss(batch, mined triplets)`.

    `margin_loss` None: no classification loss; `miner` None: every triplet of the batch."""

    def __init__(
        self,
        margin_loss: torch.nn.Module | None,
        triplet_loss: torch.nn.Module,
        miner: torch.nn.Module | None,
        margin_weight: float = 1.0,
        triplet_weight: float = 1.0,
    ):
        super().__init__()
        self.margin_loss, self.triplet_loss, self.miner = margin_loss, triplet_loss, miner
        self.margin_weight, self.triplet_weight = float(margin_weight), float(triplet_weight)

    def forward(self, embeddings: torch.Tensor, classes: torch.Tensor) -> dict[str, torch.Tensor]:
        embeddings = embeddings.float()  # losses in float32 even under bf16 autocast
        zero = embeddings.sum() * 0.0
        known = classes != NEGATIVE
        margin = zero
        if self.margin_loss is not None and known.any():
            margin = self.margin_loss(embeddings[known], classes[known])
        triplet, mined = zero, 0
        if self.triplet_weight > 0:
            labels = classes.clone()
            labels[~known] = (
                classes.max().clamp(min=0) + 1 + torch.arange(int((~known).sum()), device=labels.device)
            )
            triplets = self.miner(embeddings, labels) if self.miner is not None else None
            mined = len(triplets[0]) if triplets is not None else -1
            triplet = self.triplet_loss(embeddings, labels, triplets)
        total = self.margin_weight * margin + self.triplet_weight * triplet
        return {
            "loss": total,
            "margin_loss": margin,
            "triplet_loss": triplet,
            "mined_triplets": torch.tensor(float(mined)),
        }


def build_losses(config: TrainingConfig, num_classes: int, embedding_dim: int) -> EmbeddingLosses:
    """The losses and the miner the config names (`margin_loss`, `mining` and their weights and margins)."""
    if config.margin_loss not in MARGIN_LOSSES:
        raise ValueError(f"margin_loss must be one of {MARGIN_LOSSES}, got {config.margin_loss!r}")
    if config.mining not in MINING_STRATEGIES:
        raise ValueError(f"mining must be one of {MINING_STRATEGIES}, got {config.mining!r}")
    margin_loss = None
    if config.margin_loss != "none" and config.margin_loss_weight > 0:
        common = dict(
            num_classes=num_classes,
            embedding_size=embedding_dim,
            margin=config.arcface_margin_degrees,
            scale=config.arcface_scale,
        )
        if config.margin_loss == "subcenter_arcface":
            margin_loss = losses.SubCenterArcFaceLoss(sub_centers=config.subcenters, **common)
        else:
            margin_loss = losses.ArcFaceLoss(**common)
    triplet_loss = losses.TripletMarginLoss(margin=config.triplet_margin)
    if config.mining == "batch_hard":
        miner = miners.BatchHardMiner()
    elif config.mining == "none":
        miner = None
    else:
        miner = miners.TripletMarginMiner(margin=config.triplet_margin, type_of_triplets=config.mining)
    return EmbeddingLosses(
        margin_loss,
        triplet_loss,
        miner,
        margin_weight=config.margin_loss_weight,
        triplet_weight=config.triplet_weight,
    )
