"""One partition of `experiment_run`: a variant trained with its seed and time budget, then scored by the path
`validation_report` scores the chain's model by.

Follow one partition: `partition_settings` (settings.py) gives its training config and identification settings;
`assets.train.run.train_embedding_artifact` trains it from the same `training_manifest` and `fluke_tensors` as
`embedding_model` (checkpointed under `<work>/budget-<minutes>min/<run key>/`, so partitions with the same training
and budget, the `recipe` of every experiment, train once and are found again by the others); the trained model
embeds the known train photos (`assets.identify.gallery.index_gallery`), and `assets.identify.report.validate`
identifies the val fold against the train fold, decides new_whale and scores it (MAP@5, known and new_whale,
hits per rank) exactly as the validation report does. Recall@k of the embedding alone is measured beside it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from assets.experiments.settings import PartitionSettings
from assets.identify.gallery import CachedEmbedder, Embedder, GallerySettings, index_gallery
from assets.identify.identification import Gallery, embedding_candidates, query_embeddings
from assets.identify.report import ReportRun, validate, validation_queries, validation_split
from assets.train.run import CODE_VERSION as TRAIN_CODE_VERSION
from assets.train.run import TrainingSummary, train_embedding_artifact
from core.artifacts import (
    ExperimentRun,
    FlukeKeypoints,
    FlukeTensors,
    GalleryIndex,
    RawImages,
)
from core.constants import TOP
from core.digests import content_version
from models.keypoint_votes import recall_at_k
from models.verification import InlierCache

# -1: trained and scored as the validation report scores the chain's model; the train stage's version folded in.
CODE_VERSION = f"experiment_run-1+{TRAIN_CODE_VERSION}"
RECALL_KS = (1, 5, 10, 20)


def checkpoint_folder(work_dir: Path, settings: PartitionSettings) -> Path:
    """One folder per budget: the run key leaves the budget out, and a run found there under a larger budget would
    hand a longer-trained model to a shorter one."""
    return Path(work_dir) / f"budget-{settings.training.max_minutes:g}min"


def embedding_recall(
    gallery_index: GalleryIndex,
    fluke_tensors: FlukeTensors,
    training_manifest: pd.DataFrame,
    embed: Embedder,
    k: int = 100,
    ks: tuple[int, ...] = RECALL_KS,
) -> dict[int, float]:
    """Recall@ks of the embedding alone: the share of known-whale val queries whose individual is among the first
    k individuals found in the `k` nearest train-fold photos (the queries and gallery `validate` uses)."""
    index = fluke_tensors["index"]
    train_gallery, queries = validation_split(training_manifest, gallery_index["gallery"], index)
    queries = queries[(queries["gallery_row"] >= 0) | (queries["tensor_row"] >= 0)].reset_index(drop=True)
    if queries.empty or train_gallery.empty:
        return {int(k): 0.0 for k in ks}
    gallery = Gallery.subset(gallery_index, train_gallery["row"].to_numpy(), index)
    embeddings = np.asarray(gallery_index["embeddings"], dtype=np.float32)
    vectors = query_embeddings(validation_queries(queries, embeddings), embed, fluke_tensors["tensors"])
    candidates = embedding_candidates(gallery.index, gallery.labels, vectors, k=k, top=max(ks))
    rankings = [[label for label, _ in row] for row in candidates]
    return recall_at_k(rankings, queries["truth"].tolist(), ks)


def run_metrics(report: ReportRun, recall: dict[int, float], training: TrainingSummary) -> dict:
    """The partition's figures: MAP@5 (the decision, known, new_whale, the embedding alone, the threshold path),
    recall@k, the share of queries first right at each rank, training time and epochs."""
    summary = report.value["summary"]
    per_rank = report.main.per_rank.set_index("rank")
    metrics = {
        "map5": summary["map5"],
        "map5_known": summary["map5_known"],
        "map5_new_whale": summary["map5_new_whale"],
        "map5_embedding_only": summary["map5_embedding_only"],
        "map5_threshold_path": summary["map5_threshold_path"],
        **{f"recall@{k}": round(float(value), 6) for k, value in recall.items()},
        **{f"hit_rank_{r}": round(float(per_rank.loc[r, "hit_share"]), 6) for r in range(1, TOP + 1)},
        "train_seconds": round(float(training["training_minutes"]) * 60.0, 1),
        "epochs": int(training["budget"]["epochs_completed"]),
    }
    return metrics


@dataclass
class PartitionRun:
    """One materialization: the value and what the metadata shows beside it."""

    value: ExperimentRun
    report: ReportRun
    training: TrainingSummary
    score_seconds: float


def run_partition(
    settings: PartitionSettings,
    fluke_tensors: FlukeTensors,
    training_manifest: pd.DataFrame,
    raw_images: RawImages,
    fluke_keypoints: FlukeKeypoints,
    data_root: Path,
    device: torch.device,
    work_dir: Path,
    inlier_cache: InlierCache | None = None,
    match_cache: InlierCache | None = None,
    log: Callable[[str], None] = print,
) -> PartitionRun:
    """Train the partition's variant (or find its finished checkpoint) and score it."""
    variant = settings.variant
    log(f"{variant.key} seed {settings.seed}: overrides {variant.overrides or 'none (the recipe)'}")
    model, training = train_embedding_artifact(
        fluke_tensors,
        training_manifest,
        settings.training,
        device,
        checkpoint_folder(work_dir, settings),
        log,
    )
    started = time.perf_counter()
    # No embedding cache: each partition's model embeds the crops once, and the shared cache would only grow.
    embed = CachedEmbedder(model, device, flip=False, batch_size=settings.report.batch_size)
    gallery = index_gallery(embed, fluke_tensors, training_manifest, GallerySettings()).value
    report = validate(
        gallery,
        fluke_tensors,
        training_manifest,
        raw_images,
        data_root,
        embed,
        settings.report,
        inlier_cache,
        fluke_keypoints,
        match_cache,
    )
    recall = embedding_recall(gallery, fluke_tensors, training_manifest, embed, settings.report.k)
    found = report.value["summary"]
    summary = {
        "experiment": variant.experiment,
        "variant": variant.name,
        "key": variant.key,
        "seed": settings.seed,
        "overrides": variant.overrides,
        "training": settings.training.to_dict(),
        "identification": {
            **asdict(settings.report),
            "verification_weights": list(settings.report.verification_weights),
        },
        "metrics": run_metrics(report, recall, training),
        "training_run": {"run_key": training["run_key"], **training["budget"]},
        "data": {
            "training_photos": training["training_photos"],
            "validation_photos": training["validation_photos"],
            "queries": found["queries"],
            "queries_known": found["queries_known"],
            "queries_new_whale": found["queries_new_whale"],
            "gallery_size": found["gallery_size"],
            "manifest_version": content_version(training_manifest),
        },
        "baselines": found["baselines"],
        "decided_by": "calibrated" if found.get("decision") else "threshold",
    }
    value = ExperimentRun(summary=summary, per_rank=report.main.per_rank, history=model["history"])
    return PartitionRun(value, report, training, time.perf_counter() - started)
