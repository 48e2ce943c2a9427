"""Stage: the submission. Five labels for every test photo, in Kaggle's `Image,Id` format.

Follow one test photo: its crop is embedded like the gallery's, faiss finds its nearest known photos, the one
ranking rule turns them into five individuals with `new_whale` in place: the first individuals re-scored by
geometric verification (`models.verification`, with the inlier weight `validation_report` chose), then
`new_whale` inserted at the threshold `validation_report` tuned (`models.retrieval.place_new_whale`). A test photo that duplicates a train photo takes that photo's
individual at rank 1. A test photo that ingestion rejected still gets a row (`new_whale` then the most frequent
individuals), so the file is complete. The table is also written to `$FLUKEID_STORAGE_DIR/submission.csv`.
"""

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    AssetIn,
    Config,
    DataVersion,
    MetadataValue,
    Output,
    asset,
    asset_check,
)
from pydantic import Field

from assets.gallery_index import embed_rows, embedding_cache, inlier_cache, model_embedder, tensor_rows
from core.constants import NEW_WHALE, TOP
from core.digests import content_version
from core.files import atomic_path
from core.metrics import rank_statistics
from core.profiles import asset_version
from core.reporting import figure_metadata, table_metadata
from core.resources import ComputeDevice, FlukeData, FlukeStorage
from core.scoring import format_score, score_submission
from models.retrieval import (
    Candidates,
    index_from_bytes,
    individual_candidates,
    most_frequent_labels,
    place_new_whale,
    search,
)
from models.verification import VerificationSettings, rescore, verify_candidates

SUBMISSION_COLUMNS = ["Image", "Id"]
SOURCES = ("model", "duplicate", "fallback")

# ---------------------------------------------------------------------------------------------------------------
# plain functions


def submission_images(raw_images: dict) -> pd.DataFrame:
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
    duplicate_groups: dict | None, train_labels: dict[str, str], known_labels: set[str]
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


def known_labels(gallery_index: dict, duplicate_groups: dict | None) -> set[str]:
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
    query_embeddings: np.ndarray,
    query_images: list[str],
    index,
    gallery_labels: list[str],
    threshold: float,
    duplicates: dict[str, list[str]],
    k: int = 50,
    rerank: Callable[[Candidates], Candidates] | None = None,
    candidates_per_query: int = TOP,
) -> pd.DataFrame:
    """The submission table (Image, Id) plus a `source` column (model, duplicate, fallback) for reporting.

    `query_embeddings` are the embedded test photos (`query_images`, a subset of `photos`); photos without an
    embedding get the fallback row `new_whale` + most frequent, unless they duplicate a train photo.
    `rerank` (geometric verification) re-scores each query's first `candidates_per_query` individuals before
    `new_whale` is placed at `threshold`, the same steps `validation_report` tuned them with.
    """
    fill = most_frequent_labels(gallery_labels)
    fallback = [NEW_WHALE, *fill][:TOP]
    rows: dict[str, list[str]] = {}
    if len(query_images):
        similarities, neighbours = search(index, query_embeddings, k)
        top = max(TOP, candidates_per_query) if rerank is not None else TOP
        candidates = individual_candidates(similarities, neighbours, gallery_labels, top=top)
        if rerank is not None:
            candidates = rerank(candidates)
        ranked = place_new_whale(candidates, threshold, fill_labels=fill)
        rows = dict(zip(query_images, ranked))
    records = []
    for image in photos["image"]:
        labels, source = rows.get(image), "model"
        if labels is None:
            labels, source = list(fallback), "fallback"
        if image in duplicates:
            labels, source = put_first(labels, duplicates[image]), "duplicate"
        records.append({"Image": image, "Id": " ".join(labels), "source": source})
    return pd.DataFrame(records, columns=[*SUBMISSION_COLUMNS, "source"])


def write_submission_csv(submission: pd.DataFrame, target: Path) -> None:
    with atomic_path(target) as tmp:
        submission[SUBMISSION_COLUMNS].to_csv(tmp, index=False)


