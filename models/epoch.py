"""One epoch of training: seeded draws, then one optimisation step per batch, summed into a history row.

Follow one step: the uint8 batch is moved to the device, downscaled by the model and augmented there
(`models.augment`), embedded (bf16 autocast on CUDA), and scored by the losses; a step with zero loss (no valid
pair, no known photo) is skipped with the BatchNorm statistics restored, so it changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from models.augment import augment
from models.checkpoint import TrainingRun
from models.embedding import FlukeEmbedder
from models.losses import EmbeddingLosses
from models.sampler import PKBatchSampler, same_label_pair_share

if TYPE_CHECKING:
    from models.training import TrainingConfig

# The per-step figures averaged into the epoch's history row.
STEP_FIGURES = ("loss", "margin_loss", "triplet_loss", "mined_triplets", "same_label_share")


def seed_epoch(config: TrainingConfig, epoch: int, device: torch.device) -> torch.Generator:
    """Every epoch draws from its own seeds, so a resumed epoch replays exactly what it would have drawn."""
    torch.manual_seed(config.seed * 1_000_003 + epoch)
    generator = torch.Generator(device=device)
    generator.manual_seed(config.seed * 7_919 + epoch)
    return generator


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


def train_epoch(
    run: TrainingRun,
    loader: torch.utils.data.DataLoader,
    sampler: PKBatchSampler,
    epoch: int,
    steps_per_epoch: int,
    config: TrainingConfig,
    on_step: Callable[[int, int, dict], None] | None = None,
) -> dict:
    """Train `run` for epoch `epoch` (counted from 0); returns its history row: the mean step figures, counts,
    throughput and where the time went, the learning rate at the end."""
    device = next(run.model.parameters()).device
    cuda = device.type == "cuda"
    generator = seed_epoch(config, epoch, device)
    sampler.set_epoch(epoch)
    sampler.set_class_weights(run.class_weights)
    run.model.train()
    sums = dict.fromkeys(STEP_FIGURES, 0.0)
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
            run.model,
            run.loss_fn,
            run.optimizer,
            run.scheduler,
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
    return {
        **{name: value / max(1, steps) for name, value in sums.items()},
        "epoch": epoch + 1,
        "steps": steps,
        "skipped_steps": skipped,
        "images": images_seen,
        "images_per_sec": images_seen / max(train_seconds, 1e-9),
        "load_seconds": load_seconds,
        "compute_seconds": compute_seconds,
        "layers_without_gradient": layers_without_gradient,
        "learning_rate": run.optimizer.param_groups[0]["lr"],
    }
