"""Dagster definitions of the identify stage: `gallery_index`, `validation_report`, `submission` and their
checks. Each asset reads its inputs, makes one call into the stage's plain code and describes the result."""

import time
from collections.abc import Iterator

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetIn,
    AssetOut,
    Config,
    DataVersion,
    MetadataValue,
    Output,
    asset,
    asset_check,
    multi_asset,
)
from pydantic import Field

from assets.identify.checks import (
    beats_frequent_whale_baseline,
    complete,
    gallery_individuals,
    labels_known,
    matches_truth,
    well_formed,
)
from assets.identify.decision import MATCH_COLUMNS
from assets.identify.gallery import (
    CachedEmbedder,
    GallerySettings,
    embedding_cache,
    gallery_flip,
    index_gallery,
    inlier_cache,
    match_cache,
)
from assets.identify.metadata import gallery_metadata, report_metadata, submission_metadata
from assets.identify.report import (
    ReportSettings,
    validate,
)
from assets.identify.submission import (
    SubmissionSettings,
    data_layout,
    make_submission,
    write_matches,
    write_submission_csv,
)
from core.dagster_types import (
    DuplicateGroups,
    EmbeddingModel,
    FlukeKeypoints,
    FlukeOutlines,
    FlukeTensors,
    GalleryIndex,
    RawImages,
    ValidationReport,
)
from core.digests import content_version
from core.profiles import asset_version
from core.resources import ComputeDevice, FlukeData, FlukeStorage


def check_result(found: dict, severity: AssetCheckSeverity = AssetCheckSeverity.ERROR) -> AssetCheckResult:
    """A check's plain result (`passed` and its figures) as Dagster's; lists and dicts are shown as json."""
    metadata = {
        key: MetadataValue.json(value) if isinstance(value, (list, dict)) else value
        for key, value in found.items()
        if key != "passed"
    }
    return AssetCheckResult(passed=bool(found["passed"]), severity=severity, metadata=metadata)


# ---------------------------------------------------------------------------------------------------------------
# gallery_index


class GalleryIndexConfig(Config):
    flip: bool = Field(
        default=GallerySettings.flip,
        description="Flip test-time augmentation in embed_images (validation and "
        "submission use the same setting, read from this asset's info).",
    )
    index_type: str = Field(
        default=GallerySettings.index_type,
        description="flat (exact inner product), hnsw or ivf (approximate).",
    )
    hnsw_m: int = Field(default=GallerySettings.hnsw_m, ge=1, description="HNSW graph degree.")
    hnsw_ef_search: int = Field(
        default=GallerySettings.hnsw_ef_search, ge=1, description="HNSW search breadth (recall vs speed)."
    )
    ivf_lists: int = Field(
        default=GallerySettings.ivf_lists, ge=0, description="IVF lists; 0 = 4 * sqrt(gallery size)."
    )
    ivf_probe: int = Field(
        default=GallerySettings.ivf_probe, ge=1, description="IVF lists visited per query."
    )
    batch_size: int = Field(default=GallerySettings.batch_size, ge=1, description="Embedding batch size.")

    def settings(self) -> GallerySettings:
        return GallerySettings(**self.model_dump())


def stage_embedder(
    embedding_model: EmbeddingModel, torch_device, storage: FlukeStorage, flip: bool, batch_size: int
) -> CachedEmbedder:
    """The trained model as the stage's embedder, its embeddings kept in the shared per-crop cache."""
    return CachedEmbedder(
        embedding_model, torch_device, flip, batch_size, cache=embedding_cache(storage.cache_dir)
    )


