"""Every run-config profile in configs/ is valid for the whole chain, and the UI's job carries the active one."""

from pathlib import Path

import pytest
from dagster import DagsterInvalidConfigError, validate_run_config

from core.profiles import CONFIG_DIR, asset_version, run_config
from pipelines.definitions import build_definitions

PROFILES = sorted(path.stem for path in Path(CONFIG_DIR).glob("*.yaml"))


def test_the_three_profiles_exist():
    assert {"tiny", "demo", "gpu"} <= set(PROFILES)


@pytest.mark.parametrize("profile", PROFILES)
def test_profile_is_a_valid_run_config_for_every_asset(profile):
    job = build_definitions().get_job_def("identify_whales")
    # Raises DagsterInvalidConfigError naming the field on a typo or a wrong type.
    validate_run_config(job, run_config(profile))


def test_a_misspelled_field_is_refused():
    job = build_definitions().get_job_def("identify_whales")
    bad = {"ops": {"fluke_tensors": {"config": {"hieght": 64}}}}
    with pytest.raises(DagsterInvalidConfigError, match="hieght"):
        validate_run_config(job, bad)


def test_job_carries_the_active_profile(monkeypatch):
    # "Materialize all" on the job's page in the UI launches with this config (tests/test_ui.py runs it).
    monkeypatch.setenv("FLUKEID_PROFILE", "tiny")
    assert build_definitions().get_job_def("identify_whales").run_config == run_config("tiny")
    monkeypatch.setenv("FLUKEID_PROFILE", "demo")
    assert build_definitions().get_job_def("identify_whales").run_config == run_config("demo")


def test_asset_version_folds_in_the_profile_section(monkeypatch):
    monkeypatch.setenv("FLUKEID_PROFILE", "tiny")
    tiny = asset_version("fluke_tensors", "fluke_tensors-1")
    monkeypatch.setenv("FLUKEID_PROFILE", "demo")
    demo = asset_version("fluke_tensors", "fluke_tensors-1")
    assert tiny != demo and tiny.startswith("fluke_tensors-1+cfg.")
    with pytest.raises(FileNotFoundError, match="profiles live in"):
        run_config("no-such-profile")
