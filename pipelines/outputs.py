"""What `make demo` prints at the end: where the artifacts are, and the headline figures."""

from __future__ import annotations

import json
from pathlib import Path

from core.resources import default_storage_dir


def describe_outputs(storage_dir: str | None = None) -> str:
    root = Path(storage_dir or default_storage_dir()).resolve()
    lines = [f"artifacts: {root}"]
    submission = root / "submission.csv"
    lines.append(f"submission: {submission}" if submission.exists() else "submission: not materialized yet")
    if (root / "matches.csv").exists():
        lines.append(f"matches (rank, label, probability, evidence per test photo): {root / 'matches.csv'}")
    summary = root / "validation_report" / "summary.json"
    if summary.exists():
        figures = json.loads(summary.read_text())
        baselines = figures.get("baselines", {})
        decision = figures.get("decision")
        how = (
            f"calibrated P(same whale), ECE {decision['ece']:.3f}"
            if decision
            else f"new_whale threshold {figures['threshold']:.3f}"
        )
        lines.append(f"validation MAP@5: {figures['map5']:.4f} ({how})")
        mix = figures.get("test_mix")
        if mix and mix.get("map5") is not None:
            # The val fold holds one photo per whale; weighted to the test set's mix it predicts test MAP@5.
            lines.append(
                f"validation MAP@5 weighted to the test set's mix: {mix['map5']:.4f} (known whales by their "
                f"photos, new_whale {mix['new_whale_share_target']:.0%})"
            )
        lines.append(
            "baselines on the same fold: new_whale + most frequent "
            f"{baselines.get('new_whale_frequent', float('nan')):.4f}, "
            f"pixel nearest neighbours {baselines.get('pixel_nn', float('nan')):.4f}"
        )
    return "\n".join(lines)
