"""Dagster definitions of the folds stage: `training_manifest` and its check."""

from functools import partial

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    Config,
    DataVersion,
    Output,
    asset,
    asset_check,
)
from pydantic import Field

from assets.folds.manifest import (
    FoldSettings,
    build_training_manifest,
    known_photos_per_individual,
    manifest_statistics,
    untrained_val_individuals,
)
from core.dagster_types import DuplicateGroups, RawImages
from core.digests import content_version
from core.profiles import asset_version
from core.reporting import draw_photos_per_individual, figure_metadata, table_metadata


class TrainingManifestConfig(Config):
    seed: int = Field(
        default=FoldSettings.seed,
        ge=0,
        description="Seed of the validation split; the same seed gives the same folds.",
    )
    val_individual_share: float = Field(
        default=FoldSettings.val_individual_share,
        ge=0.0,
        le=1.0,
        description="Share of the individuals with >= 2 photos that hold one photo out for validation.",
    )
    val_new_whale_share: float = Field(
        default=FoldSettings.val_new_whale_share,
        ge=0.0,
        le=1.0,
        description="Share of the new_whale photos held out (at least one), so the new_whale threshold can be tuned.",
    )

    def settings(self) -> FoldSettings:
        return FoldSettings(
            seed=self.seed,
            val_individual_share=self.val_individual_share,
            val_new_whale_share=self.val_new_whale_share,
        )


def training_manifest_metadata(manifest: pd.DataFrame, stats: dict) -> dict:
    """The fold counts, how many photos each whale keeps, and a sample of the validation fold."""
    per_id = known_photos_per_individual(manifest)
    return {
        **stats,
        "photos_per_individual": figure_metadata(
            partial(
                draw_photos_per_individual,
                photos_per_individual=per_id,
                xlabel="train photos of the individual after de-duplication",
            ),
            f"How many distinct photos does each whale keep? {per_id.size} individuals, "
            f"{int((per_id == 1).sum())} with one photo",
        ),
        "val_sample": table_metadata(manifest[manifest["fold"] == "val"].head(10)),
    }


@asset(
    code_version=asset_version("training_manifest", "training_manifest-1"),
    group_name="dedup",
    description="One row per usable train photo (duplicates removed, aliases merged) with a validation fold.",
)
def training_manifest(
    context: AssetExecutionContext,
    config: TrainingManifestConfig,
    raw_images: RawImages,
    duplicate_groups: DuplicateGroups,
) -> Output[pd.DataFrame]:
    manifest = build_training_manifest(duplicate_groups["groups"], config.settings())
    raw_train = int((raw_images["images"]["split"] == "train").sum())
    stats = manifest_statistics(manifest, raw_train)
    context.log.info(
        f"{stats['photos']} photos ({stats['val_photos']} val) after removing "
        f"{stats['removed_as_duplicates']} duplicates"
    )
    metadata = training_manifest_metadata(manifest, stats)
    return Output(manifest, metadata=metadata, data_version=DataVersion(content_version(manifest)))


@asset_check(
    asset=training_manifest,
    description="Every known individual in the validation fold also has a photo in the training fold.",
)
def training_manifest_val_individuals_trained(training_manifest: pd.DataFrame) -> AssetCheckResult:
    found = untrained_val_individuals(training_manifest)
    return AssetCheckResult(
        passed=found["val_individuals_without_train_photo"] == 0 and found["repeated_images"] == 0,
        metadata=found,
    )
