"""The identify stage's metadata: what each asset tells the user, as numbers, tables and plots (through
`core.reporting`, which holds the Dagster metadata types), built beside the assets that report it."""

from __future__ import annotations

from functools import partial

from assets.identify.gallery import CachedEmbedder, GalleryBuild, gallery_statistics
from assets.identify.plots import (
    draw_per_rank,
    draw_rank1_distribution,
    draw_recall,
    draw_reliability,
    draw_threshold_sweep,
)
from assets.identify.report import ReportRun
from assets.identify.report_tables import (
    comparison_table,
    decision_figures,
    evaluation_of,
    recall_frame,
    report_figures,
    weights_table,
)
from assets.identify.submission import (
    SubmissionRun,
    prediction_ranks,
    rank1_labels,
    submission_statistics,
)
from core.constants import NEW_WHALE
from core.reporting import figure_metadata, json_metadata, table_metadata


def gallery_metadata(built: GalleryBuild, embed: CachedEmbedder, torch_device) -> dict:
    """Size, dimension, photos per individual, and what embedding cost (and what the cache saved)."""
    statistics = gallery_statistics(built, embed.computed, embed.from_cache, str(torch_device))
    return {**statistics, "info": json_metadata(built.value["info"])}


def report_metadata(run: ReportRun, seconds: float) -> dict:
    """The headline figures, every method side by side, the threshold sweep and per-rank plots."""
    per_rank, swept = run.main.per_rank, evaluation_of(run)
    rank1 = f" {per_rank['hit_share'].iloc[0]:.0%} at rank 1" if len(per_rank) else ""
    metadata = {
        **report_figures(run),
        **decision_figures(run),
        "comparison": table_metadata(comparison_table(run)),
        "threshold_sweep": figure_metadata(
            partial(draw_threshold_sweep, run=run),
            f"Where should new_whale go by embedding similarity? MAP@5 {swept.map5:.3f} at threshold "
            f"{swept.threshold:.3f}",
            width=6.5,
            height=4.5,
        ),
        "per_rank": table_metadata(per_rank.round(4)),
        "per_rank_plot": figure_metadata(
            partial(draw_per_rank, per_rank=per_rank),
            f"At which rank is the right answer?{rank1}",
            width=5.0,
            height=3.2,
        ),
        "seconds": round(seconds, 2),
        "summary": json_metadata(run.value["summary"]),
        "test_mix": json_metadata(run.value["summary"].get("test_mix") or {}),
    }
    if run.by_weight:
        metadata["verification_weights"] = table_metadata(weights_table(run.by_weight))
    if run.calibrated is not None:
        metadata.update(decision_metadata(run))
    return metadata


def decision_metadata(run: ReportRun) -> dict:
    """Recall@k of each candidate generator, and how calibrated P(same whale) is (out-of-fold pairs)."""
    recall, calibration = recall_frame(run), run.calibrated.calibration
    fused20 = recall.set_index("generator").loc["fused (verified)", "recall@20"]
    return {
        "recall": table_metadata(recall),
        "recall_plot": figure_metadata(
            partial(draw_recall, recall=recall),
            f"Do the candidates keep the whale? {fused20:.1%} of known whales among the first 20 (fused)",
            width=5.5,
            height=3.6,
        ),
        "reliability": table_metadata(calibration.reliability.dropna().round(4)),
        "reliability_plot": figure_metadata(
            partial(draw_reliability, table=calibration.reliability),
            f"Can P(same whale) be taken at its word? ECE {calibration.ece:.3f} on {calibration.pairs} "
            "out-of-fold val pairs",
            width=4.5,
            height=4.0,
        ),
    }


def submission_metadata(run: SubmissionRun, target, validation_summary: dict, seconds: float) -> dict:
    """Where the file is, where its rows came from, how new_whale and the individuals spread over the ranks."""
    first = rank1_labels(run.value)
    return {
        "path": str(target),
        **submission_statistics(run, validation_summary),
        "preview": table_metadata(run.value, max_rows=10),
        "new_whale_share_per_rank": table_metadata(prediction_ranks(run.value).round(4)),
        "top_rank1_labels": table_metadata(first.head(15).rename_axis("label").reset_index(name="photos")),
        "rank1_label_distribution": figure_metadata(
            partial(draw_rank1_distribution, first=first),
            f"Does one whale soak up the predictions? Rank 1: {first.get(NEW_WHALE, 0)} new_whale, "
            f"{first.drop(NEW_WHALE, errors='ignore').size} individuals",
            width=6.0,
            height=3.2,
        ),
        "verification": json_metadata(validation_summary.get("verification") or {}),
        "seconds": round(seconds, 2),
    }