@asset(
    code_version=asset_version("gallery_index", "gallery_index-1"),
    group_name="identify",
    description="Embeddings of every known train photo and a faiss inner-product index over them.",
)
def gallery_index(
    context: AssetExecutionContext,
    config: GalleryIndexConfig,
    device: ComputeDevice,
    storage: FlukeStorage,
    embedding_model: EmbeddingModel,
    fluke_tensors: FlukeTensors,
    training_manifest: pd.DataFrame,
) -> Output[GalleryIndex]:
    settings = config.settings()
    torch_device = device.torch_device()
    embed = stage_embedder(embedding_model, torch_device, storage, settings.flip, settings.batch_size)
    built = index_gallery(embed, fluke_tensors, training_manifest, settings)
    if built.missing:
        context.log.warning(
            f"{len(built.missing)} known train photos have no tensor and are left out: {built.missing[:5]}"
        )
    metadata = gallery_metadata(built, embed, torch_device)
    return Output(built.value, metadata=metadata, data_version=DataVersion(content_version(built.value)))


# ---------------------------------------------------------------------------------------------------------------
# validation_report


class ValidationReportConfig(Config):
    k: int = Field(
        default=ReportSettings.k,
        ge=1,
        description="Gallery neighbours searched per query before aggregating.",
    )
    sweep_points: int = Field(
        default=ReportSettings.sweep_points,
        ge=2,
        description="Thresholds tried (quantiles of candidate similarities).",
    )
    compare_without_crop: bool = Field(
        default=ReportSettings.compare_without_crop,
        description="Also embed whole (uncropped) photos with the same model: MAP@5 without crop.",
    )
    pixel_side: int = Field(
        default=ReportSettings.pixel_side,
        ge=1,
        description="Side of the grey thumbnails of the pixel baseline.",
    )
    batch_size: int = Field(default=ReportSettings.batch_size, ge=1, description="Embedding batch size.")
    verify_candidates: int = Field(
        default=ReportSettings.verify_candidates,
        ge=0,
        description="Individuals per query re-scored by geometric verification (SIFT + RANSAC); 0: off.",
    )
    verify_photos: int = Field(
        default=ReportSettings.verify_photos,
        ge=1,
        description="Gallery photos of each candidate compared (the most similar to the query).",
    )
    local_features: int = Field(
        default=ReportSettings.local_features, ge=1, description="SIFT keypoints per crop."
    )
    inlier_cap: int = Field(
        default=ReportSettings.inlier_cap,
        ge=0,
        description="Inliers beyond this add nothing to the score.",
    )
    verification_weights: list[float] = Field(
        default=list(ReportSettings.verification_weights),
        description="Score bonus per inlier to try; the best (with its threshold) goes to submission.",
    )
    workers: int = Field(
        default=ReportSettings.workers, ge=1, description="Threads for feature extraction and matching."
    )
    calibrated: bool = Field(
        default=ReportSettings.calibrated,
        description="Decide by P(same whale) from keypoint votes, embedding and RANSAC evidence "
        "(a logistic regression fitted here); off: the similarity threshold decides.",
    )
    match_candidates: int = Field(
        default=ReportSettings.match_candidates,
        ge=1,
        le=200,
        description="Individuals per query (fused embedding + keypoint-vote ranking) given evidence.",
    )
    match_photos: int = Field(
        default=ReportSettings.match_photos, ge=1, le=50, description="Gallery photos per candidate matched."
    )
    exhaustive_sample: int = Field(
        default=ReportSettings.exhaustive_sample,
        ge=0,
        description="Val queries the exhaustive classical matcher (RANSAC against every gallery photo) runs "
        "on, for comparison; 0: skip.",
    )
    test_new_whale_share: float = Field(
        default=ReportSettings.test_new_whale_share,
        ge=-1.0,
        lt=1.0,
        description="new_whale's share of the test set, for the val MAP@5 weighted to the test set's mix "
        "(each known whale by its photos); negative: the share among the kept train photos.",
    )
    calibrate_on_test_mix: bool = Field(
        default=ReportSettings.calibrate_on_test_mix,
        description="Fit P(same whale) on val pairs weighted to the test set's mix (off: every val query "
        "weighs the same).",
    )

    def settings(self) -> ReportSettings:
        values = self.model_dump()
        return ReportSettings(**{**values, "verification_weights": tuple(values["verification_weights"])})


