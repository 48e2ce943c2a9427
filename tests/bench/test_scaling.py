"""bench/scaling.py: its steps are the chain, and the whole bench runs end to end on two very small sets with
the tiny profile (CSV, plot, table), then resumes without redoing anything. No timing is asserted."""

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from bench.scaling import PER_IMAGE, STEPS, chain_rows, profile_argument, steps_through

ROOT = Path(__file__).resolve().parents[2]


def test_the_steps_are_the_chain_once_in_dependency_order():
    from pipelines.definitions import all_assets
    from tests.chain import ASSETS, SOURCE

    names = [name for step in STEPS for name in step]
    assert names == [SOURCE, *ASSETS]
    position = {name: i for i, step in enumerate(STEPS) for name in step}
    for definition in all_assets:
        deps = getattr(definition, "asset_deps", None) or {}
        for key, parents in deps.items():
            for parent in parents:
                if key.to_user_string() in position and parent.to_user_string() in position:
                    assert position[parent.to_user_string()] <= position[key.to_user_string()], (key, parent)
    # a multi-asset's keys are one step (one op)
    for definition in all_assets:
        keys = [key.to_user_string() for key in getattr(definition, "keys", None) or [definition.key]]
        if len(keys) > 1 and keys[0] in position:
            assert len({position[key] for key in keys}) == 1, keys
    assert PER_IMAGE <= {step[0] for step in STEPS}


def test_a_profile_path_is_made_absolute_and_a_name_is_kept():
    assert profile_argument("tiny") == "tiny"
    assert Path(profile_argument("configs/scaling.yaml")).is_absolute()


def test_the_chain_row_sums_the_steps_and_keeps_the_largest_peak():
    def row(stage, seconds, peak, baseline):
        return {
            "stage": stage,
            "scale": 0.1,
            "photos": 10,
            "seconds": seconds,
            "cpu_seconds": 2 * seconds,
            "peak_mb": peak,
            "baseline_mb": baseline,
        }

    rows = [row("synth", 100.0, 9000.0, 0.0), row("a", 1.0, 700.0, 500.0), row("b", 2.5, 900.0, 600.0)]
    (chain,) = chain_rows(rows)
    assert chain["seconds"] == 3.5 and chain["cpu_seconds"] == 7.0
    assert chain["peak_mb"] == 900.0 and chain["baseline_mb"] == 600.0


@pytest.mark.slow
def test_the_bench_runs_on_two_tiny_sets_and_resumes(tmp_path):
    work, csv, plot = tmp_path / "work", tmp_path / "scaling.csv", tmp_path / "loglog.png"
    # Through image_hashes only: the harness (sizes, subprocess steps, peaks, fit, table, resume) is what is
    # tested here; the whole chain per size is the bench's own job, minutes on 2 cores.
    command = [sys.executable, str(ROOT / "bench" / "scaling.py"), "--scales", "0.004,0.006", "--seed", "3"]
    command += ["--through", "image_hashes"]
    command += [
        "--profile",
        "tiny",
        "--work",
        str(work),
        "--csv",
        str(csv),
        "--plot",
        str(plot),
        "--workers",
        "2",
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    table = pd.read_csv(csv)
    stages = ["synth"] + [step[0] for step in steps_through("image_hashes")] + ["chain (sum of steps)"]
    assert list(dict.fromkeys(table["stage"])) == stages
    assert table.groupby("stage")["photos"].nunique().eq(2).all()
    assert (table["seconds"] > 0).all() and (table["peak_mb"] > 0).all() and (table["cpu_seconds"] > 0).all()
    steps = table[~table["stage"].isin(["synth", "chain (sum of steps)"])]
    assert (steps["peak_mb"] >= steps["baseline_mb"]).all()
    assert plot.read_bytes()[:4] == b"\x89PNG"
    # the markdown table: a header, a rule and a row per stage, with the exponents
    lines = [line for line in done.stdout.splitlines() if line.startswith("|")]
    assert len(lines) == 2 + len(stages)
    assert "b (fit)" in lines[0] and "extrapolated" in lines[0]
    assert "per-image stages with an exponent above 1.15" in done.stdout

    # a second run finds every size done and redoes nothing: the same records, no new logs
    before = {path: path.stat().st_mtime_ns for path in work.rglob("*.json")}
    again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert {path: path.stat().st_mtime_ns for path in work.rglob("*.json")} == before
    assert pd.read_csv(csv)[["stage", "photos", "seconds"]].equals(table[["stage", "photos", "seconds"]])


def test_through_stops_at_the_named_step_and_refuses_an_unknown_one():
    assert steps_through(None) == STEPS
    assert [step[0] for step in steps_through("image_hashes")] == [
        "raw_image_files",
        "raw_images",
        "image_hashes",
    ]
    assert steps_through("submission_matches")[-1] == ("submission", "submission_matches")
    with pytest.raises(SystemExit, match="not a step"):
        steps_through("nonsense")
