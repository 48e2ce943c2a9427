"""Stage 4: the train photos later stages learn from, after removing duplicates and merging aliases, with a
validation fold.

Follow one photo: a train photo is kept only if it represents its duplicate group; its label is the group's
canonical label (so a `new_whale` duplicate of a known whale becomes that whale, and an alias becomes its
canonical id). Each individual with at least two kept photos may hold one out for validation, and a share of
the new_whale photos is held out too, so that the validation fold can tune the new_whale threshold.
Choices come from hashes of (seed, name): deterministic per seed, and adding a photo does not reshuffle the rest.
"""

import hashlib

import numpy as np
import pandas as pd
from dagster import AssetCheckResult, AssetExecutionContext, Config, DataVersion, Output, asset, asset_check

from core.constants import NEW_WHALE  # noqa: E402
from core.digests import content_version
from core.profiles import asset_version
from core.reporting import draw_photos_per_individual, figure_metadata, table_metadata

MANIFEST_COLUMNS = ["image", "label", "fold", "individual_photos"]


# ---------------------------------------------------------------------------------------------------------------
# plain functions


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


def assign_folds(
    photos: pd.DataFrame, seed: int = 0, val_individual_share: float = 1.0, val_new_whale_share: float = 0.1
) -> pd.Series:
    """'train'/'val' per row of (image, label): one photo out for a `val_individual_share` of the individuals
    with >= 2 photos, and a `val_new_whale_share` of the new_whale photos."""
    fold = pd.Series("train", index=photos.index, dtype=object)
    known = photos[photos["label"] != NEW_WHALE]
    counts = known["label"].value_counts()
    eligible = sorted(counts[counts >= 2].index, key=lambda label: (_draw(seed, label), label))
    chosen = set(eligible[: _share_count(len(eligible), val_individual_share)])
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
    fold[ranked[: _share_count(len(ranked), val_new_whale_share)]] = "val"
    return fold


def build_training_manifest(
    groups: pd.DataFrame, seed: int = 0, val_individual_share: float = 1.0, val_new_whale_share: float = 0.1
) -> pd.DataFrame:
    """The training manifest: image, label (canonical), fold, individual_photos (kept photos of that
    individual; 1 for new_whale, each of which is its own unknown)."""
    photos = deduplicated_train_photos(groups)
    photos["fold"] = assign_folds(photos, seed, val_individual_share, val_new_whale_share)
    per_label = photos["label"].map(photos["label"].value_counts()).astype(np.int64)
    photos["individual_photos"] = per_label.where(photos["label"] != NEW_WHALE, 1).astype(np.int64)
    return photos[MANIFEST_COLUMNS].reset_index(drop=True)


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


# ---------------------------------------------------------------------------------------------------------------
# Dagster


class TrainingManifestConfig(Config):
    seed: int = 0
    """Seed of the validation split; the same seed gives the same folds."""
    val_individual_share: float = 1.0
    """Share of the individuals with >= 2 photos that hold one photo out for validation."""
    val_new_whale_share: float = 0.1
    """Share of the new_whale photos held out (at least one), so the new_whale threshold can be tuned."""


@asset(
    code_version=asset_version("training_manifest", "training_manifest-1"),
    group_name="dedup",
    description="One row per usable train photo (duplicates removed, aliases merged) with a validation fold.",
)
def training_manifest(
    context: AssetExecutionContext,
    config: TrainingManifestConfig,
    raw_images: dict,
    duplicate_groups: dict,
) -> Output[pd.DataFrame]:
    manifest = build_training_manifest(
        duplicate_groups["groups"], config.seed, config.val_individual_share, config.val_new_whale_share
    )
    raw_train = int((raw_images["images"]["split"] == "train").sum())
    stats = manifest_statistics(manifest, raw_train)
    context.log.info(
        f"{stats['photos']} photos ({stats['val_photos']} val) after removing "
        f"{stats['removed_as_duplicates']} duplicates"
    )
    per_id = manifest.loc[manifest["label"] != NEW_WHALE, "label"].value_counts()

    def photos_per_individual(ax):
        draw_photos_per_individual(ax, per_id, "train photos of the individual after de-duplication")

    metadata = {
        **stats,
        "photos_per_individual": figure_metadata(
            photos_per_individual,
            f"How many distinct photos does each whale keep? {per_id.size} individuals, "
            f"{int((per_id == 1).sum())} with one photo",
        ),
        "val_sample": table_metadata(manifest[manifest["fold"] == "val"].head(10)),
    }
    return Output(manifest, metadata=metadata, data_version=DataVersion(content_version(manifest)))


@asset_check(
    asset=training_manifest,
    description="Every known individual in the validation fold also has a photo in the training fold.",
)
def training_manifest_val_individuals_trained(training_manifest: pd.DataFrame) -> AssetCheckResult:
    known = training_manifest[training_manifest["label"] != NEW_WHALE]
    trained = set(known.loc[known["fold"] == "train", "label"])
    unseen = sorted(set(known.loc[known["fold"] == "val", "label"]) - trained)
    repeated = int(training_manifest["image"].duplicated().sum())
    return AssetCheckResult(
        passed=not unseen and repeated == 0,
        metadata={
            "val_individuals_without_train_photo": len(unseen),
            "repeated_images": repeated,
            "examples": ", ".join(unseen[:10]),
        },
    )
