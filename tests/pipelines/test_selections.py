"""The chain's commands select the chain and never the experiment sweep: the `identify_whales` job, `make demo`'s
and CI's `dagster asset materialize --select`, and `flukeid update`'s loop. The sweep's partitioned assets would
fail a run without a partition key, and its partitions take hours."""

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from dagster import AssetSelection

from core.constants import EXPERIMENTS_GROUP
from pipelines.definitions import CHAIN_SELECTION, chain_assets, defs

REPO = Path(__file__).resolve().parents[2]


def _graph():
    return defs.resolve_asset_graph()


def _non_experiment_assets() -> set[str]:
    graph = _graph()
    return {
        key.to_user_string()
        for key in graph.materializable_asset_keys
        if graph.get(key).group_name != EXPERIMENTS_GROUP
    }


def _resolve(selection: str) -> set[str]:
    # As `dagster asset materialize --select` resolves it (dagster/_cli/asset.py).
    return {
        key.to_user_string() for key in AssetSelection.from_coercible(selection.split(",")).resolve(_graph())
    }


def _selections(lines: list[str]) -> list[str]:
    found = []
    for line in lines:
        if "dagster asset materialize" in line and "raw_image_files" not in line:
            words = shlex.split(line)
            found.append(words[words.index("--select") + 1])
    return found


def test_the_sweep_is_its_own_group_and_the_chain_is_everything_else():
    graph = _graph()
    sweep = {
        key.to_user_string()
        for key in graph.get_all_asset_keys()
        if graph.get(key).group_name == EXPERIMENTS_GROUP
    }
    assert sweep == {"experiment_variants", "experiment_run", "experiment_comparison"}
    chain = {key.to_user_string() for d in chain_assets for key in (getattr(d, "keys", None) or [d.key])}
    assert not chain & sweep and "submission" in chain and "raw_image_files" in chain
    assert _resolve(CHAIN_SELECTION) == _non_experiment_assets()


def test_the_chain_job_selects_every_asset_but_the_sweep():
    job = defs.resolve_job_def("identify_whales")
    selected = {key.to_user_string() for key in job.asset_layer.selected_asset_keys}
    assert selected == _non_experiment_assets()


def test_make_demo_and_ci_select_the_whole_chain_and_not_the_sweep():
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    dry = subprocess.run(
        ["make", "-n", "--always-make", "demo"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    for where, lines in (("make demo", dry.splitlines()), (".ci/run", ci)):
        (selection,) = _selections(lines)
        assert _resolve(selection) == _non_experiment_assets(), where
    # '*' would take the sweep's partitioned assets too, which the CLI refuses without --partition.
    assert {"experiment_run", "experiment_comparison"} <= _resolve("*")


def test_update_leaves_the_sweep_alone():
    from dagster import instance_for_test

    from pipelines.update import chain_statuses

    with instance_for_test() as instance:
        names = {status.key.to_user_string() for status in chain_statuses(defs, instance)}
    assert names == _non_experiment_assets()