def well_formed_problems(submission: pd.DataFrame) -> list[str]:
    """Rows that are not five distinct, space-separated, non-empty labels (first few, with the reason)."""
    problems = []
    if list(submission.columns) != SUBMISSION_COLUMNS:
        problems.append(f"columns are {list(submission.columns)}, expected {SUBMISSION_COLUMNS}")
    for image, ids in zip(submission["Image"], submission["Id"]):
        labels = str(ids).split(" ")
        if not isinstance(image, str) or not image:
            problems.append(f"empty image name (Id {ids!r})")
        elif len(labels) != TOP or any(not label for label in labels):
            problems.append(f"{image}: {ids!r} is not {TOP} labels separated by single spaces")
        elif len(set(labels)) != TOP:
            problems.append(f"{image}: repeated label in {ids!r}")
    return problems


# ---------------------------------------------------------------------------------------------------------------
# Dagster


class SubmissionConfig(Config):
    k: int = Field(default=100, description="Gallery neighbours searched per test photo before aggregating.")
    use_duplicates: bool = Field(
        default=True, description="A test photo that duplicates a train photo takes its individual at rank 1."
    )
    batch_size: int = Field(default=128, description="Embedding batch size.")


@asset(
    code_version=asset_version("submission", "submission-2"),
    group_name="identify",
    description="Kaggle-format submission: five labels per test photo; also at $FLUKEID_STORAGE_DIR/submission.csv.",
)
def submission(
    context: AssetExecutionContext,
    config: SubmissionConfig,
    data: FlukeData,
    storage: FlukeStorage,
    device: ComputeDevice,
    gallery_index: dict,
    validation_report: dict,
    fluke_tensors: dict,
    embedding_model: dict,
    duplicate_groups: dict,
    raw_images: dict,
) -> Output[pd.DataFrame]:
    started = time.perf_counter()
    photos = submission_images(raw_images)
    accepted = photos.loc[photos["accepted"], "image"]
    rows = tensor_rows(fluke_tensors["index"], accepted, "test")
    query_images = accepted[rows >= 0].tolist()
    flip = bool(gallery_index.get("info", {}).get("flip", False))
    torch_device = device.torch_device()
    embed = model_embedder(
        embedding_model, torch_device, flip=flip, batch_size=config.batch_size, cache=embedding_cache(storage)
    )
    tensors = fluke_tensors["tensors"]
    query_embeddings = embed_rows(embed, tensors, rows[rows >= 0])
    gallery = gallery_index["gallery"]
    gallery_labels = gallery["label"].tolist()
    threshold = float(validation_report["summary"]["threshold"])
    verification = validation_report["summary"].get("verification")
    rerank, candidates_per_query, verify_stats = None, TOP, {}
    if verification:
        # Exactly the verification validation_report chose the weight and threshold with.
        settings = VerificationSettings.from_dict(verification)
        gallery_embeddings = np.asarray(gallery_index["embeddings"], dtype=np.float32)
        gallery_tensor_rows = tensor_rows(fluke_tensors["index"], gallery["image"], "train")
        query_crops = tensors[rows[rows >= 0]]
        candidates_per_query = settings.candidates

        def rerank(candidates: Candidates) -> Candidates:
            verified = verify_candidates(
                candidates,
                query_embeddings,
                query_crops,
                gallery_embeddings,
                gallery_labels,
                lambda gallery_rows: tensors[gallery_tensor_rows[gallery_rows]],
                settings,
                cache=inlier_cache(storage),
                stats=verify_stats,
            )
            return rescore(verified, float(verification["weight"]), settings.inlier_cap)

    images = raw_images["images"]
    train = images[images["split"] == "train"]
    train_labels = dict(zip(train["image"], train["label"]))
    known = known_labels(gallery_index, duplicate_groups)
    duplicates = duplicate_labels(duplicate_groups, train_labels, known) if config.use_duplicates else {}
    table = predict(
        photos,
        query_embeddings,
        query_images,
        index_from_bytes(gallery_index["index"]),
        gallery_labels,
        threshold,
        duplicates,
        k=config.k,
        rerank=rerank,
        candidates_per_query=candidates_per_query,
    )
    value = table[SUBMISSION_COLUMNS].copy()
    target = storage.root / "submission.csv"
    write_submission_csv(value, target)
    seconds = time.perf_counter() - started

    predicted = [ids.split(" ") for ids in value["Id"]]
    per_rank = rank_statistics(predicted)
    first = pd.Series([row[0] for row in predicted], dtype=object).value_counts()
    all_labels = pd.Series([label for row in predicted for label in row], dtype=object).value_counts()

    def label_distribution(ax):
        counts = first.drop(NEW_WHALE, errors="ignore").value_counts().sort_index()
        ax.bar(counts.index, counts.values, color="#33658a")
        ax.set_xlabel("test photos given the individual at rank 1")
        ax.set_ylabel("individuals")

    metadata = {
        "path": str(target),
        "rows": len(value),
        "rows_from_model": int((table["source"] == "model").sum()),
        "rows_from_duplicates": int((table["source"] == "duplicate").sum()),
        "rows_fallback": int((table["source"] == "fallback").sum()),
        "rejected_test_photos": int((~photos["accepted"]).sum()),
        "threshold": threshold,
        "validation_map5": validation_report["summary"].get("map5"),
        "preview": table_metadata(value, max_rows=10),
        "new_whale_share_per_rank": table_metadata(per_rank.round(4)),
        "new_whale_first_share": round(float(per_rank["new_whale_share"].iloc[0]), 4)
        if len(per_rank)
        else 0.0,
        "distinct_labels_predicted": int(all_labels.size),
        "top_rank1_labels": table_metadata(first.head(15).rename_axis("label").reset_index(name="photos")),
        "rank1_label_distribution": figure_metadata(
            label_distribution,
            f"Does one whale soak up the predictions? Rank 1: {first.get(NEW_WHALE, 0)} new_whale, "
            f"{first.drop(NEW_WHALE, errors='ignore').size} individuals",
            width=6.0,
            height=3.2,
        ),
        "verification": MetadataValue.json(verification or {}),
        "verified_pairs": verify_stats.get("pairs", 0),
        "verified_pairs_from_cache": verify_stats.get("pairs_from_cache", 0),
        "seconds": round(seconds, 2),
    }
    solution = data.root / "solution.csv"
    if solution.exists():
        try:
            score = score_submission(target, solution)
        except ValueError as error:  # a solution for another test set: say so, do not fail the submission
            context.log.warning(f"could not score against {solution}: {error}")
        else:
            metadata.update(
                {
                    "test_map5": round(score["map5"], 6),
                    "test_map5_known": score["map5_known"],
                    "test_map5_new_whale": score["map5_new_whale"],
                    "test_score": MetadataValue.md(f"```\n{format_score(score)}\n```"),
                }
            )
            context.log.info(f"test MAP@5 against {solution}: {score['map5']:.4f}")
    context.log.info(f"submission written to {target}")
    return Output(value, metadata=metadata, data_version=DataVersion(content_version(value)))


