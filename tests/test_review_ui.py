"""The review page as a researcher uses it, in a real headless Chromium (Debian's package through Playwright).

The test starts `flukeid review` on a free local port over the review queue the chain materialized on the tiny
generated set (the session's `tiny_chain`),
decides three items by clicking and one by keyboard, undoes the last, then checks the decisions file and the
progress. Its screenshot goes to `$FLUKEID_TEST_OUTPUT/review` (default `test-output/review`); `make screenshots` points
that at docs/, where `docs/review/review_page.png` is the README's. It skips, saying why, only where Chromium or Playwright is missing.
"""

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from core.decisions import HEADER, new_individual_id, read_decisions
from review.queue import load_queue
from tests.test_ui import CHROMIUM_FLAGS, chromium_path, free_port

REPO = Path(__file__).resolve().parents[1]


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


def flukeid_command() -> list[str]:
    """The installed `flukeid` script beside this Python, else the same entry point as a module."""
    script = Path(sys.executable).parent / "flukeid"
    return [str(script)] if script.exists() else [sys.executable, "-m", "pipelines.cli"]


def wait_for_page(base: str, process: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"flukeid review exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=5):
                return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"the review page did not answer in {timeout} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def review_server(tiny_chain, tmp_path_factory):
    """`flukeid review` over the queue the chain materialized on the tiny set (read only), appending to a
    decisions file of its own."""
    work = tmp_path_factory.mktemp("review_ui")
    storage, decisions = tiny_chain / "storage", work / "reviews" / "decisions.csv"
    tiny_dataset = tiny_chain / "data"
    port = free_port()
    log = work / "review.log"
    command = [
        *flukeid_command(),
        "review",
        "--storage",
        str(storage),
        "--data",
        str(tiny_dataset),
        "--decisions",
        str(decisions),
        "--reviewer",
        "tester",
        "--port",
        str(port),
    ]
    with open(log, "w") as out:
        process = subprocess.Popen(
            command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_page(base, process, log)
        yield {"base": base, "storage": storage, "decisions": decisions}
    finally:
        os.killpg(process.pid, signal.SIGINT)  # uvicorn stops on Ctrl-C
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="module")
def shots() -> Path:
    folder = Path(os.environ.get("FLUKEID_TEST_OUTPUT", REPO / "test-output")) / "review"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def current_item(page) -> str:
    return page.locator("#item").get_attribute("data-item")


def submit(page, button) -> None:
    """Press a button (a locator) or a key (a string) and wait for the next page."""
    with page.expect_navigation():
        if isinstance(button, str):
            page.keyboard.press(button)
        else:
            button.click()
    page.locator("#progress").wait_for()


def test_decide_by_clicks_and_keys_then_undo(browser, review_server, shots):
    base, queue = review_server["base"], load_queue(review_server["storage"])
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(30_000)
    page.goto(base + "/")
    total = len(queue.items)
    assert page.locator("#progress").inner_text() == f"0 / {total} reviewed"
    expected = []  # (item, decision, label) in the order decided

    # 1. Click "same whale as this candidate" on the first known candidate.
    item = current_item(page)
    assert item == queue.items["item"].iloc[0]
    candidate = page.locator(".candidate:not(.new-whale)").first
    label = candidate.locator("input[name=label]").input_value()
    submit(page, candidate.get_by_role("button", name="same whale as this candidate"))
    expected.append((item, "same", label))

    # 2. "new individual", 3. "not sure", each on the item the page moved on to.
    for decision, name in (("new", "new individual"), ("unsure", "not sure")):
        item = current_item(page)
        assert item not in [e[0] for e in expected]
        first_photo = queue.photos_of(item)["image"].iloc[0]
        submit(page, page.get_by_role("button", name=name))
        expected.append((item, decision, new_individual_id(first_photo) if decision == "new" else ""))
    assert page.locator("#progress").inner_text() == f"3 / {total} reviewed"

    # 4. The keyboard: the lowest rank that has a key (new_whale ranks have none) decides "same".
    item = current_item(page)
    key = page.locator(".candidate button[data-key]").first.get_attribute("data-key")
    rank_label = page.locator(f".candidate[data-rank='{key}'] input[name=label]").input_value()
    submit(page, key)
    expected.append((item, "same", rank_label))
    assert page.locator("#progress").inner_text() == f"4 / {total} reviewed"
    assert current_item(page) != item

    # 5. Undo the last: the keyboard-decided item is back, undecided.
    submit(page, page.get_by_role("button", name="undo last"))
    assert current_item(page) == item
    assert page.locator("#progress").inner_text() == f"3 / {total} reviewed"
    assert page.locator("#current-decision").count() == 0

    # The decisions file: a header, then one line per photo of each decision and of the undo.
    text = review_server["decisions"].read_text()
    lines = text.rstrip("\n").split("\n")
    rows, problems = read_decisions(review_server["decisions"])
    assert lines[0] == HEADER and problems == []
    wanted = [
        (image, decision, label)
        for item, decision, label in [*expected, (expected[-1][0], "undo", "")]
        for image in queue.photos_of(item)["image"]
    ]
    assert len(lines) == 1 + len(wanted)
    assert list(zip(rows["image"], rows["decision"], rows["label"])) == wanted
    assert set(rows["reviewer"]) == {"tester"}

    # Every candidate picture on the page loaded, and the shareable PNG is served.
    pictures = page.locator(".candidate img")
    assert pictures.count() > 0
    for n in range(pictures.count()):
        assert pictures.nth(n).evaluate("img => img.complete && img.naturalWidth") > 0
    panel = page.request.get(base + page.locator("#panel-link").get_attribute("href"))
    assert panel.status == 200 and panel.headers["content-type"] == "image/png"

    page.screenshot(path=str(shots / "review_page.png"), full_page=True)
    page.close()
