"""Which assets are stale or missing, by Dagster's own staleness resolver (the one behind the UI).

There is no public API for this in Dagster 1.13; this module is the one place that touches the private one,
so a Dagster upgrade that moves it breaks here and in `tests/pipelines/test_staleness.py`, nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass

from dagster import AssetKey, DagsterInstance, Definitions
from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView, TemporalContext
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._time import get_current_datetime


@dataclass(frozen=True)
class AssetStatus:
    key: AssetKey
    status: str  # "FRESH", "STALE" or "MISSING"
    causes: tuple[str, ...]

    @property
    def needs_run(self) -> bool:
        return self.status in ("STALE", "MISSING")


def _resolver(defs: Definitions, instance: DagsterInstance) -> CachingStaleStatusResolver:
    asset_graph = defs.resolve_asset_graph()
    view = AssetGraphView(
        temporal_context=TemporalContext(effective_dt=get_current_datetime(), last_event_id=None),
        instance=instance,
        asset_graph=asset_graph,
    )
    return CachingStaleStatusResolver(instance=instance, asset_graph=asset_graph, loading_context=view)


def _causes(
    resolver: CachingStaleStatusResolver, key: AssetKey, partition: str | None = None
) -> tuple[str, ...]:
    found = []
    for cause in resolver.get_stale_root_causes(key, partition):
        where = cause.key.asset_key.to_user_string()
        if cause.key.partition_key:
            where += f"[{cause.key.partition_key}]"
        found.append(f"{where}: {cause.reason}")
    return tuple(found)


def partition_statuses(defs: Definitions, instance: DagsterInstance, key: AssetKey) -> dict[str, AssetStatus]:
    """Status and causes of every partition of the partitioned asset `key` (Dagster resolves staleness per
    partition: a partition is stale when its own upstream partition, or an unpartitioned parent, changed)."""
    resolver = _resolver(defs, instance)
    partitions_def = defs.resolve_asset_graph().get(key).partitions_def
    if partitions_def is None:
        raise ValueError(f"{key.to_user_string()} is not partitioned")
    statuses = {}
    for partition in partitions_def.get_partition_keys():
        status = resolver.get_status(key, partition)
        causes = _causes(resolver, key, partition) if status == StaleStatus.STALE else ()
        statuses[str(partition)] = AssetStatus(key=key, status=status.value, causes=causes)
    return statuses


def asset_statuses(defs: Definitions, instance: DagsterInstance) -> list[AssetStatus]:
    """Status and causes of every materializable asset, in topological order (a partitioned asset reads FRESH
    here: its partitions have statuses of their own, `partition_statuses`)."""
    asset_graph = defs.resolve_asset_graph()
    resolver = _resolver(defs, instance)
    statuses = []
    for key in asset_graph.toposorted_asset_keys:
        if not asset_graph.get(key).is_materializable:
            continue
        status = resolver.get_status(key)
        causes = _causes(resolver, key) if status == StaleStatus.STALE else ()
        statuses.append(AssetStatus(key=key, status=status.value, causes=causes))
    return statuses