@asset(
    code_version=asset_version("validation_report", "validation_report-6"),
    group_name="identify",
    description="MAP@5 on the held-out fold, the tuned new_whale threshold, per-rank statistics and baselines.",
)
def validation_report(
    context: AssetExecutionContext,
    config: ValidationReportConfig,
    data: FlukeData,
    storage: FlukeStorage,
    device: ComputeDevice,
    gallery_index: GalleryIndex,
    embedding_model: EmbeddingModel,
    fluke_tensors: FlukeTensors,
    training_manifest: pd.DataFrame,
    raw_images: RawImages,
    fluke_keypoints: FlukeKeypoints,
    fluke_outlines: FlukeOutlines,
) -> Output[ValidationReport]:
    started = time.perf_counter()
    settings = config.settings()
    flip = gallery_flip(gallery_index)
    embed = stage_embedder(embedding_model, device.torch_device(), storage, flip, settings.batch_size)
    cache = inlier_cache(storage.cache_dir)
    run = validate(
        gallery_index,
        fluke_tensors,
        training_manifest,
        raw_images,
        data.root,
        embed,
        settings,
        cache,
        fluke_keypoints,
        match_cache(storage.cache_dir),
        fluke_outlines,
    )
    if run.dropped:
        context.log.warning(f"{run.dropped} val photos have no tensor and are not evaluated")
    summary = run.value["summary"]
    if summary["verification"] is not None:
        context.log.info(
            f"crop verification: weight {summary['verification']['weight']}, MAP@5 "
            f"{summary['map5_threshold_path']:.4f} (embedding alone {run.embedding_only.map5:.4f}) in "
            f"{run.verify_seconds:.1f} s"
        )
    metadata = report_metadata(run, time.perf_counter() - started)
    decided = "calibrated P(same whale)" if summary.get("decision") else f"threshold {run.main.threshold:.4f}"
    context.log.info(
        f"validation MAP@5 {summary['map5']:.4f} ({summary['test_mix']['map5']:.4f} weighted to the test mix), "
        f"decided by {decided}"
    )
    return Output(run.value, metadata=metadata, data_version=DataVersion(content_version(run.value)))


@asset_check(
    asset=validation_report, description="Validation MAP@5 beats the new_whale + most-frequent baseline."
)
def validation_beats_new_whale_baseline(validation_report: ValidationReport) -> AssetCheckResult:
    return check_result(beats_frequent_whale_baseline(validation_report["summary"]))


# ---------------------------------------------------------------------------------------------------------------
# submission


class SubmissionConfig(Config):
    k: int = Field(
        default=SubmissionSettings.k,
        ge=1,
        description="Gallery neighbours searched per test photo before aggregating.",
    )
    use_duplicates: bool = Field(
        default=SubmissionSettings.use_duplicates,
        description="A test photo that duplicates a train photo takes its individual at rank 1.",
    )
    batch_size: int = Field(default=SubmissionSettings.batch_size, ge=1, description="Embedding batch size.")
    pool_encounters: bool = Field(
        default=SubmissionSettings.pool_encounters,
        description="The photos of one encounter (raw_images' `encounters`) share their pooled evidence and "
        "get the same five labels (calibrated decision only).",
    )

    def settings(self) -> SubmissionSettings:
        return SubmissionSettings(**self.model_dump())


