"""The sweep through Dagster on the tiny chain: two partitions of a two-variant experiment materialize (trained from
the chain's tensors and manifest, scored by the identify stage's path), a changed variant makes only its own
partition stale, and rerunning it (by the dagster CLI's --partition) brings everything back to fresh."""

import subprocess
import sys
from pathlib import Path

import pytest
from dagster import DagsterInstance

from pipelines.definitions import build_definitions
from pipelines.experiments import RUNS, VARIANTS, stored_comparison, sweep
from pipelines.staleness import partition_statuses
from pipelines.update import materialize_keys
from tests.chain import dagster_environment
from tests.conftest import copy_tiny_chain

REPO = Path(__file__).resolve().parents[3]
PROBE = """
seeds: [0]
budget_minutes: 1
identification: {{compare_without_crop: false, exhaustive_sample: 0}}
experiments:
  probe:
    question: "does a narrower embedding do as well?"
    variants:
      recipe: {{}}
      narrow: {{training: {{embedding_dim: {dim}}}}}
"""


def _statuses(defs, instance) -> dict[str, str]:
    return {key: status.status for key, status in partition_statuses(defs, instance, RUNS).items()}


@pytest.mark.slow
def test_two_partitions_run_and_a_changed_variant_stales_only_its_own(tiny_chain, tmp_path, monkeypatch):
    work = copy_tiny_chain(tiny_chain, tmp_path)
    experiments = tmp_path / "experiments.yaml"
    experiments.write_text(PROBE.format(dim=16))
    monkeypatch.setenv("FLUKEID_PROFILE", "tiny")

    def definitions():
        return build_definitions(
            experiments_file=str(experiments),
            data_dir=str(work / "data"),
            storage_dir=str(work / "storage"),
            device="cpu",
        )

    lines: list[str] = []
    defs = definitions()
    with DagsterInstance.from_config(str(work / "dagster_home")) as instance:
        assert _statuses(defs, instance) == {"0|probe.recipe": "MISSING", "0|probe.narrow": "MISSING"}
        assert sweep(defs, instance, jobs=1, experiments_file=str(experiments), echo=lines.append) == []
        assert _statuses(defs, instance) == {"0|probe.recipe": "FRESH", "0|probe.narrow": "FRESH"}
        assert sum(": done in " in line for line in lines) == 2
        storage = work / "storage"
        assert (storage / "experiment_run" / "probe.narrow" / "0" / "summary.json").exists()
        comparison = stored_comparison(storage)
        runs = comparison["runs"].set_index("variant")
        assert set(runs.index) == {"recipe", "narrow"} and runs["map5"].between(0, 1).all()
        assert runs["train_seconds"].gt(0).all() and runs["hit_rank_1"].between(0, 1).all()
        assert comparison["info"]["materialized"] == 2 and "no verdict" in comparison["verdicts"]["text"][0]
        assert 'probe: "does a narrower embedding do as well?"' in comparison["text"]["terminal"]

        # One variant changes: after the observation only its partition is stale, for that reason.
        experiments.write_text(PROBE.format(dim=24))
        defs = definitions()
        materialize_keys(defs, instance, [VARIANTS], {})
        statuses = partition_statuses(defs, instance, RUNS)
        assert {key: s.status for key, s in statuses.items()} == {
            "0|probe.recipe": "FRESH",
            "0|probe.narrow": "STALE",
        }
        assert statuses["0|probe.narrow"].causes == (
            "experiment_variants[0|probe.narrow]: has a new data version",
        )

    # The stale partition alone, by the dagster CLI as a user would launch it.
    env = dagster_environment(
        work, work / "data", FLUKEID_PROFILE="tiny", FLUKEID_EXPERIMENTS=str(experiments)
    )
    command = [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "pipelines.definitions"]
    command += ["--select", "experiment_run", "--partition", "0|probe.narrow"]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    with DagsterInstance.from_config(str(work / "dagster_home")) as instance:
        assert set(_statuses(defs, instance).values()) == {"FRESH"}
        lines.clear()
        assert sweep(defs, instance, jobs=1, experiments_file=str(experiments), echo=lines.append) == []
        assert not any(": done in " in line for line in lines)  # nothing left to run; the comparison reruns
    narrow = stored_comparison(work / "storage")["runs"].set_index("variant").loc["narrow"]
    assert narrow["map5"] >= 0
