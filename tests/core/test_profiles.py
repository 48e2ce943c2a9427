"""Every run-config profile in configs/ is valid for the whole chain, and the UI's job carries the active one."""

from pathlib import Path

import pytest
from dagster import DagsterInvalidConfigError, validate_run_config

from core.profiles import CONFIG_DIR, asset_version, run_config
from pipelines.definitions import build_definitions

# configs/experiments.yaml is the experiment sweep's file (assets/experiments/), not a run-config profile.
PROFILES = sorted(path.stem for path in Path(CONFIG_DIR).glob("*.yaml") if path.stem != "experiments")


def test_the_profiles_exist():
    assert {"tiny", "demo", "full", "gpu"} <= set(PROFILES)


@pytest.mark.parametrize("profile", PROFILES)
def test_profile_is_a_valid_run_config_for_every_asset(profile):
    job = build_definitions().get_job_def("identify_whales")
    # Raises DagsterInvalidConfigError naming the field on a typo or a wrong type.
    validate_run_config(job, run_config(profile))
    from pipelines.definitions import check_run_config

    check_run_config(run_config(profile))  # and every value within its declared range


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


@pytest.mark.parametrize(
    ("asset", "field", "value"),
    [
        ("embedding_model", "epochs", -1),  # once: KeyError ['val_map5'] deep in training
        ("embedding_model", "max_minutes", -1),
        ("fluke_detector", "max_minutes", -0.5),
        ("fluke_tensors", "height", 0),  # once: ZeroDivisionError in the crop stage
        ("fluke_boxes", "min_confidence", 1.5),
        ("training_manifest", "val_new_whale_share", -0.1),
        ("validation_report", "match_candidates", 0),
    ],
)
def test_an_out_of_range_value_fails_at_launch_naming_its_field(asset, field, value, tmp_path, monkeypatch):
    from pydantic import ValidationError

    from pipelines.definitions import check_run_config

    bad = {"ops": {asset: {"config": {field: value}}}}
    with pytest.raises(ValidationError, match=field):
        check_run_config(bad)
    # A profile holding it stops the code location from loading (UI and CLI alike), naming the field.
    profile = tmp_path / "bad.yaml"
    profile.write_text(f"ops:\n  {asset}:\n    config: {{{field}: {value}}}\n")
    monkeypatch.setenv("FLUKEID_PROFILE", str(profile))
    with pytest.raises(ValidationError, match=field):
        build_definitions()
