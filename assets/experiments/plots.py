"""One plot per question: each verdict metric per variant (each seed a dot, the mean with its std), beside the
share of queries first right at each of the five ranks (mean over seeds), as PNG bytes."""

from __future__ import annotations

import io
import textwrap
from collections.abc import Sequence

import numpy as np
import pandas as pd

from assets.experiments.comparison import LABELS
from assets.experiments.settings import BASELINE, Experiment
from core.constants import TOP

RECIPE_COLOUR, VARIANT_COLOUR = "#33658a", "#f6ae2d"


def draw_metric(ax, runs: pd.DataFrame, experiment: Experiment, metric: str) -> None:
    names = [variant.name for variant in experiment.variants]
    for x, name in enumerate(names):
        values = runs.loc[runs["variant"] == name, metric].dropna().to_numpy(float)
        colour = RECIPE_COLOUR if name == BASELINE else VARIANT_COLOUR
        if len(values):
            jitter = np.linspace(-0.12, 0.12, len(values)) if len(values) > 1 else np.zeros(1)
            ax.scatter(x + jitter, values, s=18, color=colour, alpha=0.7, zorder=3)
            std = values.std(ddof=1) if len(values) > 1 else 0.0
            ax.errorbar(x + 0.25, values.mean(), yerr=std, fmt="D", color="black", capsize=4, zorder=4)
    ax.set_xticks(range(len(names)), names, rotation=15, fontsize=8)
    ax.set_title(LABELS.get(metric, metric), fontsize=9)
    ax.set_ylabel("dots: seeds; diamond: mean ± std", fontsize=8)
    ax.grid(axis="y", alpha=0.3)


def draw_ranks(ax, runs: pd.DataFrame, experiment: Experiment) -> None:
    names = [variant.name for variant in experiment.variants]
    width = 0.8 / max(1, len(names))
    ranks = np.arange(1, TOP + 1)
    for i, name in enumerate(names):
        mine = runs[runs["variant"] == name]
        shares = [100 * mine[f"hit_rank_{r}"].mean() if len(mine) else 0.0 for r in ranks]
        ax.bar(ranks - 0.4 + width * (i + 0.5), shares, width=width, label=name)
    ax.set_xticks(ranks)
    ax.set_xlabel("rank", fontsize=8)
    ax.set_ylabel("queries first right there (%)", fontsize=8)
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)


def question_plot(
    runs: pd.DataFrame, experiment: Experiment, metrics: Sequence[str], title: str, dpi: int = 80
) -> bytes:
    """The question's panels (one per verdict metric, then the ranks) under `title` (its question and verdicts),
    as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mine = runs[runs["experiment"] == experiment.name]
    panels = len(metrics) + 1
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 4.2), dpi=dpi)
    try:
        for ax, metric in zip(axes, metrics):
            draw_metric(ax, mine, experiment, metric)
        draw_ranks(axes[-1], mine, experiment)
        fig.suptitle(textwrap.fill(title, width=60 * panels), fontsize=9)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
    finally:
        plt.close(fig)
    return buffer.getvalue()