@multi_asset(
    name="submission",
    outs={
        # -4: photos decided in review are answered by their decision; review-created ids are new_whale.
        # -5: the trailing edge (fluke_outlines) is a third candidate generator and two evidence columns.
        # submission.csv follows the data's layout (`image,predictions`, `new_individual` for Happywhale's).
        # The photos of one encounter are identified together (`pool_encounters`).
        "submission": AssetOut(
            code_version=asset_version("submission", "submission-5"),
            group_name="identify",
            description="Kaggle-format submission: five labels per test photo; also at "
            "$FLUKEID_STORAGE_DIR/submission.csv.",
        ),
        "submission_matches": AssetOut(
            code_version=asset_version("submission_matches", "submission_matches-2"),
            group_name="identify",
            description="The submission's companion: per test photo and rank, the label, its probability and "
            "evidence (empty without a calibrated decision); also matches.parquet/.csv in the storage folder.",
        ),
    },
)
def submission(
    context: AssetExecutionContext,
    config: SubmissionConfig,
    storage: FlukeStorage,
    device: ComputeDevice,
    gallery_index: GalleryIndex,
    validation_report: ValidationReport,
    fluke_tensors: FlukeTensors,
    embedding_model: EmbeddingModel,
    duplicate_groups: DuplicateGroups,
    raw_images: RawImages,
    fluke_keypoints: FlukeKeypoints,
    fluke_outlines: FlukeOutlines,
) -> Iterator[Output]:
    started = time.perf_counter()
    settings = config.settings()
    flip = gallery_flip(gallery_index)
    embed = stage_embedder(embedding_model, device.torch_device(), storage, flip, settings.batch_size)
    summary = validation_report["summary"]
    caches = inlier_cache(storage.cache_dir), match_cache(storage.cache_dir)
    run = make_submission(
        gallery_index,
        summary,
        fluke_tensors,
        raw_images,
        duplicate_groups,
        embed,
        settings,
        caches[0],
        fluke_keypoints,
        caches[1],
        fluke_outlines,
    )
    target = storage.root / "submission.csv"
    write_submission_csv(run.value, target, data_layout(raw_images))
    if run.matches is not None:
        write_matches(run.matches, storage.root)
    metadata = submission_metadata(run, target, summary, time.perf_counter() - started)
    context.log.info(f"submission written to {target}")
    yield Output(
        run.value, "submission", metadata=metadata, data_version=DataVersion(content_version(run.value))
    )
    matches = run.matches if run.matches is not None else pd.DataFrame(columns=MATCH_COLUMNS)
    yield Output(
        matches,
        "submission_matches",
        metadata={"rows": len(matches), "photos": int(matches["image"].nunique())},
        data_version=DataVersion(content_version(matches)),
    )


@asset_check(
    asset="submission",
    additional_ins={"raw_images": AssetIn("raw_images")},
    description="Every test photo (accepted or rejected by ingestion) has exactly one row, and no other rows.",
)
def submission_complete(submission: pd.DataFrame, raw_images: RawImages) -> AssetCheckResult:
    return check_result(complete(submission, raw_images))


@asset_check(
    asset="submission",
    additional_ins={"gallery_index": AssetIn("gallery_index")},
    description="Columns Image,Id; every Id is five distinct space-separated labels (every label that exists, "
    "new_whale included, when fewer than four individuals are known).",
)
def submission_well_formed(submission: pd.DataFrame, gallery_index: GalleryIndex) -> AssetCheckResult:
    return check_result(well_formed(submission, gallery_individuals(gallery_index)))


@asset_check(
    asset="submission",
    additional_ins={
        "gallery_index": AssetIn("gallery_index"),
        "duplicate_groups": AssetIn("duplicate_groups"),
    },
    description="Every predicted label is new_whale, an individual of the gallery or one of its recorded aliases.",
)
def submission_known_labels(
    submission: pd.DataFrame, gallery_index: GalleryIndex, duplicate_groups: DuplicateGroups
) -> AssetCheckResult:
    return check_result(labels_known(submission, gallery_index, duplicate_groups))


@asset_check(
    asset="submission",
    description="Test MAP@5 against the generator's solution.csv; passes with 'no truth file' when there is none.",
)
def submission_matches_generator_truth(data: FlukeData, submission: pd.DataFrame) -> AssetCheckResult:
    found = matches_truth(submission, data.root / "solution.csv")
    if "test_score" in found:
        found["test_score"] = MetadataValue.md(f"```\n{found['test_score']}\n```")
    # Another test set's solution is worth a warning, not a failed run.
    return check_result(found, AssetCheckSeverity.WARN if "error" in found else AssetCheckSeverity.ERROR)
