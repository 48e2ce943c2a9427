"""Shared fixtures: tiny generated data sets, built at run time (no data in git)."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("FLUKEID_WORKERS", "2")

TINY_SCALE = 0.006
TINY_SEED = 7


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """A tiny synthetic Kaggle-layout data set (about 150 train and 50 test photos), shared by the session.

    Read-only: tests that modify data copy it first (see `tiny_dataset_copy`).
    """
    from synth import generate

    root = tmp_path_factory.mktemp("tiny") / "data"
    generate(root, scale=TINY_SCALE, seed=TINY_SEED, workers=2, progress=False)
    return root


@pytest.fixture
def tiny_dataset_copy(tiny_dataset, tmp_path) -> Path:
    import shutil

    target = tmp_path / "data"
    shutil.copytree(tiny_dataset, target)
    return target


@pytest.fixture(scope="session")
def tiny_chain(tiny_dataset, tmp_path_factory) -> Path:
    """The whole chain materialized once, by `flukeid update` with the tiny profile, on a copy of the tiny set:
    `<work>/data`, `<work>/storage`, `<work>/dagster_home`. Read-only: tests that change it copy it first
    (`copy_tiny_chain`)."""
    import shutil
    import subprocess
    import sys

    from tests.chain import dagster_environment

    repo = Path(__file__).resolve().parents[1]
    work = tmp_path_factory.mktemp("tiny_chain")
    shutil.copytree(tiny_dataset, work / "data")
    env = dagster_environment(work, work / "data")
    command = [
        sys.executable,
        "-m",
        "pipelines.cli",
        "update",
        "--profile",
        str(repo / "configs" / "tiny.yaml"),
    ]
    done = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return work


def copy_tiny_chain(chain: Path, target: Path) -> Path:
    """A copy of `tiny_chain`'s folders under `target` (modification times kept, so the data folder's
    fingerprint and every asset stay fresh); returns `target`."""
    import shutil

    for name in ("data", "storage", "dagster_home"):
        shutil.copytree(chain / name, target / name, symlinks=True)
    return target


def pytest_collection_modifyitems(config, items):
    """Files holding `slow` tests first (each file keeping its order): pytest-xdist hands out whole files in
    collection order, so the whole-chain files start at once on separate workers instead of last on one."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow") is not None}
    items.sort(key=lambda item: item.path not in slow_files)
