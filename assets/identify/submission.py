"""The submission: five labels for every test photo, in Kaggle's `Image,Id` format.

Follow one test photo: its crop goes through the one identification path (`identification.identify`) with the
verification settings, inlier weight and new_whale threshold `validation_report` chose. A test photo that
duplicates a train photo takes that photo's individual at rank 1. A test photo that ingestion rejected still gets
a row (`new_whale` then the most frequent individuals, `models.baselines.frequent_whale_row`), so the file is
complete. The table is also written to `$FLUKEID_STORAGE_DIR/submission.csv`. Its score against the generator's
`solution.csv`, where the data folder has one, is an asset check (`truth_score`), not part of the asset.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from assets.identify.calibrated import CalibratedRun, apply_calibrated, photo_features
from assets.identify.decision import matches_table
from assets.identify.encounters import pooled_run
from assets.identify.gallery import Embedder, tensor_rows
from assets.identify.identification import Gallery, Identification, IdentifySettings, Queries, identify
from assets.identify.matching import MatchGallery, MatchSettings
from assets.identify.reviewed import apply_decisions
from core.artifacts import (
    SUBMISSION_COLUMNS,
    DuplicateGroups,
    FlukeKeypoints,
    FlukeOutlines,
    FlukeTensors,
    GalleryIndex,
    RawImages,
)
from core.constants import NEW_WHALE, TOP
from core.files import atomic_path, write_parquet
from core.formats import KAGGLE2019, Layout, layout_named
from core.metrics import rank_statistics
from models.baselines import frequent_whale_row
from models.calibration import MatchCalibrator
from models.outline import edges_of
from models.retrieval import most_frequent_labels
from models.verification import InlierCache

SOURCES = ("model", "duplicate", "fallback", "review")


@dataclass(frozen=True)
class SubmissionSettings:
    k: int = 100  # gallery neighbours searched per test photo before aggregating
    use_duplicates: bool = True  # a test photo that duplicates a train photo takes its individual at rank 1
    batch_size: int = 128  # embedding batch size
    pool_encounters: bool = True  # the photos of one encounter get the labels their pooled evidence supports


def submission_images(raw_images: RawImages) -> pd.DataFrame:
    """Every test photo the data folder holds, once: (image, accepted). Rejected ones need a row too."""
    accepted = raw_images["images"]
    accepted = accepted.loc[accepted["split"] == "test", ["image"]].assign(accepted=True)
    rejected = raw_images["rejected"]
    rejected = rejected.loc[rejected["split"] == "test", ["image"]].assign(accepted=False)
    photos = pd.concat([accepted, rejected], ignore_index=True)
    # An accepted row wins over a rejected row of the same name.
    photos = photos.sort_values(["image", "accepted"], ascending=[True, False], kind="stable")
    return photos.drop_duplicates("image").reset_index(drop=True)


def duplicate_labels(
    duplicate_groups: DuplicateGroups | None, train_labels: dict[str, str], known_labels: set[str]
) -> dict[str, list[str]]:
    """Test image -> labels to put first, from the closest train photo it duplicates: that photo's label as
    train.csv files it, then the canonical id when the two differ (an alias). A whale filed under two ids may be
    scored under either, so both go in front. Labels outside `known_labels` (and not new_whale) are left out."""
    if not duplicate_groups or "test_matches" not in duplicate_groups:
        return {}
    matches = duplicate_groups["test_matches"]
    if matches is None or len(matches) == 0:
        return {}
    aliases = duplicate_groups.get("aliases")
    canonical = {}
    if aliases is not None and len(aliases):
        canonical = dict(zip(aliases["label"], aliases["canonical"]))
    matches = matches.sort_values(["image", "distance", "train_image"], kind="stable").drop_duplicates(
        "image"
    )
    result = {}
    for image, train_image, group_label in zip(matches["image"], matches["train_image"], matches["label"]):
        filed = train_labels.get(train_image) or group_label
        if not isinstance(filed, str):
            continue
        labels = [filed, canonical.get(filed, filed)]
        if isinstance(group_label, str):
            labels.append(canonical.get(group_label, group_label))
        labels = [label for label in dict.fromkeys(labels) if label == NEW_WHALE or label in known_labels]
        if labels:
            result[image] = labels
    return result


def put_first(row: list[str], labels: list[str], top: int = TOP) -> list[str]:
    return [*labels, *[other for other in row if other not in labels]][:top]


def known_labels(gallery_index: GalleryIndex, duplicate_groups: DuplicateGroups | None) -> set[str]:
    """Labels a submission may use: new_whale, the gallery's individuals and their recorded aliases."""
    known = set(gallery_index["gallery"]["label"]) | {NEW_WHALE}
    aliases = (duplicate_groups or {}).get("aliases")
    if aliases is not None and len(aliases):
        known |= {
            alias for alias, canonical in zip(aliases["label"], aliases["canonical"]) if canonical in known
        }
    return known


