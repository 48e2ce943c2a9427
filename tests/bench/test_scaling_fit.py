"""bench/scaling_fit.py: the growth exponents, the extrapolation, the README table and the plot (no timing)."""

import math

import numpy as np
import pandas as pd
import pytest

from bench.scaling_fit import (
    extrapolate,
    fit_exponent,
    last_exponent,
    markdown_table,
    plot_loglog,
    stage_summary,
)

SIZES = [666, 1666, 3332, 6664]


def rows(stages: dict[str, tuple[float, float]], baseline: float = 600.0) -> pd.DataFrame:
    """Measurements of stages whose seconds are a N^b (stage -> (a, b)) and whose memory grows linearly."""
    return pd.DataFrame(
        [
            {
                "stage": stage,
                "photos": n,
                "seconds": a * n**b,
                "cpu_seconds": 2 * a * n**b,
                "peak_mb": baseline + 0.01 * n,
                "baseline_mb": baseline,
            }
            for stage, (a, b) in stages.items()
            for n in SIZES
        ]
    )


@pytest.mark.parametrize("b", [0.0, 0.5, 1.0, 1.5, 2.0])
def test_an_exact_power_law_gives_back_its_exponent_and_factor(b):
    costs = [0.003 * n**b for n in SIZES]
    fitted, a, r2 = fit_exponent(SIZES, costs)
    assert fitted == pytest.approx(b, abs=1e-9)
    assert a == pytest.approx(0.003, rel=1e-6)
    assert r2 == pytest.approx(1.0)
    assert last_exponent(SIZES, costs) == pytest.approx(b, abs=1e-9)


def test_the_fit_is_least_squares_on_log_log():
    costs = [1.0, 3.0, 5.0, 12.0]
    expected = np.polyfit(np.log(SIZES), np.log(costs), 1)[0]
    assert fit_exponent(SIZES, costs)[0] == pytest.approx(expected)
    assert 0.0 < fit_exponent(SIZES, costs)[2] < 1.0


def test_a_fixed_cost_flattens_the_fit_but_not_the_last_interval_as_much():
    # 5 s of fixed cost per step plus linear work: the fit over the sizes reads well below 1, the two largest
    # sizes closer to it, and the extrapolation uses the larger.
    costs = [5.0 + 0.01 * n for n in SIZES]
    fitted, last = fit_exponent(SIZES, costs)[0], last_exponent(SIZES, costs)
    assert fitted < last < 1.0
    assert extrapolate(SIZES, costs, 33_320) == pytest.approx(costs[-1] * (33_320 / SIZES[-1]) ** last)


def test_unsorted_sizes_and_zero_costs_are_handled():
    order = [2, 0, 3, 1]
    sizes = [SIZES[i] for i in order]
    costs = [0.01 * SIZES[i] for i in order]
    assert fit_exponent(sizes, costs)[0] == pytest.approx(1.0)
    assert last_exponent(sizes, costs) == pytest.approx(1.0)
    assert extrapolate(sizes, costs, 2 * SIZES[-1]) == pytest.approx(2 * costs[order.index(3)])
    # a step that took no measurable time is floored, not a log of zero
    assert math.isfinite(fit_exponent(SIZES, [0.0, 0.0, 0.0, 0.0])[0])
    assert extrapolate(SIZES, [0.0] * 4, 10 * SIZES[-1]) == 0.0


def test_fewer_than_two_sizes_give_no_exponent():
    assert all(math.isnan(v) for v in fit_exponent([100], [1.0]))
    assert math.isnan(last_exponent([100], [1.0]))
    assert all(math.isnan(v) for v in fit_exponent([100, 100], [1.0, 2.0]))


def test_the_summary_has_each_stage_in_order_with_its_exponents_and_extrapolation():
    table = rows({"raw_images": (0.002, 1.0), "duplicate_groups": (1e-6, 2.0)})
    summary = stage_summary(table, 33_320).set_index("stage")
    assert list(summary.index) == ["raw_images", "duplicate_groups"]
    assert summary.loc["raw_images", "b_time"] == pytest.approx(1.0)
    assert summary.loc["duplicate_groups", "b_time_last"] == pytest.approx(2.0)
    assert summary.loc["duplicate_groups", "b_cpu"] == pytest.approx(2.0)
    assert summary.loc["raw_images", "items_per_s"] == pytest.approx(1 / 0.002)
    assert summary.loc["raw_images", "seconds_at_target"] == pytest.approx(0.002 * 33_320)
    # memory: the baseline (imports) plus the increment, which grows linearly here
    assert summary.loc["raw_images", "b_memory"] == pytest.approx(1.0)
    assert summary.loc["raw_images", "peak_mb_at_target"] == pytest.approx(600.0 + 0.01 * 33_320)


def test_the_markdown_table_has_a_row_per_stage_and_a_column_per_size():
    table = rows({"raw_images": (0.002, 1.0), "fluke_keypoints": (0.001, 1.2)})
    text = markdown_table(table, 33_320)
    lines = text.splitlines()
    assert len(lines) == 2 + 2
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert header[1:5] == [f"s @ {n:,}" for n in SIZES]
    assert header[5:9] == ["b (fit)", "b (last)", "b (cpu)", "photos/s"]
    assert "extrapolated" in header[-1] and "33,320" in header[-1]
    assert all(line.count("|") == lines[0].count("|") for line in lines)
    keypoints = [cell.strip() for cell in lines[3].strip("|").split("|")]
    assert keypoints[0] == "fluke_keypoints"
    assert keypoints[5] == keypoints[6] == keypoints[7] == "1.20"
    assert keypoints[1] == f"{0.001 * 666**1.2:,.2f}"
    assert keypoints[9] == " / ".join(f"{600 + 0.01 * n:,.0f}" for n in SIZES)
    assert keypoints[-1].endswith("GB")


def test_a_stage_missing_at_one_size_shows_a_dash():
    table = rows({"raw_images": (0.002, 1.0)})
    table = table[table["photos"] != SIZES[0]]
    table = pd.concat([table, rows({"submission": (0.01, 1.0)})], ignore_index=True)
    line = [r for r in markdown_table(table, 33_320).splitlines() if r.startswith("| raw_images")][0]
    assert line.split("|")[2].strip() == "-"


def test_the_plot_is_written(tmp_path):
    path = tmp_path / "loglog.png"
    plot_loglog(rows({"raw_images": (0.002, 1.0), "submission": (0.01, 1.1)}), path, title="test")
    assert path.stat().st_size > 10_000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
