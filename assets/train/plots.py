"""The history plots of `embedding_model`: draw functions on a matplotlib axis and the questions they answer."""

from __future__ import annotations

import pandas as pd

LOSS_COLOURS = (("loss", "#222222"), ("margin_loss", "#33658a"), ("triplet_loss", "#f26419"))


def draw_losses(ax, history: pd.DataFrame) -> None:
    """Mean loss per step by epoch, total and its two parts, on a log scale."""
    for column, colour in LOSS_COLOURS:
        ax.plot(history["epoch"], history[column], marker="o", ms=3, label=column, color=colour)
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean loss per step (log scale)")
    ax.set_yscale("log")
    ax.legend(fontsize=8)


def losses_title(history: pd.DataFrame) -> str:
    last = history["loss"].dropna()
    return "Is the embedding still learning? " + (
        f"loss {last.iloc[0]:.2f} -> {last.iloc[-1]:.2f}" if len(last) else "no steps"
    )


def draw_val_map5(ax, history: pd.DataFrame, pixel_nn_map5: float, new_whale_map5: float) -> None:
    """Validation MAP@5 by validated epoch, with the two baselines as horizontal lines."""
    valid = history.dropna(subset=["val_map5"])
    ax.plot(valid["epoch"], valid["val_map5"], marker="o", ms=3, color="#2f4858", label="embedding model")
    ax.axhline(pixel_nn_map5, ls="--", color="#86bbd8", label="pixel nearest neighbours")
    ax.axhline(new_whale_map5, ls=":", color="#f6ae2d", label="new_whale + top 4")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation MAP@5")
    ax.set_ylim(0, 1)
    ax.legend(loc="lower right", fontsize=8)


def val_map5_title(history: pd.DataFrame) -> str:
    best = history["val_map5"].dropna()
    return "Does it beat the baselines on held-out photos? " + (
        f"best val MAP@5 {best.max():.3f}" if len(best) else "not validated"
    )
