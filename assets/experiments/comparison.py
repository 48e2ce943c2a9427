"""`experiment_comparison` as plain code: every materialized partition side by side, per question, with the mean
and spread over seeds, and a verdict only where the gap is larger than the spread.

The verdict rule (one place: `verdict`). For a question, take the recipe's values of the metric over its seeds and
those of the variant with the best mean. With `std` the sample standard deviation over seeds and `range` max - min,

    spread = max(std(best), std(recipe)) + max(range(best), range(recipe))
    gap    = mean(best) - mean(recipe)

a verdict is given only when |gap| > spread (and both have at least two seeds): "best beats the recipe" for a
positive gap, "the recipe stays" for a negative one (every variant then scores lower). Otherwise the verdict is
withheld, saying the spread covers the gap. The rule is deliberately strict: with three seeds a standard deviation
is itself uncertain, so the seeds' range is added to it rather than trusted alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from assets.experiments.settings import BASELINE, Experiment, Experiments
from core.constants import TOP

# The figures shown per variant (mean, std, min, max over seeds), in table order.
SHOWN = [
    "map5",
    "map5_known",
    "map5_new_whale",
    "map5_embedding_only",
    "map5_threshold_path",
    "recall@1",
    "recall@5",
    "recall@20",
    *[f"hit_rank_{r}" for r in range(1, TOP + 1)],
    "train_seconds",
    "epochs",
]
LABELS = {
    "map5": "MAP@5",
    "map5_known": "MAP@5 of known whales",
    "map5_new_whale": "MAP@5 of new_whale photos",
    "map5_embedding_only": "MAP@5 of the embedding alone",
    "map5_threshold_path": "MAP@5 of the threshold path",
    "recall@1": "recall@1",
    "recall@5": "recall@5",
    "recall@20": "recall@20",
    "hit_rank_1": "share right at rank 1",
}


def runs_table(values: Mapping[str, dict], experiments: Experiments) -> pd.DataFrame:
    """One row per stored partition of a variant the file still holds (others are left out), in file order."""
    order = {key: i for i, key in enumerate(experiments.variant_keys())}
    rows = []
    for value in values.values():
        summary = value["summary"]
        if summary["key"] not in order or str(summary["seed"]) not in experiments.seeds:
            continue
        metrics = summary["metrics"]
        rows.append(
            {
                "experiment": summary["experiment"],
                "variant": summary["variant"],
                "key": summary["key"],
                "seed": int(summary["seed"]),
                **{name: np.nan if metrics.get(name) is None else float(metrics[name]) for name in SHOWN},
            }
        )
    columns = ["experiment", "variant", "key", "seed", *SHOWN]
    table = pd.DataFrame(rows, columns=columns)
    table["_order"] = table["key"].map(order)
    return table.sort_values(["_order", "seed"]).drop(columns="_order").reset_index(drop=True)


def _measured(values) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    return values[~np.isnan(values)]


def spread_of(values: np.ndarray) -> tuple[float, float]:
    """(sample std, max - min) of one variant's values over seeds; std is NaN under two seeds."""
    values = _measured(values)
    if len(values) == 0:
        return float("nan"), float("nan")
    std = float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")
    return std, float(values.max() - values.min())


def variants_table(runs: pd.DataFrame, experiments: Experiments) -> pd.DataFrame:
    """One row per variant of the file (seeds 0 where none is stored): mean, std, min, max of every figure."""
    rows = []
    for experiment in experiments.experiments:
        for variant in experiment.variants:
            mine = runs[runs["key"] == variant.key]
            row = {"experiment": experiment.name, "variant": variant.name, "seeds": int(len(mine))}
            for name in SHOWN:
                values = mine[name].dropna().to_numpy(float)
                std, _ = spread_of(values)
                row[f"{name}_mean"] = float(values.mean()) if len(values) else np.nan
                row[f"{name}_std"] = std
                row[f"{name}_min"] = float(values.min()) if len(values) else np.nan
                row[f"{name}_max"] = float(values.max()) if len(values) else np.nan
            rows.append(row)
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class Verdict:
    best: str | None
    recipe_mean: float
    best_mean: float
    gap: float
    spread: float
    given: bool
    text: str


