"""The generated data set the synth tests read: the session's `tiny_dataset` (tests/conftest.py, scale 0.006)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def data(tiny_dataset) -> Path:
    return Path(tiny_dataset)
