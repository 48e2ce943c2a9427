"""The two baselines every quality figure of the chain stands beside, measured on the same queries in the same run.

- `frequent_whale_baseline`: one row for every query, `new_whale` then the four individuals with most photos;
  what a submission scores knowing nothing about the photo.
- `pixel_vectors`: the simplest look at the photo, grey pixels shrunk to a small grid, centred and
  L2-normalised, so that their inner product is a cosine similarity; ranked by the same rule as the embedding
  (`models.retrieval`), it is what the learned embedding has to beat.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from core.constants import NEW_WHALE, TOP
from core.metrics import map_at_5
from models.retrieval import most_frequent_labels


def frequent_whale_row(gallery_labels: Sequence[str]) -> list[str]:
    """`new_whale`, then the four known individuals with most gallery photos (ties by name)."""
    return [NEW_WHALE, *most_frequent_labels(gallery_labels, TOP - 1)]


def frequent_whale_baseline(gallery_labels: Sequence[str], truths: Sequence[str]) -> float:
    """MAP@5 of answering `frequent_whale_row` for every query."""
    row = frequent_whale_row(gallery_labels)
    return map_at_5([row] * len(truths), list(truths))


def pixel_vectors(
    tensors: np.ndarray, size: tuple[int, int] = (32, 32), rows: np.ndarray | None = None, chunk: int = 1024
) -> np.ndarray:
    """uint8 N x C x H x W images (or the `rows` of them) as grey, area-averaged to `size` (height, width),
    centred, L2-normalised float32 vectors. Reads `chunk` images at a time, so a memory-mapped store of any size
    costs one chunk of float pixels, not the whole store (33k crops at 128 x 256 would be 4 GB)."""
    rows = np.arange(len(tensors)) if rows is None else np.asarray(rows, dtype=np.int64)
    vectors = np.zeros((len(rows), size[0] * size[1]), np.float32)
    for start in range(0, len(rows), chunk):
        block = np.asarray(tensors[rows[start : start + chunk]], dtype=np.float32)
        grey = torch.from_numpy(block).mean(dim=1, keepdim=True)
        small = F.adaptive_avg_pool2d(grey, size).flatten(1)
        small = small - small.mean(dim=1, keepdim=True)
        vectors[start : start + len(block)] = F.normalize(small, dim=1, eps=1e-6).numpy()
    return vectors
