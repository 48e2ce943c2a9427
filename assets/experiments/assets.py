"""Dagster definitions of the experiments stage: `experiment_variants` (observed), `experiment_run` (one partition
per variant and seed) and `experiment_comparison`, built from the experiments file by `experiment_assets`.

Staleness per partition: Dagster's code version is one per asset, so a variant's settings reach its partitions as
data instead. `experiment_variants` is a partitioned observable source whose data version per partition is the
digest of everything that partition trains and scores with (`PartitionSettings.version`); `experiment_run`
depends on it partition by partition, so after an edit of the file and an observation only the partitions whose
settings changed are stale. A change upstream (new crops, another manifest) makes every partition stale.
"""

import base64
from dataclasses import replace

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetIn,
    DataVersion,
    DataVersionsByPartition,
    MetadataValue,
    MultiPartitionsDefinition,
    Output,
    StaticPartitionsDefinition,
    asset,
    observable_source_asset,
)

from assets.experiments.artifact import build_comparison
from assets.experiments.comparison import verdicts_of
from assets.experiments.run import CODE_VERSION, PartitionRun, run_partition
from assets.experiments.settings import Experiments, load_experiments, partition_settings
from assets.experiments.texts import question_markdown
from assets.identify.gallery import inlier_cache, match_cache
from core.constants import EXPERIMENTS_GROUP
from core.dagster_types import ExperimentComparison, ExperimentRun, FlukeKeypoints, FlukeTensors, RawImages
from core.digests import content_version, stable_digest
from core.profiles import active_profile
from core.reporting import png_metadata, table_metadata
from core.resources import ComputeDevice, FlukeData, FlukeStorage

VARIANT, SEED = "variant", "seed"
COMPARISON_VERSION = "experiment_comparison-2"  # -2: a verdict per metric


def experiment_partitions(experiments: Experiments) -> MultiPartitionsDefinition:
    """variant (`<experiment>.<variant>`) x seed; a key reads `<seed>|<experiment>.<variant>` (Dagster orders the
    dimensions by name)."""
    return MultiPartitionsDefinition(
        {
            VARIANT: StaticPartitionsDefinition(experiments.variant_keys()),
            SEED: StaticPartitionsDefinition(list(experiments.seeds)),
        }
    )


def run_metadata(run: PartitionRun) -> dict:
    summary = run.value["summary"]
    metrics, training = summary["metrics"], summary["training_run"]
    return {
        **{name: metrics[name] for name in ("map5", "map5_known", "map5_new_whale", "map5_embedding_only")},
        **{name: metrics[name] for name in ("recall@1", "recall@5", "recall@20", "hit_rank_1")},
        "train_seconds": metrics["train_seconds"],
        "epochs": metrics["epochs"],
        "stopped_by_budget": bool(training["stopped_by_budget"]),
        "max_minutes": float(training["max_minutes"]),
        "score_seconds": round(run.score_seconds, 1),
        "decided_by": summary["decided_by"],
        "per_rank": table_metadata(run.value["per_rank"].round(4)),
        "overrides": MetadataValue.json(summary["overrides"]),
        "training_config": MetadataValue.json(summary["training"]),
        "run_key": training["run_key"],
    }


def comparison_metadata(value: ExperimentComparison, experiments: Experiments) -> dict:
    """Per question its table and verdict, and its plot; then the verdicts side by side."""
    metadata = {}
    for experiment in experiments.experiments:
        mine = verdicts_of(value["verdicts"], experiment.name)
        section = question_markdown(experiment, value["variants"], mine, experiments.metrics)
        metadata[experiment.name] = MetadataValue.md(section)
        png = base64.b64decode(value["plots"][experiment.name])
        metadata[f"{experiment.name}_plot"] = png_metadata(
            png, alt=f"{experiment.question}: {mine['text'].iloc[0]}"
        )
    columns = ["experiment", "metric", "best", "recipe_mean", "best_mean", "gap", "spread", "given"]
    verdicts = value["verdicts"][columns]
    info = value["info"]
    return {
        **metadata,
        "verdicts": table_metadata(verdicts.round(4)),
        "partitions_materialized": info["materialized"],
        "partitions_expected": info["expected"],
        "verdicts_given": int(value["verdicts"]["given"].sum()),
    }


def experiment_assets(experiments: Experiments) -> list:
    """The stage's three definitions for one experiments file (tests build them for a file of their own)."""
    partitions = experiment_partitions(experiments)

    @observable_source_asset(
        name="experiment_variants",
        partitions_def=partitions,
        group_name=EXPERIMENTS_GROUP,
        description=f"The variants of {experiments.path}, one version per partition (its resolved settings).",
    )
    def experiment_variants() -> DataVersionsByPartition:
        versions = {}
        for key in partitions.get_partition_keys():
            dims = key.keys_by_dimension
            versions[key] = partition_settings(experiments, dims[VARIANT], dims[SEED]).version
        return DataVersionsByPartition(versions)

    @asset(
        name="experiment_run",
        partitions_def=partitions,
        deps=[experiment_variants],
        code_version=CODE_VERSION,
        group_name=EXPERIMENTS_GROUP,
        description="One variant trained with one seed within its time budget, scored as validation_report scores "
        "the chain's model: MAP@5 (known, new_whale), recall@k, hits per rank, training time.",
    )
    def experiment_run(
        context: AssetExecutionContext,
        data: FlukeData,
        storage: FlukeStorage,
        device: ComputeDevice,
        fluke_tensors: FlukeTensors,
        training_manifest: pd.DataFrame,
        raw_images: RawImages,
        fluke_keypoints: FlukeKeypoints,
    ) -> Output[ExperimentRun]:
        dims = context.partition_key.keys_by_dimension
        settings = partition_settings(experiments, dims[VARIANT], dims[SEED])
        run = run_partition(
            settings,
            fluke_tensors,
            training_manifest,
            raw_images,
            fluke_keypoints,
            data.root,
            device.torch_device(),
            storage.work_dir("experiments"),
            inlier_cache(storage.cache_dir),
            match_cache(storage.cache_dir),
            log=context.log.info,
        )
        context.log.info(f"{settings.variant.key} seed {settings.seed}: {run.value['summary']['metrics']}")
        return Output(
            run.value, metadata=run_metadata(run), data_version=DataVersion(content_version(run.value))
        )

    @asset(
        name="experiment_comparison",
        ins={"runs": AssetIn("experiment_run")},
        # The file's questions and notes are in the tables: an edit of the file makes the comparison stale.
        code_version=f"{COMPARISON_VERSION}+{stable_digest(repr(replace(experiments, path='')))[:8]}",
        group_name=EXPERIMENTS_GROUP,
        description="Every materialized experiment_run partition, per question: the variants side by side, mean "
        "and spread over seeds, a plot, and a verdict only where the gap exceeds the spread.",
    )
    def experiment_comparison(
        context: AssetExecutionContext, data: FlukeData, runs: dict
    ) -> Output[ExperimentComparison]:
        expected = list(partitions.get_partition_keys())
        value = build_comparison(runs, experiments, expected, active_profile(), str(data.root))
        missing = value["info"]["missing"]
        if missing:
            context.log.warning(
                f"{len(missing)} of {len(expected)} partitions not materialized: {missing[:5]}"
            )
        return Output(
            value,
            metadata=comparison_metadata(value, experiments),
            data_version=DataVersion(content_version(value)),
        )

    return [experiment_variants, experiment_run, experiment_comparison]


experiment_variants, experiment_run, experiment_comparison = experiment_assets(load_experiments())
