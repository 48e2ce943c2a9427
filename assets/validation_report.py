"""Stage: validation. How well the chain identifies held-out photos, and the new_whale threshold it should use.

The gallery is the train fold's known photos, the queries are the val fold (known individuals and new_whale
photos). A val photo whose individual has no train-fold photo counts as `new_whale`, as a test photo of an unseen
whale would. The same ranking rule as the submission (`models.retrieval.rank_individuals`) is swept over
thresholds; the best one goes to `submission`. Two baselines run on the same queries: `new_whale` then the four
most frequent individuals, and nearest neighbours on whole-image pixels (with their own tuned threshold). The
same model on whole images (no crop stage) shows what the crop is worth.

Geometric verification (`models.verification`) re-scores each query's first individuals by how many SIFT matches
one homography explains; the weight of those inliers is chosen here with the threshold (weight 0 is the
embedding alone, reported beside it) and `submission` applies both.
"""

import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    Config,
    DataVersion,
    MetadataValue,
    Output,
    asset,
    asset_check,
)
from PIL import Image
from pydantic import Field

from assets.gallery_index import (
    Embedder,
    embed_rows,
    embedding_cache,
    inlier_cache,
    model_embedder,
    tensor_rows,
)
from core.constants import NEW_WHALE, TOP
from core.digests import content_version
from core.metrics import map_at_5, rank_statistics
from core.parallel import parallel_map
from core.profiles import asset_version
from core.reporting import figure_metadata, table_metadata
from core.resources import ComputeDevice, FlukeData, FlukeStorage
from models.retrieval import (
    Candidates,
    choose_threshold,
    exact_index,
    individual_candidates,
    most_frequent_labels,
    place_new_whale,
    search,
    sweep_thresholds,
    threshold_sweep,
)
from models.verification import VerificationSettings, Verified, rescore, verify_candidates

# ---------------------------------------------------------------------------------------------------------------
# plain functions


@dataclass
class Evaluation:
    """One gallery/queries evaluation with its tuned threshold."""

    map5: float
    threshold: float
    sweep: pd.DataFrame
    predictions: list[list[str]]
    per_rank: pd.DataFrame
    map5_at_no_new_whale: float


def tune(
    candidates: Candidates, truths: Sequence[str], fill_labels: Sequence[str], sweep_points: int = 101
) -> Evaluation:
    """The new_whale threshold that maximises MAP@5 of these candidates, and the predictions it gives."""
    thresholds = sweep_thresholds(candidates, sweep_points)
    sweep = threshold_sweep(candidates, truths, thresholds, fill_labels)
    threshold = choose_threshold(sweep)
    predictions = place_new_whale(candidates, threshold, fill_labels)
    return Evaluation(
        map5=map_at_5(predictions, truths),
        threshold=threshold,
        sweep=sweep,
        predictions=predictions,
        per_rank=rank_statistics(predictions, truths),
        map5_at_no_new_whale=float(sweep.sort_values("threshold")["map5"].iloc[0]),
    )


def evaluate(
    gallery_embeddings: np.ndarray,
    gallery_labels: Sequence[str],
    query_embeddings: np.ndarray,
    truths: Sequence[str],
    k: int = 50,
    sweep_points: int = 101,
    fill_labels: Sequence[str] | None = None,
) -> Evaluation:
    """Exact search, the one ranking rule, and the new_whale threshold that maximises MAP@5 on these queries."""
    if fill_labels is None:
        fill_labels = most_frequent_labels(gallery_labels)
    similarities, neighbours = search(exact_index(gallery_embeddings), query_embeddings, k)
    candidates = individual_candidates(similarities, neighbours, gallery_labels)
    return tune(candidates, truths, fill_labels, sweep_points)


