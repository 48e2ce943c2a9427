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
