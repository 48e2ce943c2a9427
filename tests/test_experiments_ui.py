"""The experiment sweep in the Dagster UI: `experiment_run`'s partitions page shows the variants and seeds, and the
comparison's plot opens from its metadata, in a real headless Chromium (as tests/test_ui.py drives it).

The home is a copy of the tiny chain on which two partitions of a two-variant experiment and the comparison were
materialized (`flukeid experiments --run`'s sweep, in process); `dagster dev` then serves it with that experiments
file (`FLUKEID_EXPERIMENTS`). Screenshots go to `$FLUKEID_TEST_OUTPUT/ui` (default `test-output/ui`)."""

import os
import signal
import subprocess
import sys

import pytest
from dagster import DagsterInstance

from pipelines.definitions import build_definitions
from pipelines.experiments import sweep
from tests.chain import dagster_environment
from tests.conftest import copy_tiny_chain
from tests.test_ui import LOCATION, REPO, browser, free_port, open_page, shots, wait_for_server  # noqa: F401

PROBE = """
seeds: [0]
budget_minutes: 1
identification: {compare_without_crop: false, exhaustive_sample: 0}
experiments:
  probe:
    question: "does a narrower embedding do as well?"
    variants:
      recipe: {}
      narrow: {training: {embedding_dim: 16}}
"""


@pytest.fixture(scope="module")
def swept_ui(tiny_chain, tmp_path_factory):
    """The tiny chain with the probe's two partitions and the comparison materialized, served by `dagster dev`."""
    work = copy_tiny_chain(tiny_chain, tmp_path_factory.mktemp("experiments_ui"))
    experiments = work / "experiments.yaml"
    experiments.write_text(PROBE)
    env = dagster_environment(
        work, work / "data", FLUKEID_PROFILE="tiny", FLUKEID_EXPERIMENTS=str(experiments)
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FLUKEID_PROFILE", "tiny")
        defs = build_definitions(
            experiments_file=str(experiments),
            data_dir=str(work / "data"),
            storage_dir=str(work / "storage"),
            device="cpu",
        )
        with DagsterInstance.from_config(str(work / "dagster_home")) as instance:
            assert (
                sweep(defs, instance, jobs=1, experiments_file=str(experiments), echo=lambda line: None) == []
            )
    port, log = free_port(), work / "dagster_dev.log"
    command = [sys.executable, "-m", "dagster", "dev", "-m", LOCATION, "-h", "127.0.0.1", "-p", str(port)]
    with open(log, "w") as out:
        process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_server(base, process, log)
        yield {"base": base, "log": log}
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=20)  # launched where SIGINT is ignored it never stops: do not wait long
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.mark.slow
def test_the_partitions_page_and_the_comparison_plot(browser, swept_ui, shots):  # noqa: F811
    base = swept_ui["base"]

    # 1. experiment_run's partitions: both variants of the probe, seed 0, materialized.
    page = open_page(browser, base, "/assets/experiment_run?view=partitions")
    for text in ("probe.recipe", "probe.narrow", "Materialized (2)", "Missing (0)"):
        page.get_by_text(text).first.wait_for()
    page.screenshot(path=str(shots / "experiment_run__partitions.png"), full_page=True)
    page.close()

    # 2. experiment_comparison: the question's table and verdict, and its plot opening as a loaded picture.
    page = open_page(browser, base, "/assets/experiment_comparison")
    table = page.locator("table").filter(has_text="probe_plot")
    table.first.wait_for()
    text = table.first.inner_text()
    for key in ("probe", "probe_plot", "verdicts", "partitions_materialized"):
        assert key in text, f"experiment_comparison: no {key} in its metadata"
    row = table.first.locator("tr").filter(has=page.get_by_text("probe_plot", exact=True))
    row.get_by_text("Show Markdown").click()
    dialog = page.get_by_role("dialog")
    picture = dialog.locator("img").first
    picture.wait_for()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=picture.element_handle())
    assert picture.evaluate("img => img.naturalWidth") >= 400
    assert "does a narrower embedding do as well?" in (picture.get_attribute("alt") or "")
    dialog.screenshot(path=str(shots / "experiment_comparison__probe_plot.png"))
    page.close()
