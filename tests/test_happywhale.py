"""A Happywhale-layout set (the 2022 competition's files) through the whole chain and `flukeid score`: generated
with `--layout happywhale`, materialized with the `dagster` CLI on the tiny profile, as users and CI run it. The
chain reads it as it comes (header, folders, `new_individual`, other species left out) and writes the submission
in the 2022 format."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from core.formats import HUMPBACK
from tests.chain import ASSETS, SOURCE, dagster_environment
from tests.conftest import TINY_SCALE, TINY_SEED

REPO = Path(__file__).resolve().parents[1]


def _run(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=1200
    )


def _materialize(env: dict, *args: str) -> subprocess.CompletedProcess:
    return _run(env, "-m", "dagster", "asset", "materialize", "-m", "pipelines.definitions", *args)


@pytest.mark.slow
def test_a_happywhale_layout_set_goes_through_the_chain_and_scores(tmp_path):
    data = tmp_path / "data"
    env = dagster_environment(tmp_path, data, FLUKEID_PROFILE="tiny")
    made = _run(
        env, "-m", "pipelines.cli", "synth", str(data), "--scale", str(TINY_SCALE), "--seed", str(TINY_SEED),
        "--workers", "2", "--quiet", "--layout", "happywhale",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr[-2000:]
    observed = _materialize(env, "--select", SOURCE)
    assert observed.returncode == 0, observed.stderr[-2000:]
    done = _materialize(env, "--select", "not group:experiments", "-c", str(REPO / "configs" / "tiny.yaml"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "RUN_SUCCESS" in done.stderr + done.stdout
    storage = tmp_path / "storage"
    assert all((storage / name).exists() or (storage / f"{name}.parquet").exists() for name in ASSETS)

    # Ingestion read the 2022 layout, and only the humpbacks.
    assert json.loads((storage / "raw_images" / "source.json").read_text()) == {
        "layout": "happywhale",
        "species": HUMPBACK,
    }
    train = pd.read_csv(data / "train.csv")
    images = pd.read_parquet(storage / "raw_images" / "images.parquet")
    rejected = pd.read_parquet(storage / "raw_images" / "rejected.parquet")
    accepted_train = set(images.loc[images["split"] == "train", "image"])
    assert accepted_train == set(train.loc[train["species"] == HUMPBACK, "image"])
    others = set(train.loc[train["species"] != HUMPBACK, "image"])
    assert others and others == set(rejected.loc[rejected["reason"] == "other_species", "image"])

    # The submission is in the 2022 format, one row per test photo, new_individual for the unknown whale.
    submission_csv = storage / "submission.csv"
    assert submission_csv.read_text().splitlines()[0] == "image,predictions"
    submission = pd.read_csv(submission_csv)
    test_photos = sorted(path.name for path in (data / "test_images").iterdir())
    assert sorted(submission["image"]) == test_photos
    labels = [label for row in submission["predictions"] for label in row.split(" ")]
    assert "new_individual" in labels and "new_whale" not in labels
    assert submission["predictions"].str.split(" ").map(lambda row: len(set(row)) == 5).all()

    scored = _run(env, "-m", "pipelines.cli", "score", str(submission_csv), str(data / "solution.csv"))
    assert scored.returncode == 0, scored.stderr[-2000:]
    first = scored.stdout.splitlines()[0]
    assert first.startswith("MAP@5") and f"({len(test_photos)} images)" in first, scored.stdout
    assert 0.0 <= float(first.split()[1]) <= 1.0
