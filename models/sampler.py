"""P individuals x K photos per batch, with per-individual sampling weights and new_whale photos as extra negatives.

pytorch-metric-learning's `MPerClassSampler` draws classes uniformly and has no notion of class-less photos, so
this small sampler does what the training needs:

- an epoch visits every individual (class) about `weight` times, where the weights average 1: with equal weights
  every individual appears exactly once per epoch; raising a hard individual's weight makes it appear more often;
- each appearance brings K photos of that individual: K distinct ones when it has that many, otherwise all of its
  photos and repeats (the repeats differ after augmentation, so one-photo individuals still give positive pairs);
- `negatives_per_batch` photos with class -1 (new_whale) ride along as negatives; they are never a class;
- the draw depends only on (seed, epoch, weights), so a resumed run replays the same batches.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence

import numpy as np
import torch

NEGATIVE = -1


class PKBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Batches of item indices: P classes x K items, then the negatives. Call `set_epoch` before each epoch."""

    def __init__(
        self,
        item_classes: Sequence[int],
        p: int,
        k: int,
        negatives_per_batch: int = 0,
        seed: int = 0,
        class_weights: np.ndarray | None = None,
    ):
        self.item_classes = np.asarray(item_classes, dtype=np.int64)
        if p < 1 or k < 1:
            raise ValueError(f"P and K must be positive, got P={p} K={k}")
        self.p, self.k, self.seed = int(p), int(k), int(seed)
        known = self.item_classes[self.item_classes != NEGATIVE]
        self.num_classes = int(known.max()) + 1 if known.size else 0
        self.items_by_class = [np.flatnonzero(self.item_classes == c) for c in range(self.num_classes)]
        self.classes = np.array(
            [c for c, items in enumerate(self.items_by_class) if len(items)], dtype=np.int64
        )
        self.negatives = np.flatnonzero(self.item_classes == NEGATIVE)
        self.negatives_per_batch = min(int(negatives_per_batch), len(self.negatives))
        self.epoch = 0
        self.set_class_weights(class_weights)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def set_class_weights(self, weights: np.ndarray | None) -> None:
        """Relative sampling weight per class id (length num_classes); renormalised to mean 1 over used classes."""
        full = np.ones(self.num_classes) if weights is None else np.asarray(weights, dtype=np.float64).copy()
        if full.shape != (self.num_classes,) or np.any(full < 0):
            raise ValueError(f"class weights must be {self.num_classes} non-negative numbers")
        used = full[self.classes]
        full[self.classes] = used / used.mean() if used.size and used.mean() > 0 else 1.0
        self.class_weights = full

    @property
    def batch_size(self) -> int:
        return min(self.p, self.classes.size) * self.k + self.negatives_per_batch

    def _class_slots(self, rng: np.random.Generator) -> list[int]:
        """Each class `floor(w)` times plus once more with probability `w - floor(w)`, shuffled."""
        weights = self.class_weights[self.classes]
        counts = np.floor(weights).astype(np.int64)
        counts += rng.random(weights.size) < (weights - counts)
        slots = np.repeat(self.classes, counts)
        rng.shuffle(slots)
        return slots.tolist()

    def _batches_of_classes(self, rng: np.random.Generator) -> list[list[int]]:
        p = min(self.p, self.classes.size)
        pending = deque(self._class_slots(rng))
        batches: list[list[int]] = []
        while pending:
            batch: list[int] = []
            deferred: list[int] = []
            while pending and len(batch) < p:
                cls = pending.popleft()
                (deferred if cls in batch else batch).append(cls)
            pending.extendleft(reversed(deferred))
            if len(batch) < p:  # the last batch: top up with other classes so every batch has P classes
                others = np.setdiff1d(self.classes, batch)
                batch += rng.choice(others, size=p - len(batch), replace=False).tolist()
            batches.append(batch)
        return batches

    def _photos_of(self, cls: int, rng: np.random.Generator) -> list[int]:
        items = self.items_by_class[cls]
        if len(items) >= self.k:
            return rng.choice(items, size=self.k, replace=False).tolist()
        repeats = rng.choice(items, size=self.k - len(items), replace=True)
        return rng.permutation(np.concatenate([items, repeats])).tolist()

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        class_batches = self._batches_of_classes(rng)
        negative_order = rng.permutation(self.negatives)
        cursor = 0
        for classes in class_batches:
            batch = [item for cls in classes for item in self._photos_of(cls, rng)]
            if self.negatives_per_batch:
                if cursor + self.negatives_per_batch > len(negative_order):
                    negative_order, cursor = rng.permutation(self.negatives), 0
                batch += negative_order[cursor : cursor + self.negatives_per_batch].tolist()
                cursor += self.negatives_per_batch
            yield batch

    def __len__(self) -> int:
        # Expected number of batches; the exact count varies by one or two with fractional weights.
        # No class (every photo new_whale): one empty pass, so an epoch runs no step and still validates.
        return max(
            1, int(np.ceil(self.class_weights[self.classes].sum() / max(1, min(self.p, self.classes.size))))
        )


def same_label_pair_share(labels: np.ndarray | torch.Tensor) -> float:
    """Share of the batch's unordered pairs whose two photos have the same class (negatives never match)."""
    labels = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels)
    n = labels.size
    if n < 2:
        return 0.0
    known = labels[labels != NEGATIVE]
    _, counts = np.unique(known, return_counts=True)
    same = int((counts * (counts - 1) // 2).sum())
    return same / (n * (n - 1) / 2)
