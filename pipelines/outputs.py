"""What `make demo` prints at the end: where the artifacts are, and the headline figures."""

from __future__ import annotations

import json
from pathlib import Path

from pipelines.resources import default_storage_dir


def describe_outputs(storage_dir: str | None = None) -> str:
    root = Path(storage_dir or default_storage_dir()).resolve()
    lines = [f"artifacts: {root}"]
    submission = root / "submission.csv"
    lines.append(f"submission: {submission}" if submission.exists() else "submission: not materialized yet")
    summary = root / "validation_report" / "summary.json"
    if summary.exists():
        figures = json.loads(summary.read_text())
        for key in ("map5", "threshold", "baseline_new_whale_map5", "baseline_pixel_nn_map5"):
            if key in figures:
                lines.append(f"validation {key}: {figures[key]}")
    return "\n".join(lines)
