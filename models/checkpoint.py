"""One checkpoint dict per training run: what it holds, how a run starts or resumes from it, and how it is saved.

The dict (as in nanoGPT's train.py) holds the run key, the last finished epoch, the state of the model, the
loss (its class centres), the optimiser and the schedule, the per-class sampling weights, the history so far and
the config. It holds only tensors and plain Python values, so it is read with `torch.load(weights_only=True)`:
a file that would need to unpickle anything else is refused and the run starts afresh. It is written atomically
and sealed (`core.files.sealed_write`: a `last.pt.sha256` sidecar), so a run killed mid-write leaves the previous
epoch's checkpoint whole, and a checkpoint damaged since (truncated, overwritten) is named, moved aside and the run
starts afresh instead of failing every retry. A checkpoint written before seals is accepted when it loads, and
sealed as it is.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from core.files import check_seal, quarantine, seal_file, sealed_write
from models.embedding import EmbeddingSpec, FlukeEmbedder, build_embedding_model
from models.losses import EmbeddingLosses, build_losses
from models.optimizer import build_optimizer

if TYPE_CHECKING:
    from models.training import TrainingConfig

CHECKPOINT_NAME = "last.pt"
logger = logging.getLogger("flukeid.checkpoint")


@dataclass
class TrainingRun:
    """A run in progress: what the checkpoint saves, and `epochs_done`, the epoch the loop goes on from."""

    spec: EmbeddingSpec
    model: FlukeEmbedder
    loss_fn: EmbeddingLosses
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    class_weights: np.ndarray
    history: list[dict] = field(default_factory=list)
    epochs_done: int = 0


def new_run(
    config: TrainingConfig, in_channels: int, num_classes: int, total_steps: int, device: torch.device
) -> TrainingRun:
    """A fresh run: the network and the loss initialised from `config.seed`, an optimiser with no steps."""
    torch.manual_seed(config.seed)
    spec = config.embedding_spec(in_channels=in_channels)
    model = build_embedding_model(spec).to(device)
    loss_fn = build_losses(config, num_classes, model.embedding_dim).to(device)
    if device.type == "cuda" and config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer, scheduler = build_optimizer(model, loss_fn, config, total_steps)
    return TrainingRun(spec, model, loss_fn, optimizer, scheduler, class_weights=np.ones(num_classes))


def start_or_resume(
    config: TrainingConfig,
    in_channels: int,
    num_classes: int,
    total_steps: int,
    device: torch.device,
    checkpoint: Path | None,
    run_key: str,
    log: Callable[[str], None] = print,
) -> TrainingRun:
    """A fresh run, carried on from `checkpoint` when that file is a checkpoint of this run (same run key)."""
    run = new_run(config, in_channels, num_classes, total_steps, device)
    if checkpoint is None or not Path(checkpoint).exists():
        return run
    state = load_checkpoint(checkpoint, device, log=log)
    if state is None:
        log(f"ignoring {checkpoint}: the run starts afresh")
    elif state.get("run_key") != run_key:
        log(f"ignoring {checkpoint}: it belongs to another run (config or data changed)")
    else:
        resume(run, state)
        log(f"resumed from {checkpoint} after epoch {run.epochs_done}")
    return run


def checkpoint_state(run: TrainingRun, run_key: str, config: TrainingConfig) -> dict:
    """The one checkpoint dict, after epoch `run.epochs_done` (counted from 1)."""
    return {
        "run_key": run_key,
        "epoch": run.epochs_done - 1,  # the last finished epoch, counted from 0
        "model": run.model.state_dict(),
        "loss": run.loss_fn.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "class_weights": [float(w) for w in run.class_weights],  # plain floats: float64 round-trips exactly
        "history": run.history,
        "config": config.to_dict(),
    }


def resume(run: TrainingRun, state: dict) -> None:
    """Put a checkpoint dict's states into `run` (in place)."""
    run.model.load_state_dict(state["model"])
    run.loss_fn.load_state_dict(state["loss"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    run.class_weights = np.asarray(state["class_weights"], dtype=np.float64)
    run.history = list(state["history"])
    run.epochs_done = int(state["epoch"]) + 1


def save_checkpoint(path: Path, state: dict) -> None:
    """Write the dict to `path` atomically and sealed: a reader sees the previous checkpoint or this one, never
    half, and its sidecar vouches for whichever it sees."""
    with sealed_write(Path(path)) as tmp:
        torch.save(state, tmp)


def load_checkpoint(
    path: Path, device: torch.device | str = "cpu", log: Callable[[str], None] | None = None
) -> dict | None:
    """The checkpoint dict at `path`, its tensors on `device`; None when the file needs arbitrary unpickling
    (a pickled object, or a checkpoint of the earlier format with numpy arrays), which is never run, and None when
    it is damaged (its digest does not match, or it does not load), after moving it aside."""
    path = Path(path)
    log = log or logger.warning
    state = check_seal(path)
    if state not in ("ok", "unsealed"):
        quarantine(path, state, log)
        return None
    try:
        loaded = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError:
        log(f"refusing {path}: it holds more than tensors and plain values (never unpickled)")
        return None
    except Exception as error:  # RuntimeError (PytorchStreamReader), EOFError...: a torn or garbled file
        quarantine(path, f"unreadable ({type(error).__name__}: {error})", log)
        return None
    if state == "unsealed":
        seal_file(path)  # written before seals, and it loads: vouched for from now on
    return loaded
