"""The comparison: the verdict rule (given only where the gap exceeds the spread), the tables per question, the
texts and plots, and the page `flukeid experiments --write-docs` writes from them."""

import base64
import math

import numpy as np
import pytest

from assets.experiments.artifact import build_comparison
from assets.experiments.comparison import spread_of, verdict
from assets.experiments.settings import parse_experiments
from pipelines.experiments import plan_workers, write_docs


def test_spread_is_the_larger_std_plus_the_larger_range():
    std, width = spread_of(np.array([0.50, 0.52, 0.54]))
    assert std == pytest.approx(0.02) and width == pytest.approx(0.04)
    assert math.isnan(spread_of(np.array([0.5]))[0])


def test_a_gap_larger_than_the_spread_gets_a_verdict_either_way():
    recipe = np.array([0.50, 0.51, 0.52])  # std 0.01, range 0.02
    better = verdict(recipe, {"wider": np.array([0.60, 0.61, 0.62]), "other": np.array([0.4, 0.41, 0.42])})
    assert better.given and better.best == "wider"
    assert better.spread == pytest.approx(0.01 + 0.02) and better.gap == pytest.approx(0.10)
    assert better.text.startswith("wider beats the recipe: MAP@5 0.610 against 0.510")
    worse = verdict(recipe, {"narrow": np.array([0.40, 0.41, 0.42])})
    assert worse.given and worse.gap == pytest.approx(-0.10) and worse.text.startswith("the recipe stays")


def test_a_verdict_is_withheld_when_the_spread_covers_the_gap():
    recipe = np.array([0.50, 0.52, 0.54])  # std 0.02, range 0.04: spread 0.06
    close = verdict(recipe, {"wider": np.array([0.53, 0.55, 0.57])})  # +0.03: inside the spread
    assert not close.given and close.best == "wider" and close.gap == pytest.approx(0.03)
    assert close.text.startswith("no verdict") and "within the spread 0.060" in close.text
    # A variant whose seeds scatter widely widens the spread: a large gap is then not enough.
    noisy = verdict(np.array([0.50, 0.50, 0.50]), {"wild": np.array([0.45, 0.60, 0.75])})
    assert noisy.gap == pytest.approx(0.10) and noisy.spread == pytest.approx(0.15 + 0.30) and not noisy.given
    # Exactly at the spread (std 0.5 + range 1.0 = 1.5 = the gap): still withheld, the gap must exceed it.
    edge = verdict(np.array([0.0, 0.5, 1.0]), {"x": np.array([1.5, 2.0, 2.5])})
    assert edge.gap == edge.spread == 1.5 and not edge.given
    assert verdict(np.array([0.0, 0.5, 1.0]), {"x": np.array([1.6, 2.1, 2.6])}).given


def test_no_verdict_under_two_seeds():
    assert not verdict(np.array([0.5]), {"x": np.array([0.9, 0.9])}).given
    found = verdict(np.array([0.5, 0.5]), {"x": np.array([0.9])})
    assert not found.given and "two" in found.text


def _experiments():
    return parse_experiments(
        {
            "seeds": [0, 1, 2],
            "budget_minutes": 2,
            "metrics": ["map5", "map5_embedding_only"],
            "training": {"epochs": 4},
            "experiments": {
                "probe": {
                    "question": "does a wider embedding help?",
                    "note": "A note.",
                    "variants": {"recipe": {}, "wider": {"training": {"embedding_dim": 16}}},
                },
                "other": {
                    "question": "cross entropy?",
                    "variants": {"recipe": {}, "ce": {"training": {"arcface_margin_degrees": 0}}},
                },
            },
        },
        "probe.yaml",
    )


def _run(experiment: str, variant: str, seed: int, map5: float) -> dict:
    metrics = {
        "map5": map5,
        "map5_known": map5 - 0.1,
        "map5_new_whale": map5 + 0.1,
        "map5_embedding_only": 0.3,
    }
    metrics.update({"map5_threshold_path": 0.3, "recall@1": 0.4, "recall@5": 0.6, "recall@20": 0.8})
    metrics.update({f"hit_rank_{r}": 0.1 * (6 - r) / 2 for r in range(1, 6)})
    metrics.update({"train_seconds": 60.0, "epochs": 4})
    data = {"training_photos": 100, "validation_photos": 20, "queries": 20, "queries_known": 12}
    data.update({"queries_new_whale": 8, "gallery_size": 80, "manifest_version": "m1"})
    summary = {"experiment": experiment, "variant": variant, "key": f"{experiment}.{variant}", "seed": seed}
    return {"summary": {**summary, "metrics": metrics, "data": data}}


