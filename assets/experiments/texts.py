"""The comparison as text: the tables per question for the terminal (`flukeid experiments`), for the asset's
metadata and for docs/experiments.md (`flukeid experiments --write-docs`), all from the same rows."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from assets.experiments.comparison import LABELS, verdicts_of
from assets.experiments.settings import Experiment, Experiments
from core.constants import TOP

IMAGES = "{images}"  # where the markdown's plots lie, filled in by whoever writes the file


def _number(value: float, digits: int = 3) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def spread_cell(row: pd.Series, metric: str) -> str:
    """`mean ± std [min, max]` of one figure over seeds."""
    mean, std = row[f"{metric}_mean"], row[f"{metric}_std"]
    if math.isnan(mean):
        return "-"
    std_text = "" if math.isnan(std) else f" ± {std:.3f}"
    return f"{mean:.3f}{std_text} [{row[f'{metric}_min']:.3f}, {row[f'{metric}_max']:.3f}]"


def rank_cell(row: pd.Series) -> str:
    """The mean share (%) of queries first right at each rank 1..5."""
    shares = [row[f"hit_rank_{r}_mean"] for r in range(1, TOP + 1)]
    if any(math.isnan(share) for share in shares):
        return "-"
    return " / ".join(f"{100 * share:.0f}" for share in shares)


# The figures each variant's row shows as means after the verdict metrics (skipped when one of them).
MEANS = [
    ("map5_known", "known", 3),
    ("map5_new_whale", "new_whale", 3),
    ("map5_embedding_only", "embedding alone", 3),
    ("recall@5", "recall@5", 3),
]


def variant_rows(variants: pd.DataFrame, experiment: Experiment, metrics: Sequence[str]) -> list[list[str]]:
    """Header and one row per variant: seeds, each verdict metric with its spread, the other figures' means."""
    means = [(name, label, digits) for name, label, digits in MEANS if name not in metrics]
    header = [
        "variant",
        "seeds",
        *[f"{LABELS.get(metric, metric)} mean ± std [min, max]" for metric in metrics],
        *[label for _, label, _ in means],
        "right at rank 1/2/3/4/5 (%)",
        "train s",
    ]
    rows = [header]
    for _, row in variants[variants["experiment"] == experiment.name].iterrows():
        rows.append(
            [
                row["variant"],
                str(int(row["seeds"])),
                *[spread_cell(row, metric) for metric in metrics],
                *[_number(row[f"{name}_mean"], digits) for name, _, digits in means],
                rank_cell(row),
                _number(row["train_seconds_mean"], 0),
            ]
        )
    return rows


def fixed_width(rows: list[list[str]], indent: str = "  ") -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        indent + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows
    )


def markdown_table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(rows[0]) + " |", "| " + " | ".join("---" for _ in rows[0]) + " |"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows[1:]])


def verdict_lines(verdicts: pd.DataFrame, style: str = "plain") -> list[str]:
    """One line per verdict metric of a question: `markdown` (the page and the UI), `terminal`, or `plain`
    (`<metric>: <verdict>`, the plots' titles)."""
    lines = []
    for _, verdict in verdicts.iterrows():
        label, text = LABELS.get(verdict["metric"], verdict["metric"]), verdict["text"]
        formats = {
            "markdown": f"**Verdict ({label})**: {text}",
            "terminal": f"  verdict ({label}): {text}",
            "plain": f"{label}: {text}",
        }
        lines.append(formats[style])
    return lines


def question_markdown(
    experiment: Experiment, variants: pd.DataFrame, verdicts: pd.DataFrame, metrics: Sequence[str]
) -> str:
    """One question's section: the quote, the note, the table and its verdicts (the asset's metadata per
    question). `verdicts`: the question's rows of the verdicts table."""
    note = f"\n{experiment.note}\n" if experiment.note else ""
    table = markdown_table(variant_rows(variants, experiment, metrics))
    verdict_text = "\n\n".join(verdict_lines(verdicts, "markdown"))
    return f'> "{experiment.question}"\n{note}\n{table}\n\n{verdict_text}\n'


def terminal_text(
    experiments: Experiments, variants: pd.DataFrame, verdicts: pd.DataFrame, info: dict
) -> str:
    """What `flukeid experiments` prints."""
    blocks = [header_lines(experiments, info, markdown=False)]
    for experiment in experiments.experiments:
        table = fixed_width(variant_rows(variants, experiment, experiments.metrics))
        lines = "\n".join(verdict_lines(verdicts_of(verdicts, experiment.name), "terminal"))
        blocks.append(f'{experiment.name}: "{experiment.question}"\n{table}\n{lines}')
    return "\n\n".join(blocks) + "\n"


def shared_settings(settings: dict) -> str:
    """`{epochs: 40, max_minutes: 3}` -> `epochs=40, max_minutes=3`."""
    return ", ".join(f"{name}={value}" for name, value in settings.items())


def header_lines(experiments: Experiments, info: dict, markdown: bool) -> str:
    data = info.get("data", {})
    bullet = "- " if markdown else ""
    missing = info.get("missing") or []
    missing_text = (
        f" (missing: {', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''})" if missing else ""
    )
    lines = [
        f"{bullet}data: {info.get('data_folder', '?')}: {data.get('training_photos', '?')} train-fold and "
        f"{data.get('validation_photos', '?')} val-fold photos; {data.get('queries', '?')} val queries "
        f"({data.get('queries_known', '?')} known, {data.get('queries_new_whale', '?')} new_whale) against "
        f"{data.get('gallery_size', '?')} gallery photos",
        f"{bullet}profile: {info.get('profile', '?')}; seeds: {', '.join(experiments.seeds)}; time budget: "
        f"{experiments.budget_minutes:g} min of training per run (max_minutes; a variant may set its own)"
        + (f"; every training: {shared_settings(experiments.training)}" if experiments.training else ""),
        f"{bullet}partitions: {info.get('materialized', 0)} of {info.get('expected', 0)} materialized{missing_text}",
        f"{bullet}verdict metrics: {', '.join(LABELS.get(m, m) for m in experiments.metrics)}; a verdict only where "
        "|mean(best) - mean(recipe)| > max(std) + max(range) over seeds",
    ]
    if data.get("manifests", 1) > 1:
        lines.append(
            f"{bullet}WARNING: the partitions were scored on {data['manifests']} different manifests"
        )
    return "\n".join(lines)


def markdown_text(
    experiments: Experiments, variants: pd.DataFrame, verdicts: pd.DataFrame, info: dict
) -> str:
    """docs/experiments.md: header, the rule, then every question with its table, plot and verdict."""
    parts = [
        "# Experiments: the notebook's questions, measured",
        "",
        "Written by `flukeid experiments --write-docs docs/experiments.md` from the stored `experiment_comparison` "
        "asset (assets/experiments/); not edited by hand. The questions and their variants are "
        f"`{info.get('experiments_file', 'configs/experiments.yaml')}`; every variant overrides the current recipe "
        "(the `embedding_model` defaults with the profile's values) and is scored by the path `validation_report` "
        "takes (val fold against train fold, calibrated decision).",
        "",
        header_lines(experiments, info, markdown=True),
        "",
    ]
    for experiment in experiments.experiments:
        mine = verdicts_of(verdicts, experiment.name)
        parts += [
            f"## {experiment.name}",
            "",
            question_markdown(experiment, variants, mine, experiments.metrics),
            f"![{experiment.question}]({IMAGES}/{experiment.name}.png)",
            "",
        ]
    return "\n".join(parts)
