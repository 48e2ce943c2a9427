"""Validation: how well the chain identifies held-out photos, and the new_whale threshold it should use.

The gallery is the train fold's known photos, the queries are the val fold (known individuals and new_whale
photos). A val photo whose individual has no train-fold photo counts as `new_whale`, as a test photo of an unseen
whale would. The queries go through the one identification path (`identification.identify`); the inlier weight
of geometric verification and, within each weight, the new_whale threshold are tuned on its candidates with the
one tuner (`models.retrieval.tune_threshold`), and `submission` applies the chosen ones. Two baselines run on the
same queries (`models.baselines`): `new_whale` then the four most frequent individuals, and nearest neighbours on
whole-image pixels (with their own tuned threshold). The same model on whole images (no crop stage) shows what
the crop is worth.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

import numpy as np
import pandas as pd

from assets.identify.gallery import (
    Embedder,
    GalleryIndex,
    TensorsForIdentification,
    gallery_flip,
    tensor_rows,
)
from assets.identify.identification import (
    Gallery,
    IdentifySettings,
    Queries,
    identify,
)
from assets.identify.tuning import Evaluation, evaluate, tune_identification
from assets.identify.whole_images import load_whole_images, train_photo_paths
from core.constants import NEW_WHALE
from core.metrics import map_at_5
from models.baselines import frequent_whale_baseline, pixel_vectors
from models.verification import InlierCache, VerificationSettings

QUERY_COLUMNS = ["image", "label", "truth", "gallery_row", "tensor_row"]
PREDICTION_COLUMNS = ["image", "truth", "Id"]


class ValidationReport(TypedDict):
    """The `validation_report` value."""

    summary: dict  # json: map5, threshold, verification (settings + weight, or None), baselines, counts, ...
    per_rank: pd.DataFrame  # core.metrics.rank_statistics of the chosen predictions
    sweep: pd.DataFrame  # threshold, map5, new_whale_first_share at the chosen weight
    predictions: pd.DataFrame  # PREDICTION_COLUMNS: each val photo, its truth, the five labels given


class PhotosForValidation(TypedDict):
    """What this stage reads of `raw_images` (declared by the ingest stage): the accepted photos (image, split,
    path), to load whole photos."""

    images: pd.DataFrame


@dataclass(frozen=True)
class ReportSettings:
    k: int = 100  # gallery neighbours searched per query before aggregating
    sweep_points: int = 101  # thresholds tried (quantiles of candidate scores)
    compare_without_crop: bool = True  # also embed whole photos with the same model
    pixel_side: int = 32  # side of the pixel baseline's grey thumbnails
    batch_size: int = 128  # embedding batch size
    # Geometric verification (`models.verification.VerificationSettings`, whose defaults these are); 0: off.
    verify_candidates: int = VerificationSettings.candidates
    verify_photos: int = VerificationSettings.photos_per_individual
    local_features: int = VerificationSettings.max_features
    inlier_cap: int = VerificationSettings.inlier_cap
    workers: int = VerificationSettings.workers
    # Score bonus per inlier to try; the best (with its threshold) goes to submission.
    verification_weights: tuple[float, ...] = (0.0, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64)

    @property
    def verification(self) -> VerificationSettings:
        return VerificationSettings(
            candidates=self.verify_candidates,
            photos_per_individual=self.verify_photos,
            max_features=self.local_features,
            inlier_cap=self.inlier_cap,
            workers=self.workers,
        )


def validation_split(
    training_manifest: pd.DataFrame, gallery: pd.DataFrame, tensor_index: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train-fold gallery rows of `gallery`, val queries: QUERY_COLUMNS).

    A val photo's truth is its label if the train fold knows that individual, else `new_whale`.
    """
    folds = training_manifest.drop_duplicates("image").set_index("image")["fold"]
    train_gallery = gallery[gallery["image"].map(folds).eq("train")].reset_index(drop=True)
    known = set(train_gallery["label"])
    queries = training_manifest[training_manifest["fold"] == "val"][["image", "label"]]
    queries = queries.drop_duplicates("image").sort_values("image", kind="stable").reset_index(drop=True)
    queries["truth"] = queries["label"].where(queries["label"].isin(known), NEW_WHALE)
    gallery_rows = pd.Series(gallery["row"].to_numpy(), index=gallery["image"].to_numpy())
    queries["gallery_row"] = gallery_rows.reindex(queries["image"]).fillna(-1).astype(np.int64).to_numpy()
    queries["tensor_row"] = tensor_rows(tensor_index, queries["image"], "train")
    return train_gallery, queries