def choose_verification_weight(
    verified: Verified,
    truths: Sequence[str],
    fill_labels: Sequence[str],
    weights: Sequence[float],
    inlier_cap: int,
    sweep_points: int = 101,
) -> tuple[float, dict[float, Evaluation]]:
    """The inlier weight (and, within each, the threshold) of best MAP@5; ties go to the smaller weight.

    Returns the chosen weight and the evaluation at every weight tried (weight 0: the embedding alone).
    """
    if not weights:
        raise ValueError("no verification weights to try")
    evaluations = {
        float(w): tune(rescore(verified, float(w), inlier_cap), truths, fill_labels, sweep_points)
        for w in sorted(set(weights))
    }
    best = max(evaluations.items(), key=lambda item: (item[1].map5, -item[0]))[0]
    return best, evaluations


def frequent_baseline(gallery_labels: Sequence[str], truths: Sequence[str]) -> float:
    """MAP@5 of the same row for every query: `new_whale`, then the four most frequent individuals."""
    row = [NEW_WHALE, *most_frequent_labels(gallery_labels, TOP - 1)]
    return map_at_5([row] * len(truths), truths)


def validation_split(
    training_manifest: pd.DataFrame, gallery: pd.DataFrame, tensor_index: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train-fold gallery rows of `gallery`, val queries: image, label, truth, gallery_row, tensor_row).

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


def query_embeddings(
    queries: pd.DataFrame, gallery_embeddings: np.ndarray, embed: Embedder, tensors: np.ndarray
) -> np.ndarray:
    """Embeddings of the val photos: reused from the gallery where it has them (known individuals), embedded
    with the same model and settings otherwise (val `new_whale` photos are not in the gallery)."""
    dim = gallery_embeddings.shape[1]
    result = np.zeros((len(queries), dim), np.float32)
    in_gallery = queries["gallery_row"].to_numpy() >= 0
    result[in_gallery] = gallery_embeddings[queries["gallery_row"].to_numpy()[in_gallery]]
    if (~in_gallery).any():
        result[~in_gallery] = embed_rows(embed, tensors, queries["tensor_row"].to_numpy()[~in_gallery])
    return result


def load_whole_image(path: Path, height: int, width: int, channels: int) -> np.ndarray:
    """One photo, uncropped, resized to height x width (aspect not kept, like a crop stretched to the tensor
    shape), as uint8 C x H x W. Decoded at reduced scale by libjpeg where the target is much smaller."""
    with Image.open(path) as image:
        mode = "L" if channels == 1 else "RGB"
        image.draft(mode, (width, height))
        pixels = image.convert(mode).resize((width, height), Image.BILINEAR)
        array = np.asarray(pixels, dtype=np.uint8)
    return array[None] if channels == 1 else np.ascontiguousarray(array.transpose(2, 0, 1))


def load_whole_images(
    paths: Sequence[Path], height: int, width: int, channels: int, workers: int | None = None
) -> np.ndarray:
    """Whole-image tensors (uint8 N x C x H x W) for the no-crop comparison and the pixel baseline."""
    loader = partial(load_whole_image, height=height, width=width, channels=channels)
    arrays = parallel_map(loader, [Path(p) for p in paths], workers=workers)
    if not arrays:
        return np.zeros((0, channels, height, width), np.uint8)
    return np.stack(arrays)


def pixel_features(tensors: np.ndarray, side: int = 32) -> np.ndarray:
    """The pixel baseline's embedding: grey, shrunk to side x side (area average), centred, L2-normalised."""
    import torch
    import torch.nn.functional as F

    grey = torch.from_numpy(np.asarray(tensors, dtype=np.float32)).mean(dim=1, keepdim=True)
    small = F.adaptive_avg_pool2d(grey, (side, side)).flatten(1)
    small = small - small.mean(dim=1, keepdim=True)
    small = small / small.norm(dim=1, keepdim=True).clamp_min(1e-6)
    return small.numpy().astype(np.float32)


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
) -> dict:
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
    return {"summary": summary, "per_rank": main.per_rank, "sweep": main.sweep, "predictions": predictions}


