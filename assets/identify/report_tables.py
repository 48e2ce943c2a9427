"""What `validation_report` shows in tables and figures: every method side by side, the inlier weights tried,
the headline numbers, and the calibrated decision's recall, calibration and cost."""

from __future__ import annotations

import pandas as pd

from assets.identify.report import ReportRun
from assets.identify.tuning import Evaluation


def comparison_table(run: ReportRun) -> pd.DataFrame:
    """Every method on the same val queries: MAP@5 and its tuned threshold."""
    summary, verified = run.value["summary"], run.value["summary"]["verification"] is not None
    threshold_path = run.threshold_path or run.main
    decided = []
    if run.calibrated is not None:
        decided.append(
            {
                "method": "calibrated: keypoint votes + embedding + RANSAC",
                "map5": summary["map5"],
                "threshold": None,
            }
        )
    if run.exhaustive is not None:
        exhaustive = run.exhaustive
        decided.append(
            {
                "method": f"exhaustive RANSAC matcher ({exhaustive.queries} queries; chain "
                f"{exhaustive.chain_map5:.3f} on them)",
                "map5": round(exhaustive.map5, 6),
                "threshold": exhaustive.threshold,
            }
        )
    return pd.DataFrame(
        decided
        + [
            {
                "method": "embedding threshold, cropped flukes" + (", crop-verified" if verified else ""),
                "map5": summary["map5_threshold_path"],
                "threshold": threshold_path.threshold,
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
    mix = summary.get("test_mix") or {}
    figures["map5_test_mix"] = mix.get("map5")
    figures["map5_known_test_mix"] = mix.get("map5_known")
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


def decision_figures(run: ReportRun) -> dict:
    """The calibrated decision's headline numbers (empty when the threshold path decided)."""
    decision = run.value["summary"].get("decision")
    if not decision:
        return {}
    recall = {row["generator"]: row for row in decision["recall"]}
    figures = {
        "calibration_ece": decision["ece"],
        "calibration_pairs": decision["pairs"],
        "recall@20_fused": recall["fused (verified)"]["recall@20"],
        "recall@20_embedding": recall["embedding"]["recall@20"],
        "recall@20_keypoint_votes": recall["keypoint votes"]["recall@20"],
        "new_whale_first_share": decision["new_whale_first_share"],
        "true_new_whale_share": decision["true_new_whale_share"],
        "decision_seconds_per_query": round(decision["seconds"] / max(1, decision["costs"]["queries"]), 4),
        "matched_pairs": decision["costs"]["pairs"],
        "matched_pairs_from_cache": decision["costs"]["pairs_from_cache"],
    }
    if "trailing edge" in recall:
        figures["recall@20_trailing_edge"] = recall["trailing edge"]["recall@20"]
    if decision["exhaustive"]:
        exhaustive = decision["exhaustive"]
        figures["exhaustive_map5"] = exhaustive["map5"]
        figures["exhaustive_chain_map5"] = exhaustive["chain_map5"]
        figures["exhaustive_seconds_per_query"] = exhaustive["seconds_per_query"]
    return figures


def recall_frame(run: ReportRun) -> pd.DataFrame:
    return pd.DataFrame(run.value["summary"]["decision"]["recall"])


def evaluation_of(run: ReportRun) -> Evaluation:
    """The evaluation whose threshold the sweep plot marks (the threshold path's)."""
    return run.threshold_path or run.main