def verdict(recipe: np.ndarray, candidates: Mapping[str, np.ndarray], metric: str = "map5") -> Verdict:
    """The rule of the module docstring: the best candidate against the recipe, or no verdict."""
    label = LABELS.get(metric, metric)
    recipe = _measured(recipe)
    seeded = {name: _measured(v) for name, v in candidates.items() if len(_measured(v)) >= 2}
    nan = float("nan")
    if len(recipe) < 2 or not seeded:
        have = f"the recipe has {len(recipe)} seed(s)" if len(recipe) < 2 else "no variant has two seeds"
        return Verdict(None, nan, nan, nan, nan, False, f"no verdict: {have}; at least two are needed")
    best = max(seeded, key=lambda name: (seeded[name].mean(), name))
    std_best, range_best = spread_of(seeded[best])
    std_recipe, range_recipe = spread_of(recipe)
    spread = max(std_best, std_recipe) + max(range_best, range_recipe)
    gap = float(seeded[best].mean() - recipe.mean())
    means = f"{label} {seeded[best].mean():.3f} against {recipe.mean():.3f}"
    if abs(gap) > spread:
        if gap > 0:
            text = f"{best} beats the recipe: {means} ({gap:+.3f}, more than the spread {spread:.3f})"
        else:
            text = (
                f"the recipe stays: every variant scores lower; the best, {best}, {means} ({gap:+.3f}, more than "
                f"the spread {spread:.3f})"
            )
        return Verdict(best, float(recipe.mean()), float(seeded[best].mean()), gap, spread, True, text)
    text = f"no verdict: the best variant, {best}, {means} ({gap:+.3f}), within the spread {spread:.3f}"
    return Verdict(best, float(recipe.mean()), float(seeded[best].mean()), gap, spread, False, text)


def experiment_verdict(experiment: Experiment, runs: pd.DataFrame, metric: str) -> Verdict:
    mine = runs[runs["experiment"] == experiment.name]
    values = {
        v.name: mine.loc[mine["variant"] == v.name, metric].to_numpy(float) for v in experiment.variants
    }
    recipe = values.pop(BASELINE)
    return verdict(recipe, values, metric)


def verdicts_table(runs: pd.DataFrame, experiments: Experiments) -> pd.DataFrame:
    """One row per question and verdict metric, in file order (each question's metrics in the file's order)."""
    rows = []
    for experiment in experiments.experiments:
        for metric in experiments.metrics:
            rows.append(_verdict_row(experiment, metric, experiment_verdict(experiment, runs, metric)))
    return pd.DataFrame(rows)


def verdicts_of(verdicts: pd.DataFrame, experiment: str) -> pd.DataFrame:
    """A question's verdicts, one row per metric (the first: the file's first metric)."""
    return verdicts[verdicts["experiment"] == experiment]


def _verdict_row(experiment: Experiment, metric: str, found: Verdict) -> dict:
    return {
        "experiment": experiment.name,
        "question": experiment.question,
        "metric": metric,
        "best": found.best,
        "recipe_mean": found.recipe_mean,
        "best_mean": found.best_mean,
        "gap": found.gap,
        "spread": found.spread,
        "given": found.given,
        "text": found.text,
    }


def data_description(values: Mapping[str, dict]) -> dict:
    """What the stored partitions were trained and scored on (several manifests: the data changed mid-sweep)."""
    data = [value["summary"]["data"] for value in values.values()]
    if not data:
        return {"manifests": 0}
    first = data[0]
    return {
        "training_photos": first["training_photos"],
        "validation_photos": first["validation_photos"],
        "queries": first["queries"],
        "queries_known": first["queries_known"],
        "queries_new_whale": first["queries_new_whale"],
        "gallery_size": first["gallery_size"],
        "manifests": len({d["manifest_version"] for d in data}),
    }
