"""The Dagster home (`DAGSTER_HOME`): its storage created once before any run, and runs a dead process left
STARTED marked failed.

Dagster creates a SQLite home's tables (and stamps their alembic revision) the first time an instance opens it; two
runs started at the same moment on a new home both do it and both fail ("more than one head"), leaving the home
broken. `init_home` (the `flukeid init-home` command, run by the Makefile and CI before any run, and by
`flukeid update`) does it once, under a lock file, so concurrent runs later only read the schema.

A run whose process was killed stays STARTED in the run history for ever (Dagster's run monitoring, which would
notice, needs the daemon). `mark_abandoned_runs_failed`, at the start of `flukeid update`, finds STARTED runs
whose process (the pid of the run's "Executing steps" engine event) is gone and reports them failed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter

from core.files import pid_alive, pid_lock, write_bytes

# What `flukeid init-home` writes when the home has no dagster.yaml: no telemetry, and the project's Python
# warnings (a damaged cache entry recomputed, a lock waited for) in the run's log.
DAGSTER_YAML = "telemetry:\n  enabled: false\npython_logs:\n  managed_python_loggers:\n    - flukeid\n"


def dagster_home(home: str | Path | None = None) -> Path:
    home = home or os.environ.get("DAGSTER_HOME")
    if not home:
        raise RuntimeError("DAGSTER_HOME is not set: point it at the folder of the run history (make does)")
    return Path(home).expanduser().resolve()


def init_home(home: str | Path | None = None) -> Path:
    """Create the home's folder, its dagster.yaml (when missing) and every storage's schema, once: concurrent
    callers wait for the first (a lock file in the home), then find it done. Returns the home."""
    home = dagster_home(home)
    home.mkdir(parents=True, exist_ok=True)
    with pid_lock(home / ".flukeid-init.lock"):
        config = home / "dagster.yaml"
        if not config.exists():
            write_bytes(DAGSTER_YAML.encode(), config)
        with DagsterInstance.from_config(str(home)) as instance:
            # Opening each storage creates its tables (and stamps their revision); a read makes sure they answer.
            _ = (instance.run_storage, instance.event_log_storage, instance.schedule_storage)
            instance.get_runs(limit=1)
    return home


def run_pid(instance: DagsterInstance, run_id: str) -> int | None:
    """The pid of the process that executes the run (its first engine event with a pid), None when unknown."""
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT):
        data = entry.dagster_event.engine_event_data if entry.dagster_event else None
        value = (data.metadata or {}).get("pid") if data is not None else None
        text = str(getattr(value, "value", value) or "")
        if text.isdigit():
            return int(text)
    return None


def _same_process(pid: int, run_started: float | None) -> bool:
    """False when the pid now names a process younger than the run (the run's process died, its pid reused)."""
    try:
        import psutil

        return run_started is None or psutil.Process(pid).create_time() <= run_started + 1.0
    except Exception:  # no psutil, or the process just went
        return True


def abandoned_runs(
    instance: DagsterInstance, alive: Callable[[int], bool] = pid_alive
) -> list[tuple[object, int]]:
    """(run, pid) of every STARTED run whose process is gone."""
    found = []
    for record in instance.get_run_records(RunsFilter(statuses=[DagsterRunStatus.STARTED])):
        pid = run_pid(instance, record.dagster_run.run_id)
        if pid is None:
            continue
        if alive(pid) and _same_process(pid, record.start_time):
            continue
        found.append((record.dagster_run, pid))
    return found


def mark_abandoned_runs_failed(
    instance: DagsterInstance,
    echo: Callable[[str], None] = print,
    dry_run: bool = False,
    alive: Callable[[int], bool] = pid_alive,
) -> list[str]:
    """Report every STARTED run of a dead process failed (with `dry_run`, only say so); returns their ids."""
    marked = []
    for run, pid in abandoned_runs(instance, alive):
        echo(
            f"run {run.run_id} is STARTED but its process {pid} is gone: "
            + ("would mark" if dry_run else "marked")
            + " failed"
        )
        if not dry_run:
            instance.report_run_failed(
                run,
                message=f"the run's process (pid {pid}) is gone (killed?): marked failed by flukeid update",
            )
        marked.append(run.run_id)
    return marked