def validation_queries(queries: pd.DataFrame, gallery_embeddings: np.ndarray) -> Queries:
    """The val photos as queries: their gallery embedding reused where the gallery has them (known individuals),
    embedded with the same model and settings otherwise (val `new_whale` photos are not in the gallery)."""
    gallery_rows = queries["gallery_row"].to_numpy()
    return Queries(
        crop_rows=queries["tensor_row"].to_numpy(),
        reuse=gallery_rows >= 0,
        embeddings=gallery_embeddings[np.maximum(gallery_rows, 0)],
    )


def _subset_map(predictions: list[list[str]], truths: list[str], known: bool) -> float | None:
    chosen = [i for i, t in enumerate(truths) if (t != NEW_WHALE) == known]
    if not chosen:
        return None
    return round(map_at_5([predictions[i] for i in chosen], [truths[i] for i in chosen]), 6)


def report_value(
    main: Evaluation,
    queries: pd.DataFrame,
    gallery_size: int,
    baselines: dict[str, float],
    without_crop: Evaluation | None,
    k: int,
    flip: bool,
    verification: dict | None = None,
    embedding_only: Evaluation | None = None,
) -> ValidationReport:
    """The `validation_report` value: `summary` (json), `per_rank`, `sweep`, `predictions`."""
    truths = queries["truth"].tolist()
    summary = {
        "map5": round(main.map5, 6),
        "threshold": main.threshold,
        "map5_without_new_whale": round(main.map5_at_no_new_whale, 6),
        "map5_known": _subset_map(main.predictions, truths, known=True),
        "map5_new_whale": _subset_map(main.predictions, truths, known=False),
        "map5_embedding_only": round((embedding_only or main).map5, 6),
        "threshold_embedding_only": (embedding_only or main).threshold,
        # Geometric verification as validated: settings and the chosen inlier weight; submission applies them.
        "verification": verification,
        "map5_without_crop": None if without_crop is None else round(without_crop.map5, 6),
        "threshold_without_crop": None if without_crop is None else without_crop.threshold,
        "baselines": {name: round(value, 6) for name, value in baselines.items()},
        "queries": len(queries),
        "queries_known": int(sum(t != NEW_WHALE for t in truths)),
        "queries_new_whale": int(sum(t == NEW_WHALE for t in truths)),
        "queries_unseen_individuals": int(
            ((queries["label"] != NEW_WHALE) & (queries["truth"] == NEW_WHALE)).sum()
        ),
        "gallery_size": gallery_size,
        "k": k,
        "flip": flip,
    }
    predictions = pd.DataFrame(
        {
            "image": queries["image"].to_numpy(),
            "truth": truths,
            "Id": [" ".join(row) for row in main.predictions],
        }
    )
    return ValidationReport(
        summary=summary, per_rank=main.per_rank, sweep=main.sweep, predictions=predictions
    )


@dataclass
class ReportRun:
    """One `validation_report` materialization: the value and what its metadata and plots show."""

    value: ValidationReport
    main: Evaluation
    embedding_only: Evaluation | None
    without_crop: Evaluation | None
    pixel: Evaluation
    by_weight: dict[float, Evaluation]
    verify_stats: dict
    verify_seconds: float
    dropped: int  # val photos without a tensor, not evaluated
    true_new_whale_share: float


def whole_photo_evaluations(
    embed: Embedder,
    whole_paths: list[Path],
    gallery_size: int,
    gallery_labels: list[str],
    truths: list[str],
    crop_shape: tuple[int, int, int],
    settings: ReportSettings,
) -> tuple[Evaluation | None, Evaluation]:
    """(the model on whole photos, or None when not compared; the pixel baseline), gallery photos first."""
    channels, height, width = crop_shape
    if not settings.compare_without_crop:
        height = width = settings.pixel_side
    whole = load_whole_images(whole_paths, height, width, channels)
    whole_gallery, whole_queries = whole[:gallery_size], whole[gallery_size:]
    k, points = settings.k, settings.sweep_points
    without_crop = None
    if settings.compare_without_crop:
        without_crop = evaluate(embed(whole_gallery), gallery_labels, embed(whole_queries), truths, k, points)
    side = (settings.pixel_side, settings.pixel_side)
    pixel = evaluate(
        pixel_vectors(whole_gallery, side),
        gallery_labels,
        pixel_vectors(whole_queries, side),
        truths,
        k,
        points,
    )
    return without_crop, pixel