def _subset_map(predictions: list[list[str]], truths: list[str], known: bool) -> float | None:
    chosen = [i for i, t in enumerate(truths) if (t != NEW_WHALE) == known]
    if not chosen:
        return None
    return round(map_at_5([predictions[i] for i in chosen], [truths[i] for i in chosen]), 6)


# ---------------------------------------------------------------------------------------------------------------
# Dagster


class ValidationReportConfig(Config):
    k: int = Field(default=100, description="Gallery neighbours searched per query before aggregating.")
    sweep_points: int = Field(
        default=101, description="Thresholds tried (quantiles of candidate similarities)."
    )
    compare_without_crop: bool = Field(
        default=True,
        description="Also embed whole (uncropped) photos with the same model: MAP@5 without crop.",
    )
    pixel_side: int = Field(default=32, description="Side of the grey thumbnails of the pixel baseline.")
    batch_size: int = Field(default=128, description="Embedding batch size.")
    verify_candidates: int = Field(
        default=20,
        description="Individuals per query re-scored by geometric verification (SIFT + RANSAC); 0: off.",
    )
    verify_photos: int = Field(
        default=4, description="Gallery photos of each candidate compared (the most similar to the query)."
    )
    local_features: int = Field(default=300, description="SIFT keypoints per crop.")
    inlier_cap: int = Field(default=20, description="Inliers beyond this add nothing to the score.")
    verification_weights: list[float] = Field(
        default=[0.0, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64],
        description="Score bonus per inlier to try; the best (with its threshold) goes to submission.",
    )
    workers: int = Field(default=2, description="Threads for feature extraction and matching.")

    def verification(self) -> VerificationSettings:
        return VerificationSettings(
            candidates=self.verify_candidates,
            photos_per_individual=self.verify_photos,
            max_features=self.local_features,
            inlier_cap=self.inlier_cap,
            workers=self.workers,
        )