def predict(
    photos: pd.DataFrame,
    ranked: dict[str, list[str]],
    gallery_labels: list[str],
    duplicates: dict[str, list[str]],
) -> pd.DataFrame:
    """The submission table (Image, Id) plus a `source` column (model, duplicate, fallback) for reporting.

    `ranked`: the identified test photos' rows; photos without one get the fallback row `new_whale` + most
    frequent, unless they duplicate a train photo, whose labels then go first.
    """
    fallback = frequent_whale_row(gallery_labels)
    records = []
    for image in photos["image"]:
        labels, source = ranked.get(image), "model"
        if labels is None:
            labels, source = list(fallback), "fallback"
        if image in duplicates:
            labels, source = put_first(labels, duplicates[image]), "duplicate"
        records.append({"Image": image, "Id": " ".join(labels), "source": source})
    return pd.DataFrame(records, columns=[*SUBMISSION_COLUMNS, "source"])


@dataclass
class SubmissionRun:
    """One `submission` materialization: the table (with `source`), the test photos, what was applied."""

    table: pd.DataFrame
    photos: pd.DataFrame
    applied: IdentifySettings
    identification: Identification
    calibrated: CalibratedRun | None = None
    matches: pd.DataFrame | None = None  # the companion table: image, rank, label, probability, evidence

    @property
    def value(self) -> pd.DataFrame:
        return self.table[SUBMISSION_COLUMNS].copy()


def make_submission(
    gallery_index: GalleryIndex,
    validation_summary: dict,
    fluke_tensors: FlukeTensors,
    raw_images: RawImages,
    duplicate_groups: DuplicateGroups | None,
    embed: Embedder,
    settings: SubmissionSettings,
    inlier_cache: InlierCache | None = None,
    keypoints: FlukeKeypoints | None = None,
    match_cache: InlierCache | None = None,
    outlines: FlukeOutlines | None = None,
) -> SubmissionRun:
    """Every test photo identified against the whole gallery with what validation chose (the calibrated decision
    when validation made one and keypoints are given; `outlines`: the trailing edge as validation used it), then
    duplicates first and fallback rows for photos without a crop."""
    photos = submission_images(raw_images)
    accepted = photos.loc[photos["accepted"], "image"]
    rows = tensor_rows(fluke_tensors["index"], accepted, "test")
    query_images = accepted[rows >= 0].tolist()
    applied = IdentifySettings.validated(validation_summary, settings.k)
    gallery = Gallery.stored(gallery_index, fluke_tensors["index"])
    identification = identify(
        Queries(crop_rows=rows[rows >= 0]), gallery, embed, fluke_tensors["tensors"], applied, inlier_cache
    )
    images = raw_images["images"]
    train = images[images["split"] == "train"]
    train_labels = dict(zip(train["image"], train["label"]))
    duplicates = {}
    if settings.use_duplicates:
        duplicates = duplicate_labels(
            duplicate_groups, train_labels, known_labels(gallery_index, duplicate_groups)
        )
    ranked = dict(zip(query_images, identification.predictions))
    calibrated, matches = None, None
    decision = validation_summary.get("decision")
    if decision and keypoints is not None:
        calibrated = calibrated_test(
            query_images, gallery_index, gallery, identification, keypoints, decision, match_cache, outlines
        )
        if settings.pool_encounters:  # `assets.identify.encounters`: one encounter, one pooled row
            encounters = raw_images.get("encounters")
            calibrated = pooled_run(calibrated, query_images, encounters, identification.fill_labels)
        ranked = dict(zip(query_images, calibrated.rows))
        matches = matches_table(
            query_images, calibrated.matching.evidence, calibrated.probabilities, calibrated.rows
        )
    table = predict(photos, ranked, gallery.labels, duplicates)
    # Enough frequent individuals to top rows up even where review-created ids (written as new_whale) are many.
    fill = [NEW_WHALE, *most_frequent_labels(gallery.labels, 2 * TOP)]
    table = apply_decisions(table, raw_images.get("reviews"), fill)
    return SubmissionRun(table, photos, applied, identification, calibrated, matches)


def calibrated_test(
    query_images: list[str],
    gallery_index: GalleryIndex,
    gallery: Gallery,
    identification: Identification,
    keypoints: FlukeKeypoints,
    decision: dict,
    cache: InlierCache | None,
    outlines: FlukeOutlines | None = None,
) -> CalibratedRun:
    """The calibrated path on the test photos against every known photo, with validation's calibrator."""
    gallery_images = gallery_index["gallery"]["image"].tolist()
    matched = MatchGallery(
        photo_features(keypoints, gallery_images, "train"),
        gallery.labels,
        gallery.embeddings,
        edges_of(outlines, gallery_images, "train"),
    )
    return apply_calibrated(
        photo_features(keypoints, query_images, "test"),
        identification.embeddings,
        matched,
        MatchCalibrator.from_dict(decision["calibrator"]),
        identification.fill_labels,
        MatchSettings.from_dict(decision["matching"]),
        cache,
        edges_of(outlines, query_images, "test"),
    )


