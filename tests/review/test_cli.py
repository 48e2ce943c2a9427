"""`flukeid review`: its defaults (this machine only, the decisions file beside the data) and `make review`."""

import shutil
import subprocess
from pathlib import Path

import pytest
import uvicorn

import review.app
from pipelines import cli

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def served(monkeypatch):
    """What `flukeid review` would serve, with uvicorn replaced by a recorder."""
    calls = {}

    def fake_run(app, host, port, **options):
        calls.update(app=app, host=host, port=port)

    monkeypatch.setattr(uvicorn, "run", fake_run)
    created = {}
    real = review.app.create_app

    def recording_create_app(storage, data, decisions, reviewer):
        created.update(storage=storage, data=data, decisions=decisions, reviewer=reviewer)
        return real(storage, data, decisions, reviewer)

    monkeypatch.setattr(review.app, "create_app", recording_create_app)
    return calls, created


def test_review_binds_localhost_with_the_decisions_beside_the_data(served, monkeypatch, tmp_path):
    calls, created = served
    monkeypatch.setenv("FLUKEID_STORAGE_DIR", str(tmp_path / "storage"))
    monkeypatch.setenv("FLUKEID_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("USER", "ann")
    monkeypatch.delenv("FLUKEID_DECISIONS_FILE", raising=False)
    assert cli.main(["review"]) == 0
    assert (calls["host"], calls["port"]) == ("127.0.0.1", 8765)
    assert created == {
        "storage": tmp_path / "storage",
        "data": tmp_path / "data",
        "decisions": tmp_path / "data" / "reviews" / "decisions.csv",
        "reviewer": "ann",
    }


def test_review_options_override_the_defaults(served, monkeypatch, tmp_path):
    calls, created = served
    monkeypatch.setenv("FLUKEID_DECISIONS_FILE", "elsewhere/d.csv")  # relative: to the data folder
    assert cli.main(["review", "--data", str(tmp_path), "--port", "9000", "--reviewer", "bo"]) == 0
    assert created["decisions"] == tmp_path / "elsewhere" / "d.csv" and created["reviewer"] == "bo"
    assert cli.main(["review", "--host", "0.0.0.0", "--decisions", str(tmp_path / "x.csv")]) == 0
    assert calls["host"] == "0.0.0.0" and created["decisions"] == tmp_path / "x.csv"


def test_make_review_runs_flukeid_review():
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    dry = subprocess.run(
        ["make", "-n", "--always-make", "review"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    line = next(line for line in dry.splitlines() if "flukeid review" in line)
    assert "--storage" in line and "--data" in line and "--host" not in line
