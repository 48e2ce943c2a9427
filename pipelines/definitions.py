"""The one `Definitions` of flukeid: every asset and check under `assets/`, and the resources they need.

The environment comes from variables (`FLUKEID_DATA_DIR`, `FLUKEID_STORAGE_DIR`, `FLUKEID_DEVICE`);
hyperparameters come from run config (`configs/*.yaml`).
"""

from __future__ import annotations

import inspect

from dagster import (
    AssetSelection,
    Definitions,
    define_asset_job,
    load_asset_checks_from_package_module,
    load_assets_from_package_module,
)

import assets as asset_package
from assets.experiments.assets import SEED, VARIANT, experiment_assets, experiment_partitions
from assets.experiments.settings import Experiments, load_experiments, partition_settings
from core.constants import EXPERIMENTS_GROUP
from core.profiles import asset_config, run_config
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


def _groups(definition) -> set[str]:
    groups = getattr(definition, "group_names_by_key", None)
    return set(groups.values()) if groups else {getattr(definition, "group_name", None)}


all_assets = load_assets_from_package_module(asset_package)
all_checks = load_asset_checks_from_package_module(asset_package)
# The chain: every asset but the experiment sweep (assets/experiments/), which runs only when asked for.
chain_assets = [definition for definition in all_assets if EXPERIMENTS_GROUP not in _groups(definition)]
# What the chain's job, `make demo` and CI select: the same assets as `chain_assets`.
CHAIN_SELECTION = f"not group:{EXPERIMENTS_GROUP}"


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


def check_experiments(experiments: Experiments) -> Experiments:
    """Build the two Configs every variant of the experiments file overrides (`embedding_model`'s with the
    variant's training, `validation_report`'s with its identification settings), over the active profile's
    sections, so that an unknown name or an out-of-range value fails now, naming the variant. Returns it."""
    classes = config_classes()
    for experiment in experiments.experiments:
        for variant in experiment.variants:
            training = {
                **asset_config("embedding_model"),
                "max_minutes": experiments.budget_minutes,
                **experiments.training,
            }
            identification = {**asset_config("validation_report"), **experiments.identification}
            try:
                classes["embedding_model"](**{**training, **variant.training})
                classes["validation_report"](**{**identification, **variant.identification})
            except Exception as error:
                raise ValueError(f"{experiments.path}: variant {variant.key}: {error}") from error
    return experiments


def experiment_plan(experiments_file: str | None = None) -> dict[str, tuple[str, float]]:
    """Partition key of `experiment_run` -> (the digest of its training, its budget in minutes): partitions with one
    digest share a checkpoint, so the sweep runs them one after the other (`pipelines/experiments.py`)."""
    experiments = load_experiments(experiments_file)
    plan = {}
    for key in experiment_partitions(experiments).get_partition_keys():
        dims = key.keys_by_dimension
        settings = partition_settings(experiments, dims[VARIANT], dims[SEED])
        plan[str(key)] = (settings.training_version, settings.training.max_minutes)
    return plan


def build_resources(
    data_dir: str | None = None, storage_dir: str | None = None, device: str | None = None
) -> dict:
    """Resources for a data folder and a storage folder; tests call this with temporary folders."""
    storage = storage_dir or default_storage_dir()
    compute = ComputeDevice(device=device or default_device())
    compute.torch_device()  # a device that is not there is refused now, not minutes into a run
    return {
        "data": FlukeData(
            data_dir=data_dir or default_data_dir(),
            decisions_file=default_decisions_file(),
            species=default_species(),
        ),
        "storage": FlukeStorage(storage_dir=storage),
        "device": compute,
        "io_manager": ArtifactIOManager(storage_dir=storage),
    }


def build_definitions(experiments_file: str | None = None, **kwargs) -> Definitions:
    """The Definitions; `experiments_file`: the sweep of another experiments file than the default (tests)."""
    config = check_run_config(run_config())  # the profile first: the sweep's check builds on its sections
    assets = all_assets
    if experiments_file is not None:
        own = experiment_assets(check_experiments(load_experiments(experiments_file)))
        assets = [*chain_assets, *own]
    else:
        check_experiments(load_experiments())
    return Definitions(
        assets=assets,
        asset_checks=all_checks,
        jobs=[
            # The job carries the active profile's run config, so that "Materialize all" on its page in the UI
            # runs with the same hyperparameters (and so the same code versions) as the CLI and `flukeid update`.
            define_asset_job(
                "identify_whales",
                # Not the experiment sweep: its partitions run only when asked for (`flukeid experiments --run`).
                selection=AssetSelection.all() - AssetSelection.groups(EXPERIMENTS_GROUP),
                config=config,
                description="Every stage, photos to submission, with the active profile's run config (not the "
                "experiment sweep).",
            )
        ],
        resources=build_resources(**kwargs),
    )


defs = build_definitions()
