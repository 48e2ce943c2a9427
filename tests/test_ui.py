"""The Dagster UI as a user sees it: the asset graph, "Materialize all", and each stage's metadata, in a real
headless Chromium (Debian's package, driven by Playwright; no browser download).

The test starts `dagster dev` (webserver and daemon, as `make ui` does) on a free local port over a tiny
generated data set with the tiny profile, presses the buttons a user would press, and waits for the run. It
writes screenshots to `$FLUKEID_TEST_OUTPUT/ui` (default `test-output/ui` in the repository); `docs/ui/` keeps a
current set for the README. It skips, saying why, only where Chromium or Playwright is missing.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.chain import ASSETS, SOURCE, dagster_environment

REPO = Path(__file__).resolve().parents[1]
LOCATION = "pipelines.definitions"
JOB = "identify_whales"
CHAIN = [SOURCE, *ASSETS]
# Per asset: plots that must open as loaded pictures, and numbers that must show in its metadata table.
PAGES = {
    "raw_images": (
        ["images_per_individual", "image_sizes"],
        ["train_images", "individuals", "new_whale_share"],
    ),
    "fluke_boxes": (
        ["confidence_histogram", "box_area_histogram", "contact_sheet"],
        ["photos", "coverage", "fallbacks"],
    ),
    "embedding_model": (
        ["loss_curves", "val_map5_curve"],
        ["val_map5", "baseline_pixel_nn_map5", "train_seconds"],
    ),
    "validation_report": (["threshold_sweep", "per_rank_plot"], ["map5", "threshold", "baseline_pixel_nn"]),
}
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    # Without these Chromium keeps trying to reach Google's hosts, which a closed network refuses.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
RUN_TIMEOUT_S = 900


def chromium_path() -> str | None:
    for candidate in (os.environ.get("FLUKEID_CHROMIUM"), "chromium", "chromium-browser"):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def graphql(base: str, query: str, variables: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"{base}/graphql",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["data"]


def wait_for_server(base: str, process: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dagster dev exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{base}/server_info", timeout=5):
                return
        except OSError:
            time.sleep(1)
    raise TimeoutError(f"the webserver did not answer in {timeout} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def browser():
    if chromium_path() is None:
        pytest.skip("no Chromium: install Debian's chromium package (`.ci/run` does) or set FLUKEID_CHROMIUM")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed: pip install -e '.[dev]'")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def dagster_ui(tiny_dataset, tmp_path_factory):
    """`dagster dev` as `make ui` starts it, on a free port, with its own DAGSTER_HOME and storage."""
    work = tmp_path_factory.mktemp("ui")
    port = free_port()
    env = dagster_environment(work, tiny_dataset, FLUKEID_PROFILE="tiny")
    home = Path(env["DAGSTER_HOME"])
    log = work / "dagster_dev.log"
    dagster = [sys.executable, "-m", "dagster", "dev", "-m", LOCATION, "-h", "127.0.0.1", "-p", str(port)]
    with open(log, "w") as out:
        process = subprocess.Popen(
            dagster, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_server(base, process, log)
        yield {"base": base, "home": home, "log": log}
    finally:
        # SIGINT to the group lets dagster dev stop its webserver, daemon and code servers.
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=20)  # launched where SIGINT is ignored it never stops: do not wait long
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="module")
def shots() -> Path:
    folder = Path(os.environ.get("FLUKEID_TEST_OUTPUT", REPO / "test-output")) / "ui"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def open_page(browser, base: str, path: str):
    page = browser.new_page(viewport={"width": 1500, "height": 950})
    page.set_default_timeout(60_000)
    page.goto(base + path)
    page.wait_for_load_state("networkidle")
    # The first visit of a new DAGSTER_HOME asks to join the community; a user presses Skip.
    skip = page.get_by_role("button", name="Skip")
    try:
        skip.wait_for(state="visible", timeout=4_000)
        skip.click()
    except Exception:  # no dialog: it was dismissed before
        pass
    return page


def show_asset_graph(browser, base: str):
    """The global asset graph with every group expanded and the side tree folded away."""
    page = open_page(browser, base, "/asset-groups")
    page.get_by_role("button", name="Materialize all").first.wait_for()
    # Room for the graph: fold the navigation and the group tree (the button beside "Jump to"), then reload so
    # that the graph is fitted to the wider view.
    page.get_by_role("button", name="Hide navigation").click()
    fold_tree = page.locator("input[placeholder^='Jump to'] >> xpath=following::button[1]")
    if fold_tree.count():
        fold_tree.first.click()
    page.reload()
    page.get_by_role("button", name="Materialize all").first.wait_for()
    page.locator("button:has([aria-label='settings'])").last.click()
    page.get_by_role("menuitem", name="Expand all groups").click()
    page.keyboard.press("Escape")
    page.wait_for_timeout(1_500)  # the graph re-lays itself out
    # With every group expanded (the experiment sweep's too) the fitted graph can leave the chain's last nodes out
    # of view; one step out shows every node with its name (a second step would draw them without names).
    if any(page.get_by_text(name, exact=True).count() == 0 for name in CHAIN):
        page.locator("button:has([aria-label='zoom_out'])").click()
        page.wait_for_timeout(800)
    return page


def names_on_graph(page, names: list[str]) -> set[str]:
    """The `names` the graph draws, panning it (a drag on the canvas, as a user does) when the fitted view leaves
    some out: the graph draws only the nodes in view, and zooming out further drops the names."""
    shown = {name for name in names if page.get_by_text(name, exact=True).count()}
    for dx, dy in ((-600, 0), (0, -350), (600, 0), (600, 0), (0, 700)):
        if shown >= set(names):
            break
        page.mouse.move(750, 500)
        page.mouse.down()
        page.mouse.move(750 + dx, 500 + dy, steps=12)
        page.mouse.up()
        page.wait_for_timeout(800)
        shown |= {name for name in names if page.get_by_text(name, exact=True).count()}
    return shown


def test_make_ui_serves_the_project_on_localhost():
    """`make ui` runs `dagster dev` for this code location, on 127.0.0.1, with the project's DAGSTER_HOME."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    dry = subprocess.run(
        ["make", "-n", "--always-make", "ui"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    line = next(line for line in dry.splitlines() if "dagster dev" in line)
    assert f"-m {LOCATION}" in line and "-h 127.0.0.1" in line
    printed = subprocess.run(
        ["make", "-s", "--no-print-directory", "-f", "Makefile", "-f", "-", "print-home"],
        cwd=REPO,
        input="print-home:\n\t@echo $(DAGSTER_HOME)\n",
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert printed == str(REPO / ".dagster_home")


@pytest.mark.slow
def test_dagster_ui_graph_materialize_and_metadata(browser, dagster_ui, shots):
    base = dagster_ui["base"]

    # 1. The asset graph shows every asset of the chain.
    page = show_asset_graph(browser, base)
    missing = [name for name in CHAIN if name not in names_on_graph(page, CHAIN)]
    assert not missing, f"asset graph lacks {missing}"
    page.close()

    # 2. "Materialize all" on the job's page (the job carries the active profile's run config) completes.
    page = open_page(browser, base, f"/locations/{LOCATION}/jobs/{JOB}")
    page.get_by_role("button", name="Materialize all").click()
    deadline, runs = time.monotonic() + RUN_TIMEOUT_S, []
    while time.monotonic() < deadline:
        runs = graphql(base, "{ runsOrError { ... on Runs { results { runId status jobName } } } }")
        runs = runs["runsOrError"]["results"]
        if runs and runs[0]["status"] in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        time.sleep(3)
    assert len(runs) == 1 and runs[0]["jobName"] == JOB, runs
    run_id = runs[0]["runId"]
    assert runs[0]["status"] == "SUCCESS", f"run {run_id} ended {runs[0]['status']}; see {dagster_ui['log']}"
    page.goto(f"{base}/runs/{run_id}")
    page.get_by_text("Success").first.wait_for()
    page.close()
    page = show_asset_graph(browser, base)  # now with every asset materialized
    page.screenshot(path=str(shots / "asset_graph.png"))
    page.close()

    # 3. Each stage's page shows its numbers, and its plots open as loaded pictures.
    for asset, (plots, numbers) in PAGES.items():
        page = open_page(browser, base, f"/assets/{asset}")
        table = page.locator("table").filter(has_text=numbers[0])
        table.first.wait_for()
        text = table.first.inner_text()
        for key in numbers + plots:
            assert key in text, f"{asset}: no {key} in its metadata"
        page.screenshot(path=str(shots / f"{asset}.png"), full_page=True)
        for plot in plots:
            row = table.first.locator("tr").filter(has=page.get_by_text(plot, exact=True))
            row.get_by_text("Show Markdown").click()
            dialog = page.get_by_role("dialog")
            picture = dialog.locator("img").first
            picture.wait_for()
            page.wait_for_function(
                "img => img.complete && img.naturalWidth > 0", arg=picture.element_handle()
            )
            width = picture.evaluate("img => img.naturalWidth")
            assert width >= 200, f"{asset}.{plot}: picture {width} px wide"
            assert picture.get_attribute("alt"), f"{asset}.{plot}: picture without a title"
            dialog.screenshot(path=str(shots / f"{asset}__{plot}.png"))
            page.keyboard.press("Escape")
            dialog.wait_for(state="hidden")
        page.close()
