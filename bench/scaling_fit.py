"""The arithmetic of `bench/scaling.py`: growth exponents, extrapolation, the CSV rows, the README table, the plot.

Plain functions over a table of measurements (one row per size and stage: `photos`, `stage`, `seconds`,
`peak_mb`, `baseline_mb`), so that they are tested without running anything.

- `fit_exponent`: b and a of cost ~ a N^b, by least squares on (log N, log cost);
- the same fit of the CPU seconds (`b_cpu`), which other work on a shared machine disturbs less than the wall time;
- `last_exponent`: b between the two largest sizes (what an extrapolation to larger N should trust: a fixed
  cost per step flattens the small sizes and pulls the fitted b below the growth that remains);
- `extrapolate`: cost at N from the largest measured size with the larger of the two exponents (conservative);
- memory: the peak of a step's process tree is its imports (`baseline_mb`: torch, Dagster, ultralytics, about
  the same at every size) plus what the step holds; the exponent and the extrapolation are of that increment.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

FLOOR = 1e-3  # seconds or MB below this are taken as this on a log scale (a step that took no time)


def fit_exponent(sizes: Sequence[float], costs: Sequence[float]) -> tuple[float, float, float]:
    """(b, a, r2) of cost = a * N^b fitted by least squares on log-log; (nan, nan, nan) under two sizes."""
    x = np.log(np.asarray(sizes, dtype=float))
    y = np.log(np.maximum(np.asarray(costs, dtype=float), FLOOR))
    if len(x) < 2 or np.ptp(x) == 0:
        return math.nan, math.nan, math.nan
    b, log_a = np.polyfit(x, y, 1)
    residual = y - (b * x + log_a)
    spread = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float((residual**2).sum()) / spread if spread > 0 else 1.0
    return float(b), float(math.exp(log_a)), r2


def last_exponent(sizes: Sequence[float], costs: Sequence[float]) -> float:
    """b = log(c2 / c1) / log(N2 / N1) of the two largest sizes; nan under two sizes."""
    order = np.argsort(np.asarray(sizes, dtype=float))
    if len(order) < 2:
        return math.nan
    n1, n2 = (float(sizes[i]) for i in order[-2:])
    c1, c2 = (max(float(costs[i]), FLOOR) for i in order[-2:])
    return math.log(c2 / c1) / math.log(n2 / n1) if n2 != n1 else math.nan


def extrapolate(sizes: Sequence[float], costs: Sequence[float], target: float) -> float:
    """Cost at `target` photos: the largest size's cost times (target / N)^b, b the larger of the fitted and the
    last-interval exponents (never below 0)."""
    order = np.argsort(np.asarray(sizes, dtype=float))
    largest = order[-1]
    exponents = [e for e in (fit_exponent(sizes, costs)[0], last_exponent(sizes, costs)) if not math.isnan(e)]
    b = max([0.0, *exponents])
    return max(float(costs[largest]), 0.0) * (target / float(sizes[largest])) ** b


def stage_summary(rows: pd.DataFrame, target: float) -> pd.DataFrame:
    """One row per stage (in the order stages first appear): the fitted and last exponents of seconds and of the
    memory increment, items per second and peak at the largest size, and both extrapolated to `target`."""
    out = []
    for stage in dict.fromkeys(rows["stage"]):
        part = rows[rows["stage"] == stage].sort_values("photos")
        sizes, seconds = part["photos"].tolist(), part["seconds"].tolist()
        increment = (part["peak_mb"] - part["baseline_mb"]).clip(lower=0.0).tolist()
        b, _, r2 = fit_exponent(sizes, seconds)
        largest = part.iloc[-1]
        out.append(
            {
                "stage": stage,
                "b_time": b,
                "r2_time": r2,
                "b_time_last": last_exponent(sizes, seconds),
                "b_cpu": fit_exponent(sizes, part["cpu_seconds"].tolist())[0]
                if "cpu_seconds" in part
                else math.nan,
                "b_memory": fit_exponent(sizes, increment)[0],
                "items_per_s": largest["photos"] / max(largest["seconds"], FLOOR),
                "peak_mb": float(largest["peak_mb"]),
                "seconds_at_target": extrapolate(sizes, seconds, target),
                "peak_mb_at_target": float(largest["baseline_mb"]) + extrapolate(sizes, increment, target),
            }
        )
    return pd.DataFrame(out)


def _number(value: float, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def _duration(seconds: float) -> str:
    if math.isnan(seconds):
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def markdown_table(rows: pd.DataFrame, target: float, target_name: str = "full size") -> str:
    """The README table: a row per stage, its seconds at every size, the exponents (of seconds over the sizes,
    between the two largest, of CPU seconds), items per second at the largest size, peak MB at every size, the
    exponent of the memory increment, and seconds and peak memory extrapolated to `target` photos."""
    sizes = sorted(rows["photos"].unique())
    summary = stage_summary(rows, target).set_index("stage")
    size_heads = [f"s @ {int(n):,}" for n in sizes]
    head = [
        "stage",
        *size_heads,
        "b (fit)",
        "b (last)",
        "b (cpu)",
        "photos/s",
        "peak MB @ " + " / ".join(f"{int(n):,}" for n in sizes),
    ] + ["b mem", f"{target_name} ({int(target):,}): time, peak (extrapolated)"]
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join(["---"] + ["---:"] * (len(head) - 1)) + " |"]
    for stage, row in summary.iterrows():
        part = rows[rows["stage"] == stage].set_index("photos")
        seconds = [_number(part["seconds"].get(n, math.nan), 2) for n in sizes]
        peaks = " / ".join(_number(part["peak_mb"].get(n, math.nan), 0) for n in sizes)
        cells = [
            str(stage),
            *seconds,
            _number(row["b_time"], 2),
            _number(row["b_time_last"], 2),
            _number(row["b_cpu"], 2),
            _number(row["items_per_s"], 1),
            peaks,
            _number(row["b_memory"], 2),
            f"{_duration(row['seconds_at_target'])}, {row['peak_mb_at_target'] / 1024:.1f} GB",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_loglog(rows: pd.DataFrame, path, title: str = "") -> None:
    """Seconds and peak memory of each stage against photos, on log-log axes, with an N^1 guide."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 5.5))
    for stage in dict.fromkeys(rows["stage"]):
        part = rows[rows["stage"] == stage].sort_values("photos")
        b = fit_exponent(part["photos"], part["seconds"])[0]
        left.plot(part["photos"], part["seconds"].clip(lower=FLOOR), marker="o", label=f"{stage} (b={b:.2f})")
        right.plot(part["photos"], part["peak_mb"], marker="o", label=stage)
    sizes = np.array(sorted(rows["photos"].unique()), dtype=float)
    if len(sizes):
        reference = rows.groupby("photos")["seconds"].max().sort_index().iloc[0]
        left.plot(sizes, reference * sizes / sizes[0], "k--", linewidth=1, label="N^1 guide")
    for axis, label in ((left, "seconds"), (right, "peak resident memory of the step (MB)")):
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("photos in the set")
        axis.set_ylabel(label)
        axis.grid(True, which="both", alpha=0.3)
    left.set_title("How does each stage's time grow with the photos?")
    right.set_title("How does each stage's peak memory grow?")
    left.legend(fontsize=7, ncol=2)
    if title:
        figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
