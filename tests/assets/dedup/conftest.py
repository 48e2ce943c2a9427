"""Fixtures of the dedup tests: a folder of real photos and near-duplicates, and the stage's result on it."""

import pytest

from tests.assets.dedup.photos import make_real_photo_folder, run_dedup


@pytest.fixture(scope="module")
def real_photo_folder(tmp_path_factory):
    return make_real_photo_folder(tmp_path_factory.mktemp("real") / "data")


@pytest.fixture(scope="module")
def real_photo_result(real_photo_folder):
    return run_dedup(real_photo_folder)
