"""The one `Definitions` of flukeid: every asset and check under `assets/`, and the resources they need.

The environment comes from variables (`FLUKEID_DATA_DIR`, `FLUKEID_STORAGE_DIR`, `FLUKEID_DEVICE`);
hyperparameters come from run config (`configs/*.yaml`).
"""

from __future__ import annotations

import inspect

from dagster import (
    Definitions,
    define_asset_job,
    load_asset_checks_from_package_module,
    load_assets_from_package_module,
)

import assets as asset_package
from core.profiles import run_config
from core.resources import (
    ComputeDevice,
    FlukeData,
    FlukeStorage,
    default_data_dir,
    default_decisions_file,
    default_device,
    default_species,
    default_storage_dir,
)
from pipelines.io_managers import ArtifactIOManager

all_assets = load_assets_from_package_module(asset_package)
all_checks = load_asset_checks_from_package_module(asset_package)


def chain_part(*names: str, checks: bool = True) -> list:
    """The assets named (and, with `checks`, the checks on them), for tests and scripts that materialize part
    of the chain: `materialize(chain_part("raw_images", "image_hashes"), ...)`. Unknown names raise."""
    by_name = {
        key.to_user_string(): definition
        for definition in all_assets
        for key in (definition.keys if hasattr(definition, "keys") else [definition.key])
    }
    unknown = sorted(set(names) - set(by_name))
    if unknown:
        raise KeyError(f"no assets {unknown}; the chain has {sorted(by_name)}")
    chosen = list(dict.fromkeys(by_name[name] for name in names))
    if checks:
        chosen += [
            check
            for check in all_checks
            if all(key.asset_key.to_user_string() in names for key in check.check_keys)
        ]
    return chosen


def config_classes() -> dict[str, type]:
    """Asset name -> its `Config` class (the annotation of its `config` parameter)."""
    classes = {}
    for definition in all_assets:
        op = getattr(definition, "op", None)
        parameter = inspect.signature(op.compute_fn.decorated_fn).parameters.get("config") if op else None
        if parameter is not None and isinstance(parameter.annotation, type):
            classes[op.name] = parameter.annotation  # the op's name: a multi-asset's config section
    return classes


def check_run_config(config: dict) -> dict:
    """Build every asset's `Config` from its section of `config`, so that an out-of-range value (declared on the
    fields: positive epochs, shares in [0, 1], ...) fails now, naming its field; Dagster's run-config validation
    checks names and types, the ranges only when the step starts. Returns `config`."""
    classes = config_classes()
    for name, section in (config.get("ops") or {}).items():
        if name in classes:
            classes[name](**((section or {}).get("config") or {}))
    return config


def build_resources(
    data_dir: str | None = None, storage_dir: str | None = None, device: str | None = None
) -> dict:
    """Resources for a data folder and a storage folder; tests call this with temporary folders."""
    storage = storage_dir or default_storage_dir()
    return {
        "data": FlukeData(
            data_dir=data_dir or default_data_dir(),
            decisions_file=default_decisions_file(),
            species=default_species(),
        ),
        "storage": FlukeStorage(storage_dir=storage),
        "device": ComputeDevice(device=device or default_device()),
        "io_manager": ArtifactIOManager(storage_dir=storage),
    }


def build_definitions(**kwargs) -> Definitions:
    return Definitions(
        assets=all_assets,
        asset_checks=all_checks,
        jobs=[
            # The job carries the active profile's run config, so that "Materialize all" on its page in the UI
            # runs with the same hyperparameters (and so the same code versions) as the CLI and `flukeid update`.
            define_asset_job(
                "identify_whales",
                selection="*",
                config=check_run_config(run_config()),
                description="Every stage, photos to submission, with the active profile's run config.",
            )
        ],
        resources=build_resources(**kwargs),
    )


defs = build_definitions()
