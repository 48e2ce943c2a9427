"""The one wrapper around Dagster's private staleness resolver, and the update loop built on it, on toy assets."""

from dagster import DataVersion, Definitions, Output, asset, instance_for_test, materialize

from pipelines.staleness import asset_statuses
from pipelines.update import update


def _defs(parent_version: str, parent_value: int, runs: list[str]) -> Definitions:
    @asset(code_version=parent_version)
    def parent():
        runs.append("parent")
        return Output(parent_value, data_version=DataVersion(str(parent_value)))

    @asset(code_version="1")
    def child(parent):
        runs.append("child")
        return Output(parent + 1, data_version=DataVersion(str(parent + 1)))

    @asset(code_version="1")
    def grandchild(child):
        runs.append("grandchild")
        return child * 2

    return Definitions(assets=[parent, child, grandchild])


def _status(defs, instance) -> dict[str, str]:
    return {s.key.to_user_string(): s.status for s in asset_statuses(defs, instance)}


def test_statuses_follow_code_versions():
    with instance_for_test() as instance:
        runs: list[str] = []
        defs = _defs("1", 1, runs)
        assert set(_status(defs, instance).values()) == {"MISSING"}
        materialize(list(defs.assets), instance=instance)
        assert set(_status(defs, instance).values()) == {"FRESH"}
        changed = _defs("2", 1, runs)
        statuses = {s.key.to_user_string(): s for s in asset_statuses(changed, instance)}
        assert statuses["parent"].status == "STALE"
        assert any("code version" in cause for cause in statuses["parent"].causes)


def _update(defs, instance, monkeypatch):
    # The toy graph has no data-folder source to observe; the loop itself is what is tested here.
    import pipelines.update as module

    monkeypatch.setattr(module, "materialize_keys", lambda d, i, keys, c: _plain_materialize(d, i, keys))
    monkeypatch.setattr(module, "run_config", lambda profile=None: {})
    return update(defs, instance, echo=lambda line: None)


def _plain_materialize(defs, instance, keys):
    if [k.to_user_string() for k in keys] == ["raw_image_files"]:
        return
    materialize(list(defs.assets), selection=keys, instance=instance)


def test_update_runs_only_what_is_stale_and_stops_on_identical_output(monkeypatch):
    with instance_for_test() as instance:
        runs: list[str] = []
        defs = _defs("1", 1, runs)
        assert _update(defs, instance, monkeypatch) == [["parent", "child", "grandchild"]]
        runs.clear()
        assert _update(defs, instance, monkeypatch) == []
        assert runs == []
        # New logic, same output: parent reruns, its data version is unchanged, nothing downstream reruns.
        assert _update(_defs("2", 1, runs), instance, monkeypatch) == [["parent"]]
        assert runs == ["parent"]
        runs.clear()
        # New logic, new output: the wave goes down one level per round.
        rounds = _update(_defs("3", 5, runs), instance, monkeypatch)
        assert rounds == [["parent"], ["child"], ["grandchild"]]
        assert runs == ["parent", "child", "grandchild"]
