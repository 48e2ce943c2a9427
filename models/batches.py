"""From labelled tensor rows to batches: the items the sampler draws, the P x K sampler, the loader.

Follow one batch: `training_items` lists every (photo, mirrored?) the training can draw with its class
(`NEGATIVE` for new_whale); `PKBatchSampler` (models/sampler.py) names P classes x K items plus some negatives;
`TensorBatches` gathers them from the uint8 tensor store with one sorted read (no JPEG decoding) and mirrors the
items that stand for a flipped class.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from core.constants import NEW_WHALE
from models.sampler import NEGATIVE, PKBatchSampler

if TYPE_CHECKING:
    from models.training import TrainingConfig


@dataclass
class TrainingItems:
    """One entry per (photo, mirrored?) the sampler can draw: its tensor row, whether to mirror it, its class."""

    rows: np.ndarray
    mirrored: np.ndarray
    classes: np.ndarray  # NEGATIVE (-1) for new_whale and other class-less photos
    class_names: list[str] = field(default_factory=list)


def training_items(labels: list[str], rows: np.ndarray, config: TrainingConfig) -> TrainingItems:
    """Every known individual is a class (sorted by name); new_whale photos are negatives (`use_new_whale`);
    `drop_single_photo_individuals` and `flip_as_new_class` as the config says."""
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
    """Whole batches as `TensorBatches` gathers them (no per-item collation), pinned for a CUDA device."""
    return torch.utils.data.DataLoader(
        TensorBatches(tensors, items),
        batch_sampler=sampler,
        collate_fn=_batch_as_is,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )
