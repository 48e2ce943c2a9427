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


def asset_statuses(defs: Definitions, instance: DagsterInstance) -> list[AssetStatus]:
    """Status and causes of every materializable asset, in topological order."""
    asset_graph = defs.resolve_asset_graph()
    view = AssetGraphView(
        temporal_context=TemporalContext(effective_dt=get_current_datetime(), last_event_id=None),
        instance=instance,
        asset_graph=asset_graph,
    )
    resolver = CachingStaleStatusResolver(instance=instance, asset_graph=asset_graph, loading_context=view)
    statuses = []
    for key in asset_graph.toposorted_asset_keys:
        if not asset_graph.get(key).is_materializable:
            continue
        status = resolver.get_status(key)
        causes = ()
        if status == StaleStatus.STALE:
            causes = tuple(
                f"{cause.key.asset_key.to_user_string()}: {cause.reason}"
                for cause in resolver.get_stale_root_causes(key)
            )
        statuses.append(AssetStatus(key=key, status=status.value, causes=causes))
    return statuses