def validate(
    gallery_index: GalleryIndex,
    fluke_tensors: TensorsForIdentification,
    training_manifest: pd.DataFrame,
    raw_images: PhotosForValidation,
    data_root: Path,
    embed: Embedder,
    settings: ReportSettings,
    inlier_cache: InlierCache | None = None,
) -> ReportRun:
    """The validation report: the val fold identified against the train fold, tuned, and compared."""
    tensors = fluke_tensors["tensors"]
    embeddings = np.asarray(gallery_index["embeddings"], dtype=np.float32)
    train_gallery, queries = validation_split(
        training_manifest, gallery_index["gallery"], fluke_tensors["index"]
    )
    missing = (queries["gallery_row"] < 0) & (queries["tensor_row"] < 0)
    queries = queries[~missing].reset_index(drop=True)
    if queries.empty or train_gallery.empty:
        raise ValueError("the val fold or the train-fold gallery is empty: nothing to validate")
    gallery = Gallery.subset(gallery_index, train_gallery["row"].to_numpy(), fluke_tensors["index"])
    truths = queries["truth"].tolist()
    started = time.perf_counter()
    identification = identify(
        validation_queries(queries, embeddings),
        gallery,
        embed,
        tensors,
        IdentifySettings(k=settings.k, verification=settings.verification),
        inlier_cache,
    )
    main, embedding_only, weight, by_weight = tune_identification(
        identification, truths, settings.verification_weights, settings.sweep_points
    )
    verify_seconds = time.perf_counter() - started
    whole_paths = train_photo_paths(raw_images, data_root, [*train_gallery["image"], *queries["image"]])
    without_crop, pixel = whole_photo_evaluations(
        embed, whole_paths, len(train_gallery), gallery.labels, truths, tensors.shape[1:], settings
    )
    baselines = {
        "new_whale_frequent": frequent_whale_baseline(gallery.labels, truths),
        "pixel_nn": pixel.map5,
    }
    verification = None if weight is None else {**settings.verification.to_dict(), "weight": weight}
    flip = gallery_flip(gallery_index)
    value = report_value(
        main,
        queries,
        len(train_gallery),
        baselines,
        without_crop,
        settings.k,
        flip,
        verification,
        embedding_only,
    )
    return ReportRun(
        value=value,
        main=main,
        embedding_only=embedding_only,
        without_crop=without_crop,
        pixel=pixel,
        by_weight=by_weight,
        verify_stats=identification.stats,
        verify_seconds=verify_seconds,
        dropped=int(missing.sum()),
        true_new_whale_share=float(np.mean([t == NEW_WHALE for t in truths])),
    )


def comparison_table(run: ReportRun) -> pd.DataFrame:
    """Every method on the same val queries: MAP@5 and its tuned threshold."""
    summary, verified = run.value["summary"], run.value["summary"]["verification"] is not None
    return pd.DataFrame(
        [
            {
                "method": "model, cropped flukes" + (", verified" if verified else ""),
                "map5": summary["map5"],
                "threshold": run.main.threshold,
            },
            {
                "method": "embedding alone, cropped flukes",
                "map5": summary["map5_embedding_only"],
                "threshold": summary["threshold_embedding_only"],
            },
            {
                "method": "model, whole images",
                "map5": summary["map5_without_crop"],
                "threshold": summary["threshold_without_crop"],
            },
            {"method": "pixel nearest neighbours", "map5": run.pixel.map5, "threshold": run.pixel.threshold},
            {
                "method": "new_whale + 4 most frequent",
                "map5": summary["baselines"]["new_whale_frequent"],
                "threshold": None,
            },
        ]
    )


def weights_table(by_weight: dict[float, Evaluation]) -> pd.DataFrame:
    """MAP@5 and threshold at every inlier weight tried."""
    return pd.DataFrame(
        [
            {"weight": w, "map5": round(e.map5, 4), "threshold": round(e.threshold, 4)}
            for w, e in by_weight.items()
        ]
    )


def report_figures(run: ReportRun) -> dict:
    """The headline numbers `validation_report` reports (tables and plots aside)."""
    summary = run.value["summary"]
    figures = {
        key: summary[key]
        for key in ("map5", "map5_known", "map5_new_whale", "map5_without_new_whale", "map5_without_crop")
    }
    figures["threshold"] = round(summary["threshold"], 4)
    figures["baseline_new_whale_frequent"] = summary["baselines"]["new_whale_frequent"]
    figures["baseline_pixel_nn"] = summary["baselines"]["pixel_nn"]
    figures["map5_embedding_only"] = summary["map5_embedding_only"]
    for key in (
        "queries",
        "queries_known",
        "queries_new_whale",
        "queries_unseen_individuals",
        "gallery_size",
    ):
        figures[key] = summary[key]
    if summary["verification"] is not None:
        figures["verification_weight"] = summary["verification"]["weight"]
        figures["verified_pairs"] = run.verify_stats["pairs"]
        figures["verified_pairs_from_cache"] = run.verify_stats["pairs_from_cache"]
    return figures
