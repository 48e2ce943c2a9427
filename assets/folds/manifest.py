"""The train photos later stages learn from, after removing duplicates and merging aliases, with a validation
fold.

Follow one photo: a train photo is kept only if it represents its duplicate group; its label is the group's
canonical label (so a `new_whale` duplicate of a known whale becomes that whale, and an alias becomes its
canonical id). Each individual with at least two kept photos may hold one out for validation, and a share of
the new_whale photos is held out too, so that the validation fold can tune the new_whale threshold.
Choices come from hashes of (seed, name): deterministic per seed, and adding a photo does not reshuffle the rest.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.artifacts import TRAINING_MANIFEST_COLUMNS
from core.constants import NEW_WHALE


@dataclass(frozen=True)
class FoldSettings:
    """How the validation fold is drawn."""

    seed: int = 0  # the same seed gives the same folds
    val_individual_share: float = 1.0  # share of the individuals with >= 2 photos that hold one photo out
    val_new_whale_share: float = 0.1  # share of the new_whale photos held out (at least one)


def _draw(seed: int, name: str) -> int:
    """A per-name pseudo-random number: stable across runs and independent of which other names exist."""
    return int.from_bytes(hashlib.sha256(f"{seed}\0{name}".encode()).digest()[:8], "big")


def _share_count(total: int, share: float) -> int:
    """round(total * share), but at least one when the share and the total are positive."""
    if total == 0 or share <= 0:
        return 0
    return min(total, max(1, int(round(total * share))))


def deduplicated_train_photos(groups: pd.DataFrame) -> pd.DataFrame:
    """One (image, label) per duplicate group that holds train photos: its representative, with the group's
    canonical label."""
    kept = groups[(groups["split"] == "train") & groups["representative"]]
    return kept[["image", "label"]].sort_values("image").reset_index(drop=True)


def assign_folds(photos: pd.DataFrame, settings: FoldSettings = FoldSettings()) -> pd.Series:
    """'train'/'val' per row of (image, label): one photo out for a `val_individual_share` of the individuals
    with >= 2 photos, and a `val_new_whale_share` of the new_whale photos."""
    seed = settings.seed
    fold = pd.Series("train", index=photos.index, dtype=object)
    known = photos[photos["label"] != NEW_WHALE]
    counts = known["label"].value_counts()
    eligible = sorted(counts[counts >= 2].index, key=lambda label: (_draw(seed, label), label))
    chosen = set(eligible[: _share_count(len(eligible), settings.val_individual_share)])
    for _, members in known[known["label"].isin(chosen)].groupby("label"):
        held_out = min(
            members.index, key=lambda row: (_draw(seed, members.at[row, "image"]), members.at[row, "image"])
        )
        fold[held_out] = "val"
    new_whales = photos[photos["label"] == NEW_WHALE]
    ranked = sorted(
        new_whales.index,
        key=lambda row: (_draw(seed, new_whales.at[row, "image"]), new_whales.at[row, "image"]),
    )
    fold[ranked[: _share_count(len(ranked), settings.val_new_whale_share)]] = "val"
    return fold


def build_training_manifest(groups: pd.DataFrame, settings: FoldSettings = FoldSettings()) -> pd.DataFrame:
    """The training manifest: image, label (canonical), fold, individual_photos (kept photos of that
    individual; 1 for new_whale, each of which is its own unknown)."""
    photos = deduplicated_train_photos(groups)
    photos["fold"] = assign_folds(photos, settings)
    per_label = photos["label"].map(photos["label"].value_counts()).astype(np.int64)
    photos["individual_photos"] = per_label.where(photos["label"] != NEW_WHALE, 1).astype(np.int64)
    return photos[TRAINING_MANIFEST_COLUMNS].reset_index(drop=True)


def manifest_statistics(manifest: pd.DataFrame, raw_train_photos: int) -> dict[str, int | float]:
    val = manifest[manifest["fold"] == "val"]
    known = manifest[manifest["label"] != NEW_WHALE]
    return {
        "photos": int(len(manifest)),
        "removed_as_duplicates": int(raw_train_photos - len(manifest)),
        "train_photos": int((manifest["fold"] == "train").sum()),
        "val_photos": int(len(val)),
        "val_known": int((val["label"] != NEW_WHALE).sum()),
        "val_new_whale": int((val["label"] == NEW_WHALE).sum()),
        "val_new_whale_share": round(float((val["label"] == NEW_WHALE).mean()) if len(val) else 0.0, 4),
        "individuals": int(known["label"].nunique()),
        "individuals_with_2plus_photos": int((known["label"].value_counts() >= 2).sum()),
        "new_whale_photos": int((manifest["label"] == NEW_WHALE).sum()),
    }


def known_photos_per_individual(manifest: pd.DataFrame) -> pd.Series:
    """label -> kept photos, for the known individuals."""
    return manifest.loc[manifest["label"] != NEW_WHALE, "label"].value_counts()


def untrained_val_individuals(manifest: pd.DataFrame) -> dict[str, int | str]:
    """What `training_manifest_val_individuals_trained` checks: known individuals in the validation fold with no
    photo in the training fold, and images listed twice."""
    known = manifest[manifest["label"] != NEW_WHALE]
    trained = set(known.loc[known["fold"] == "train", "label"])
    unseen = sorted(set(known.loc[known["fold"] == "val", "label"]) - trained)
    return {
        "val_individuals_without_train_photo": len(unseen),
        "repeated_images": int(manifest["image"].duplicated().sum()),
        "examples": ", ".join(unseen[:10]),
    }