@asset(
    code_version=asset_version("validation_report", "validation_report-3"),
    group_name="identify",
    description="MAP@5 on the held-out fold, the tuned new_whale threshold, per-rank statistics and baselines.",
)
def validation_report(
    context: AssetExecutionContext,
    config: ValidationReportConfig,
    data: FlukeData,
    storage: FlukeStorage,
    device: ComputeDevice,
    gallery_index: dict,
    embedding_model: dict,
    fluke_tensors: dict,
    training_manifest: pd.DataFrame,
    raw_images: dict,
) -> Output[dict]:
    started = time.perf_counter()
    gallery = gallery_index["gallery"]
    embeddings = np.asarray(gallery_index["embeddings"], dtype=np.float32)
    flip = bool(gallery_index.get("info", {}).get("flip", False))
    tensors = fluke_tensors["tensors"]
    train_gallery, queries = validation_split(training_manifest, gallery, fluke_tensors["index"])
    missing = queries[(queries["gallery_row"] < 0) & (queries["tensor_row"] < 0)]
    if len(missing):
        context.log.warning(f"{len(missing)} val photos have no tensor and are not evaluated")
        queries = queries.drop(missing.index).reset_index(drop=True)
    if queries.empty or train_gallery.empty:
        raise ValueError("the val fold or the train-fold gallery is empty: nothing to validate")
    torch_device = device.torch_device()
    embed = model_embedder(
        embedding_model, torch_device, flip=flip, batch_size=config.batch_size, cache=embedding_cache(storage)
    )

    gallery_labels = train_gallery["label"].tolist()
    truths = queries["truth"].tolist()
    gallery_vectors = embeddings[train_gallery["row"].to_numpy()]
    query_vectors = query_embeddings(queries, embeddings, embed, tensors)
    settings = config.verification()
    verification, embedding_only, weights_table, verify_stats = None, None, None, {}
    if settings.enabled:
        started_verify = time.perf_counter()
        fill = most_frequent_labels(gallery_labels)
        similarities, neighbours = search(exact_index(gallery_vectors), query_vectors, config.k)
        candidates = individual_candidates(similarities, neighbours, gallery_labels, top=settings.candidates)
        gallery_tensor_rows = tensor_rows(fluke_tensors["index"], train_gallery["image"], "train")
        verified = verify_candidates(
            candidates,
            query_vectors,
            tensors[queries["tensor_row"].to_numpy()],
            gallery_vectors,
            gallery_labels,
            lambda rows: tensors[gallery_tensor_rows[rows]],
            settings,
            cache=inlier_cache(storage),
            stats=verify_stats,
        )
        weight, by_weight = choose_verification_weight(
            verified, truths, fill, config.verification_weights, settings.inlier_cap, config.sweep_points
        )
        main = by_weight[weight]
        embedding_only = (
            tune(rescore(verified, 0.0, settings.inlier_cap), truths, fill, config.sweep_points)
            if 0.0 not in by_weight
            else by_weight[0.0]
        )
        verification = {**settings.to_dict(), "weight": weight}
        weights_table = pd.DataFrame(
            [
                {"weight": w, "map5": round(e.map5, 4), "threshold": round(e.threshold, 4)}
                for w, e in by_weight.items()
            ]
        )
        context.log.info(
            f"geometric verification: weight {weight}, MAP@5 {main.map5:.4f} "
            f"(embedding alone {embedding_only.map5:.4f}) in {time.perf_counter() - started_verify:.1f} s"
        )
    else:
        main = evaluate(gallery_vectors, gallery_labels, query_vectors, truths, config.k, config.sweep_points)

    # Whole photos, for the no-crop comparison (same model) and the pixel baseline.
    images = raw_images["images"]
    paths = images[images["split"] == "train"].drop_duplicates("image").set_index("image")["path"]
    whole_paths = [data.root / paths[i] for i in [*train_gallery["image"], *queries["image"]]]
    _, channels, height, width = tensors.shape
    if config.compare_without_crop:
        whole = load_whole_images(whole_paths, height, width, channels)
    else:
        whole = load_whole_images(whole_paths, config.pixel_side, config.pixel_side, channels)
    whole_gallery, whole_queries = whole[: len(train_gallery)], whole[len(train_gallery) :]
    without_crop = None
    if config.compare_without_crop:
        without_crop = evaluate(
            embed(whole_gallery), gallery_labels, embed(whole_queries), truths, config.k, config.sweep_points
        )
    pixel = evaluate(
        pixel_features(whole_gallery, config.pixel_side),
        gallery_labels,
        pixel_features(whole_queries, config.pixel_side),
        truths,
        config.k,
        config.sweep_points,
    )
    baselines = {"new_whale_frequent": frequent_baseline(gallery_labels, truths), "pixel_nn": pixel.map5}
    value = report_value(
        main,
        queries,
        len(train_gallery),
        baselines,
        without_crop,
        config.k,
        flip,
        verification,
        embedding_only,
    )
    summary = value["summary"]
    seconds = time.perf_counter() - started

    true_new_whale_share = float(np.mean([t == NEW_WHALE for t in truths]))

    def sweep_plot(ax):
        # x: the share of queries given new_whale first, a scale every method shares (their scores do not).
        curves = [(main, "#33658a", "model" + (" + verification" if verification else ""))]
        if embedding_only is not None:
            curves.append((embedding_only, "#55a630", "embedding alone"))
        if without_crop is not None:
            curves.append((without_crop, "#86bbd8", "embedding, whole photos"))
        curves.append((pixel, "#f6ae2d", "pixel nearest neighbours"))
        for evaluation, colour, label in curves:
            sweep = evaluation.sweep.sort_values("new_whale_first_share")
            ax.plot(sweep["new_whale_first_share"], sweep["map5"], color=colour, label=label)
        chosen = main.sweep.iloc[(main.sweep["threshold"] - main.threshold).abs().argmin()]
        ax.plot(
            [chosen["new_whale_first_share"]], [chosen["map5"]], "o", color="black", label="chosen threshold"
        )
        ax.axvline(true_new_whale_share, color="grey", ls=":", lw=1, label="true new_whale share")
        ax.axhline(
            baselines["new_whale_frequent"], color="#f26419", ls="--", label="new_whale + 4 most frequent"
        )
        ax.set_xlabel("share of val photos given new_whale at rank 1")
        ax.set_ylabel("MAP@5 (val fold)")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        # Below the axes: inside, the legend would hide the curves.
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3, frameon=False)

    def per_rank_plot(ax):
        ranks = main.per_rank["rank"]
        ax.bar(ranks - 0.2, main.per_rank["hit_share"], width=0.4, color="#33658a", label="right answer here")
        ax.bar(
            ranks + 0.2, main.per_rank["new_whale_share"], width=0.4, color="#f6ae2d", label="new_whale here"
        )
        ax.set_xlabel("rank in the five predictions")
        ax.set_ylabel("share of val photos")
        ax.set_ylim(0, 1)
        ax.legend(fontsize=8)

    metadata = {
        "map5": summary["map5"],
        "threshold": round(summary["threshold"], 4),
        "map5_known": summary["map5_known"],
        "map5_new_whale": summary["map5_new_whale"],
        "map5_without_new_whale": summary["map5_without_new_whale"],
        "map5_without_crop": summary["map5_without_crop"],
        "baseline_new_whale_frequent": summary["baselines"]["new_whale_frequent"],
        "baseline_pixel_nn": summary["baselines"]["pixel_nn"],
        "map5_embedding_only": summary["map5_embedding_only"],
        "comparison": table_metadata(
            pd.DataFrame(
                [
                    {
                        "method": "model, cropped flukes" + (", verified" if verification else ""),
                        "map5": summary["map5"],
                        "threshold": main.threshold,
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
                    {"method": "pixel nearest neighbours", "map5": pixel.map5, "threshold": pixel.threshold},
                    {
                        "method": "new_whale + 4 most frequent",
                        "map5": baselines["new_whale_frequent"],
                        "threshold": None,
                    },
                ]
            )
        ),
        "threshold_sweep": figure_metadata(
            sweep_plot,
            f"Where should new_whale go? MAP@5 {main.map5:.3f} at threshold {main.threshold:.3f}",
            width=6.5,
            height=4.5,
        ),
        "per_rank": table_metadata(main.per_rank.round(4)),
        "per_rank_plot": figure_metadata(
            per_rank_plot,
            f"At which rank is the right answer? {main.per_rank['hit_share'].iloc[0]:.0%} at rank 1"
            if len(main.per_rank)
            else "At which rank is the right answer?",
            width=5.0,
            height=3.2,
        ),
        "queries": summary["queries"],
        "queries_known": summary["queries_known"],
        "queries_new_whale": summary["queries_new_whale"],
        "queries_unseen_individuals": summary["queries_unseen_individuals"],
        "gallery_size": summary["gallery_size"],
        "seconds": round(seconds, 2),
        "summary": MetadataValue.json(summary),
    }
    if weights_table is not None:
        metadata["verification_weight"] = verification["weight"]
        metadata["verification_weights"] = table_metadata(weights_table)
        metadata["verified_pairs"] = verify_stats["pairs"]
        metadata["verified_pairs_from_cache"] = verify_stats["pairs_from_cache"]
    context.log.info(f"validation MAP@5 {summary['map5']:.4f} at new_whale threshold {main.threshold:.4f}")
    return Output(value, metadata=metadata, data_version=DataVersion(content_version(value)))


@asset_check(
    asset=validation_report, description="Validation MAP@5 beats the new_whale + most-frequent baseline."
)
def validation_beats_new_whale_baseline(validation_report: dict) -> AssetCheckResult:
    summary = validation_report["summary"]
    baseline = summary["baselines"]["new_whale_frequent"]
    return AssetCheckResult(
        passed=bool(summary["map5"] > baseline),
        metadata={"map5": summary["map5"], "baseline_new_whale_frequent": baseline},
    )
