"""The `experiment_comparison` value from the stored partitions: the tables (comparison.py), the texts (texts.py)
and a plot per question (plots.py), plus what the figures came from."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from assets.experiments.comparison import (
    data_description,
    runs_table,
    variants_table,
    verdicts_of,
    verdicts_table,
)
from assets.experiments.plots import question_plot
from assets.experiments.settings import DEFAULT_FILE, Experiments
from assets.experiments.texts import markdown_text, terminal_text, verdict_lines
from core.artifacts import ExperimentComparison


def describe_data_folder(root: str | Path) -> str:
    """The data folder, and for a generated set how it was generated (its `summary.json`)."""
    summary = Path(root) / "summary.json"
    try:
        found = json.loads(summary.read_text())
        made = f"flukeid synth --scale {found['scale']} --seed {found['seed']}"
        counts = f"{found['train_images']} train / {found['test_images']} test photos"
        return f"{root} (generated: {made}; {counts})"
    except (OSError, ValueError, KeyError, TypeError):
        return str(root)


def shown_path(path: str) -> str:
    """A path inside the repository relative to it (configs/experiments.yaml), any other as it is."""
    try:
        return str(Path(path).resolve().relative_to(DEFAULT_FILE.parents[1]))
    except ValueError:
        return str(path)


def plot_title(question: str, verdicts: Sequence[str]) -> str:
    return f'"{question}": ' + "; ".join(verdicts)


def build_comparison(
    values: Mapping[str, dict], experiments: Experiments, expected: list[str], profile: str, data_folder: str
) -> ExperimentComparison:
    """`values`: partition key -> stored `ExperimentRun` (every materialized partition); `expected`: every
    partition key of the file."""
    runs = runs_table(values, experiments)
    variants = variants_table(runs, experiments)
    verdicts = verdicts_table(runs, experiments)
    stored = set(values)
    info = {
        "seeds": list(experiments.seeds),
        "budget_minutes": experiments.budget_minutes,
        "metrics": list(experiments.metrics),
        "profile": profile,
        "experiments_file": shown_path(experiments.path),
        "data_folder": describe_data_folder(data_folder),
        "data": data_description(values),
        "expected": len(expected),
        "materialized": len([key for key in expected if key in stored]),
        "missing": [key for key in expected if key not in stored],
    }
    plots = {}
    for experiment in experiments.experiments:
        texts = verdict_lines(verdicts_of(verdicts, experiment.name))
        png = question_plot(runs, experiment, experiments.metrics, plot_title(experiment.question, texts))
        plots[experiment.name] = base64.b64encode(png).decode()
    text = {
        "terminal": terminal_text(experiments, variants, verdicts, info),
        "markdown": markdown_text(experiments, variants, verdicts, info),
    }
    return ExperimentComparison(
        runs=runs, variants=variants, verdicts=verdicts, info=info, text=text, plots=plots
    )