def test_the_comparison_sets_the_variants_side_by_side_and_writes_its_page(tmp_path):
    experiments = _experiments()
    values = {}
    for seed in (0, 1, 2):
        values[f"{seed}|probe.recipe"] = _run("probe", "recipe", seed, 0.50 + 0.01 * seed)
        values[f"{seed}|probe.wider"] = _run("probe", "wider", seed, 0.70 + 0.01 * seed)
    values["0|other.recipe"] = _run("other", "recipe", 0, 0.5)
    values["9|gone.variant"] = _run("gone", "variant", 9, 0.9)  # no longer in the file: left out
    expected = [f"{s}|{k}" for k in experiments.variant_keys() for s in experiments.seeds]
    value = build_comparison(values, experiments, expected, "tiny", "/data")

    assert len(value["runs"]) == 7 and "gone" not in set(value["runs"]["experiment"])
    wider = value["variants"].set_index(["experiment", "variant"]).loc[("probe", "wider")]
    assert wider["seeds"] == 3 and wider["map5_mean"] == pytest.approx(0.71) and wider["map5_max"] == 0.72
    # One verdict per question and metric: wider beats the recipe on MAP@5; the embedding alone scores 0.3 in
    # every run, so no gap and no verdict there.
    verdicts = value["verdicts"].set_index(["experiment", "metric"])
    assert len(verdicts) == 4
    assert verdicts.loc[("probe", "map5"), "given"] and verdicts.loc[("probe", "map5"), "best"] == "wider"
    assert not verdicts.loc[("probe", "map5_embedding_only"), "given"]
    assert "within the spread" in verdicts.loc[("probe", "map5_embedding_only"), "text"]
    assert not verdicts.loc[("other", "map5"), "given"]  # one seed of the recipe, none of the variant
    info = value["info"]
    assert (info["materialized"], info["expected"]) == (7, 12) and "1|other.recipe" in info["missing"]
    for name in ("probe", "other"):
        assert base64.b64decode(value["plots"][name])[:8] == b"\x89PNG\r\n\x1a\n"
    terminal = value["text"]["terminal"]
    assert 'probe: "does a wider embedding help?"' in terminal and "0.710 ± 0.010 [0.700, 0.720]" in terminal
    assert "verdict (MAP@5): wider beats the recipe" in terminal and "seeds: 0, 1, 2" in terminal
    assert "verdict (MAP@5 of the embedding alone): no verdict" in terminal
    assert "MAP@5 of the embedding alone mean ± std [min, max]" in terminal

    written = write_docs(value, tmp_path / "docs" / "experiments.md")
    page = (tmp_path / "docs" / "experiments.md").read_text()
    assert "Written by `flukeid experiments --write-docs" in page and "A note." in page
    assert "![does a wider embedding help?](experiments/probe.png)" in page
    assert "time budget: 2 min" in page and "7 of 12 materialized" in page
    assert "every training: epochs=4" in page
    assert "**Verdict (MAP@5)**: wider beats" in page and "**Verdict (MAP@5 of the embedding alone)**" in page
    assert {p.name for p in written} == {"experiments.md", "probe.png", "other.png"}


def test_a_generated_data_folder_is_described_by_how_it_was_generated(tmp_path):
    from assets.experiments.artifact import describe_data_folder

    assert describe_data_folder(tmp_path) == str(tmp_path)
    (tmp_path / "summary.json").write_text(
        '{"scale": 0.05, "seed": 5113, "train_images": 9, "test_images": 3}'
    )
    assert describe_data_folder(tmp_path).endswith(
        "(generated: flukeid synth --scale 0.05 --seed 5113; 9 train / 3 test photos)"
    )


def test_partitions_sharing_a_training_go_to_one_worker_and_the_load_is_balanced():
    plan = {
        "0|a.recipe": ("r0", 5.0),
        "0|b.recipe": ("r0", 5.0),
        "0|a.x": ("x0", 5.0),
        "0|b.y": ("y0", 5.0),
        "1|a.recipe": ("r1", 5.0),
    }
    workers, loads = plan_workers(list(plan), plan, jobs=2)
    where = {key: i for i, worker in enumerate(workers) for key in worker}
    assert where["0|a.recipe"] == where["0|b.recipe"] and len(workers) == 2
    assert abs(loads[0] - loads[1]) <= 6.0 + 1e-9 and sum(loads) == pytest.approx(4 * 5.0 + 5 * 1.0)
    assert plan_workers([], plan, jobs=2) == ([], [])


def test_a_worker_process_reports_its_partitions_and_its_failures(tmp_path):
    import sys

    from pipelines.experiments import run_worker

    script = "print('0|a.x: done in 3 s'); print('0|a.y: FAILED in 1 s'); import sys; sys.exit(1)"
    lines, failed = [], []
    run_worker(
        1, ["0|a.x", "0|a.y"], tmp_path / "w.log", lines.append, failed, [sys.executable, "-c", script]
    )
    assert lines == ["[worker 1] 0|a.x: done in 3 s", "[worker 1] 0|a.y: FAILED in 1 s"] and failed == [
        "0|a.y"
    ]
    failed = []
    run_worker(
        2, ["0|a.x"], tmp_path / "w.log", lines.append, failed, [sys.executable, "-c", "raise SystemExit(3)"]
    )
    assert failed == [f"worker 2 exited with 3 (see {tmp_path / 'w.log'})"]
