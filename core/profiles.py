"""Run-config profiles (`configs/<name>.yaml`) and asset versions that fold each asset's config in.

Dagster's staleness tracks code versions and input data versions, not run config. So that changing, say, the
crop margin in a profile marks `fluke_tensors` (and what lies downstream) stale, every asset's `code_version` is
its logic version plus a digest of its section of the active profile (`FLUKEID_PROFILE`, default `demo`).
Runs must use the same profile's run config; `flukeid update` and the Makefile do.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import yaml

from core.digests import stable_digest

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
DEFAULT_PROFILE = "demo"


def active_profile() -> str:
    return os.environ.get("FLUKEID_PROFILE", DEFAULT_PROFILE)


def profile_path(name: str | None = None) -> Path:
    name = name or active_profile()
    path = Path(name)
    if path.suffix in (".yaml", ".yml") and path.exists():
        return path.resolve()
    return CONFIG_DIR / f"{name}.yaml"


@lru_cache(maxsize=8)
def _load(path: str) -> dict:
    with open(path) as handle:
        return yaml.safe_load(handle) or {}


def run_config(name: str | None = None) -> dict:
    """The Dagster run config of a profile (`{"ops": {asset: {"config": {...}}}}`)."""
    path = profile_path(name)
    if not path.exists():
        raise FileNotFoundError(f"no profile {path}; profiles live in {CONFIG_DIR}")
    return _load(str(path))


def asset_config(asset_name: str, name: str | None = None) -> dict:
    ops = run_config(name).get("ops") or {}
    return (ops.get(asset_name) or {}).get("config") or {}


def asset_version(asset_name: str, logic_version: str) -> str:
    """`<logic_version>` plus a digest of the asset's config in the active profile, when it has one."""
    try:
        config = asset_config(asset_name)
    except FileNotFoundError:
        config = {}
    if not config:
        return logic_version
    return f"{logic_version}+cfg.{stable_digest(config)[:8]}"