def write_submission_csv(submission: pd.DataFrame, target: Path, layout: str = KAGGLE2019.name) -> None:
    """`submission` (`Image,Id`, the chain's labels) as `target`, in the format of the competition the data came
    in: `layout` `kaggle2019` writes it as it is; `happywhale` writes `image,predictions` with `new_individual`
    in place of `new_whale` (`core.formats`)."""
    with atomic_path(target) as tmp:
        in_layout(submission, layout_named(layout)).to_csv(tmp, index=False)


def in_layout(submission: pd.DataFrame, layout: Layout) -> pd.DataFrame:
    """The submission table with `layout`'s column names and its word for an unknown whale."""
    table = submission[SUBMISSION_COLUMNS]
    if layout.unknown != NEW_WHALE:
        labels = [
            " ".join(layout.external_label(label) for label in str(ids).split(" ")) for ids in table["Id"]
        ]
        table = table.assign(Id=labels)
    return table.set_axis(list(layout.submission_columns), axis=1)


def data_layout(raw_images: RawImages) -> str:
    """The layout the data folder came in (`raw_images["source"]`); an artifact from before layouts: 2019."""
    return raw_images.get("source", {}).get("layout", KAGGLE2019.name)


def write_matches(matches: pd.DataFrame, folder: Path) -> list[Path]:
    """The companion table beside submission.csv, as `matches.parquet` and `matches.csv` (atomic writes)."""
    parquet, csv = Path(folder) / "matches.parquet", Path(folder) / "matches.csv"
    write_parquet(matches, parquet)
    with atomic_path(csv) as tmp:
        matches.to_csv(tmp, index=False, float_format="%.6g")
    return [parquet, csv]


def submission_statistics(run: SubmissionRun, validation_summary: dict) -> dict:
    """The figures `submission` reports: where rows came from, what was applied, how labels spread."""
    table, value = run.table, run.value
    predicted = [ids.split(" ") for ids in value["Id"]]
    per_rank = prediction_ranks(value)
    all_labels = pd.Series([label for row in predicted for label in row], dtype=object).value_counts()
    stats = run.identification.stats
    return {
        "rows": len(value),
        "rows_from_model": int((table["source"] == "model").sum()),
        "rows_from_duplicates": int((table["source"] == "duplicate").sum()),
        "rows_from_review": int((table["source"] == "review").sum()),
        "rows_fallback": int((table["source"] == "fallback").sum()),
        "rejected_test_photos": int((~run.photos["accepted"]).sum()),
        "threshold": run.applied.threshold,
        "validation_map5": validation_summary.get("map5"),
        "new_whale_first_share": round(float(per_rank["new_whale_share"].iloc[0]), 4)
        if len(per_rank)
        else 0.0,
        "distinct_labels_predicted": int(all_labels.size),
        "verified_pairs": stats.get("pairs", 0),
        "verified_pairs_from_cache": stats.get("pairs_from_cache", 0),
        **calibrated_statistics(run.calibrated),
    }


def calibrated_statistics(run: CalibratedRun | None) -> dict:
    """What the calibrated decision cost and how often it put new_whale first (empty without it)."""
    if run is None:
        return {"decision": "threshold", "encounters_pooled": 0, "encounter_photos_pooled": 0}
    stats = run.matching.stats
    return {
        "decision": "calibrated",
        "encounters_pooled": stats.get("encounters_pooled", 0),
        "encounter_photos_pooled": stats.get("encounter_photos_pooled", 0),
        "matched_pairs": stats["pairs"],
        "matched_pairs_from_cache": stats["pairs_from_cache"],
        "candidate_seconds": stats["candidate_seconds"],
        "match_seconds": stats["verify_seconds"],
        "seconds_per_photo": round(run.seconds / max(1, stats["queries"]), 4),
        "mean_new_whale_probability": round(float(run.new_whale.mean()), 4) if len(run.new_whale) else 0.0,
    }


def prediction_ranks(submission: pd.DataFrame) -> pd.DataFrame:
    """Per rank 1..5, the share of test photos given new_whale there (`core.metrics.rank_statistics`)."""
    return rank_statistics([str(ids).split(" ") for ids in submission["Id"]])


def rank1_labels(submission: pd.DataFrame) -> pd.Series:
    """Label -> test photos given it at rank 1, most first."""
    return pd.Series([str(ids).split(" ")[0] for ids in submission["Id"]], dtype=object).value_counts()
