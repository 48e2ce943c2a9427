"""The identification stage's plots, each drawing on a matplotlib axis it is handed (`core.reporting`'s
`figure_metadata` makes the figure)."""

from __future__ import annotations

import pandas as pd

from assets.identify.report import ReportRun
from core.constants import NEW_WHALE


def sweep_curves(run: ReportRun) -> list[tuple[pd.DataFrame, str, str]]:
    """(sweep, colour, label) of every method the threshold sweep plot shows."""
    verified = run.value["summary"]["verification"] is not None
    curves = [(run.main.sweep, "#33658a", "model" + (" + verification" if verified else ""))]
    if run.embedding_only is not None:
        curves.append((run.embedding_only.sweep, "#55a630", "embedding alone"))
    if run.without_crop is not None:
        curves.append((run.without_crop.sweep, "#86bbd8", "embedding, whole photos"))
    curves.append((run.pixel.sweep, "#f6ae2d", "pixel nearest neighbours"))
    return curves


def draw_threshold_sweep(ax, run: ReportRun) -> None:
    """MAP@5 against the share of queries given new_whale first, a scale every method shares (their scores do
    not), with the chosen threshold, the true new_whale share and the frequent-whale baseline marked."""
    for sweep, colour, label in sweep_curves(run):
        ordered = sweep.sort_values("new_whale_first_share")
        ax.plot(ordered["new_whale_first_share"], ordered["map5"], color=colour, label=label)
    main = run.main
    chosen = main.sweep.iloc[(main.sweep["threshold"] - main.threshold).abs().argmin()]
    ax.plot([chosen["new_whale_first_share"]], [chosen["map5"]], "o", color="black", label="chosen threshold")
    ax.axvline(run.true_new_whale_share, color="grey", ls=":", lw=1, label="true new_whale share")
    baseline = run.value["summary"]["baselines"]["new_whale_frequent"]
    ax.axhline(baseline, color="#f26419", ls="--", label="new_whale + 4 most frequent")
    ax.set_xlabel("share of val photos given new_whale at rank 1")
    ax.set_ylabel("MAP@5 (val fold)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    # Below the axes: inside, the legend would hide the curves.
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3, frameon=False)


def draw_per_rank(ax, per_rank: pd.DataFrame) -> None:
    """Per rank 1..5: the share of val photos first right there, and the share given new_whale there."""
    ranks = per_rank["rank"]
    ax.bar(ranks - 0.2, per_rank["hit_share"], width=0.4, color="#33658a", label="right answer here")
    ax.bar(ranks + 0.2, per_rank["new_whale_share"], width=0.4, color="#f6ae2d", label="new_whale here")
    ax.set_xlabel("rank in the five predictions")
    ax.set_ylabel("share of val photos")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)


def draw_rank1_distribution(ax, first: pd.Series) -> None:
    """How many individuals got 1, 2, ... test photos at rank 1 (`first`: label -> photos at rank 1)."""
    counts = first.drop(NEW_WHALE, errors="ignore").value_counts().sort_index()
    ax.bar(counts.index, counts.values, color="#33658a")
    ax.set_xlabel("test photos given the individual at rank 1")
    ax.set_ylabel("individuals")


def draw_recall(ax, recall: pd.DataFrame) -> None:
    """Recall@k of each candidate generator over known-whale queries: how often the whale is in the first k."""
    columns = [c for c in recall.columns if c.startswith("recall@")]
    ks = [int(c.split("@")[1]) for c in columns]
    colours = {"embedding": "#86bbd8", "keypoint votes": "#f6ae2d", "trailing edge": "#758e4f"}
    for _, row in recall.iterrows():
        colour = colours.get(row["generator"], "#33658a")  # the fusion and anything else: the darkest
        ax.plot(ks, [row[c] for c in columns], marker="o", color=colour, label=row["generator"])
    ax.set_xscale("log")
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_xlabel("first k candidate individuals")
    ax.set_ylabel("share of known whales found")
    ax.set_ylim(min(0.5, float(recall[columns].min().min()) - 0.05), 1.01)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)


def draw_reliability(ax, table: pd.DataFrame) -> None:
    """Reliability diagram: observed share of same-whale pairs against the predicted probability, per bin,
    with the diagonal a calibrated model sits on; marker area grows with the bin's pairs."""
    filled = table[table["pairs"] > 0]
    ax.plot([0, 1], [0, 1], color="#999999", ls="--", lw=1, label="calibrated")
    sizes = 20 + 200 * filled["pairs"] / max(1, filled["pairs"].max())
    ax.plot(filled["mean_probability"], filled["observed_share"], color="#33658a", lw=1)
    ax.scatter(filled["mean_probability"], filled["observed_share"], s=sizes, color="#33658a", label="bins")
    ax.set_xlabel("predicted P(same whale)")
    ax.set_ylabel("observed share of same-whale pairs")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left", fontsize=8)
