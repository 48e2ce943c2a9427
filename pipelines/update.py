"""`flukeid update`: observe the data folder, then materialize what Dagster says is stale or missing.

Dagster's staleness reaches one level per materialization (a child turns stale once its parent has a new data
version), so the update repeats "materialize what is stale" until nothing is; a rematerialization that
reproduces its old data version stops the wave there.
"""

from __future__ import annotations

from collections.abc import Callable

from dagster import AssetKey, DagsterInstance, Definitions

from core.constants import EXPERIMENTS_GROUP
from core.profiles import run_config
from pipelines.home import mark_abandoned_runs_failed
from pipelines.staleness import AssetStatus, asset_statuses

SOURCE_KEY = AssetKey("raw_image_files")


def materialize_keys(
    defs: Definitions, instance: DagsterInstance, keys: list[AssetKey], config: dict
) -> None:
    """One run of Dagster's implicit asset job over `keys` (their asset checks included)."""
    names = {key.to_user_string() for key in keys}
    ops = {name: section for name, section in (config.get("ops") or {}).items() if name in names}
    job = defs.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(
        run_config={"ops": ops} if ops else None, instance=instance, asset_selection=keys, raise_on_error=True
    )
    if not result.success:
        raise RuntimeError(f"materializing {sorted(names)} failed")


def chain_statuses(defs: Definitions, instance: DagsterInstance) -> list[AssetStatus]:
    """The statuses of every asset but the experiment sweep's (`flukeid experiments --run` runs those)."""
    graph = defs.resolve_asset_graph()
    return [s for s in asset_statuses(defs, instance) if graph.get(s.key).group_name != EXPERIMENTS_GROUP]


def update(
    defs: Definitions,
    instance: DagsterInstance,
    profile: str | None = None,
    dry_run: bool = False,
    max_rounds: int = 20,
    echo: Callable[[str], None] = print,
) -> list[list[str]]:
    """Bring every asset of the chain up to date (not the experiment sweep); returns the asset names materialized
    in each round. Runs a killed process left STARTED are marked failed first."""
    config = run_config(profile)
    rounds: list[list[str]] = []
    mark_abandoned_runs_failed(instance, echo=echo, dry_run=dry_run)
    if not dry_run:
        materialize_keys(defs, instance, [SOURCE_KEY], {})
    for _ in range(max_rounds):
        todo: list[AssetStatus] = [status for status in chain_statuses(defs, instance) if status.needs_run]
        if not todo:
            echo("everything is up to date" if not rounds else f"up to date after {len(rounds)} round(s)")
            return rounds
        echo(f"round {len(rounds) + 1}: {len(todo)} asset(s) to materialize")
        for status in todo:
            why = "never materialized" if status.status == "MISSING" else "; ".join(status.causes) or "stale"
            echo(f"  {status.key.to_user_string():<20} {status.status:<8} {why}")
        rounds.append([status.key.to_user_string() for status in todo])
        if dry_run:
            return rounds
        materialize_keys(defs, instance, [status.key for status in todo], config)
    raise RuntimeError(f"still stale after {max_rounds} rounds: {rounds[-1]}")
