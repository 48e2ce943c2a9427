"""The optimiser of a training run: AdamW over three parameter groups, linear warm-up then cosine decay."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from models.embedding import FlukeEmbedder
from models.losses import EmbeddingLosses

if TYPE_CHECKING:
    from models.training import TrainingConfig


def parameter_groups(model: FlukeEmbedder, loss: EmbeddingLosses, config: TrainingConfig) -> list[dict]:
    """Backbone (`backbone_lr_scale`, < 1 for pretrained ones), pooling and head, and the margin loss' class
    centres (`loss_lr_scale`: they learn faster); empty groups are left out."""
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


def build_optimizer(
    model: FlukeEmbedder, loss: EmbeddingLosses, config: TrainingConfig, total_steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW over `parameter_groups` and its schedule over `total_steps` steps."""
    optimizer = torch.optim.AdamW(parameter_groups(model, loss, config), weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: learning_rate_factor(step, total_steps, config.warmup_fraction)
    )
    return optimizer, scheduler