@asset_check(
    asset=submission,
    additional_ins={"raw_images": AssetIn("raw_images")},
    description="Every test photo (accepted or rejected by ingestion) has exactly one row, and no other rows.",
)
def submission_complete(submission: pd.DataFrame, raw_images: dict) -> AssetCheckResult:
    expected = set(submission_images(raw_images)["image"])
    counts = submission["Image"].value_counts()
    repeated = counts[counts > 1].index.tolist()
    missing = sorted(expected - set(counts.index))
    extra = sorted(set(counts.index) - expected)
    return AssetCheckResult(
        passed=not (repeated or missing or extra),
        metadata={
            "rows": len(submission),
            "test_photos": len(expected),
            "missing": len(missing),
            "repeated": len(repeated),
            "extra": len(extra),
            "examples": MetadataValue.json(
                {"missing": missing[:5], "repeated": repeated[:5], "extra": extra[:5]}
            ),
        },
    )


@asset_check(
    asset=submission, description="Columns Image,Id; every Id is five distinct space-separated labels."
)
def submission_well_formed(submission: pd.DataFrame) -> AssetCheckResult:
    problems = well_formed_problems(submission)
    return AssetCheckResult(
        passed=not problems,
        metadata={"problems": len(problems), "examples": MetadataValue.json(problems[:5])},
    )


@asset_check(
    asset=submission,
    additional_ins={
        "gallery_index": AssetIn("gallery_index"),
        "duplicate_groups": AssetIn("duplicate_groups"),
    },
    description="Every predicted label is new_whale, an individual of the gallery or one of its recorded aliases.",
)
def submission_known_labels(
    submission: pd.DataFrame, gallery_index: dict, duplicate_groups: dict
) -> AssetCheckResult:
    known = known_labels(gallery_index, duplicate_groups)
    predicted = {label for ids in submission["Id"] for label in str(ids).split()}
    unknown = sorted(predicted - known)
    return AssetCheckResult(
        passed=not unknown,
        metadata={
            "labels_predicted": len(predicted),
            "unknown": len(unknown),
            "examples": MetadataValue.json(unknown[:5]),
        },
    )
