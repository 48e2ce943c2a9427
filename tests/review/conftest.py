"""The review page's fixtures: a hand-built review queue over the tiny generated set, and a client of the app
over it with an empty decisions file per test."""

import shutil
from pathlib import Path

import pytest

from review.queue import load_queue
from tests.review.queue_fixture import build_queue_fixture


@pytest.fixture(scope="session")
def queue_storage(tiny_dataset, tmp_path_factory) -> Path:
    """A storage folder holding only `review_queue/` (read-only: tests that change it copy it)."""
    storage = tmp_path_factory.mktemp("review") / "storage"
    build_queue_fixture(storage, tiny_dataset)
    return storage


@pytest.fixture
def queue(queue_storage):
    return load_queue(queue_storage)


@pytest.fixture
def storage_copy(queue_storage, tmp_path) -> Path:
    target = tmp_path / "storage"
    shutil.copytree(queue_storage, target)
    return target


@pytest.fixture
def decisions_path(tmp_path) -> Path:
    return tmp_path / "reviews" / "decisions.csv"


@pytest.fixture
def client(queue_storage, tiny_dataset, decisions_path):
    from starlette.testclient import TestClient

    from review.app import create_app

    with TestClient(create_app(queue_storage, tiny_dataset, decisions_path, "ann")) as test_client:
        yield test_client
