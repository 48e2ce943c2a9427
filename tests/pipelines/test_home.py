"""The Dagster home: created once before any run, so runs started at the same moment on a new home all succeed;
and runs a killed process left STARTED are marked failed by `flukeid update`."""

import os
import subprocess
import sys
import textwrap

from dagster import DagsterInstance, DagsterRunStatus

from pipelines.home import abandoned_runs, init_home, mark_abandoned_runs_failed

# What a `dagster asset materialize` does to the home: open it, run, record the run.
INIT_THEN_RUN = textwrap.dedent(
    """
    import sys
    from dagster import DagsterInstance, asset, materialize
    from pipelines.home import init_home

    @asset
    def one() -> int:
        return 1

    home = init_home(sys.argv[1])
    with DagsterInstance.from_config(str(home)) as instance:
        assert materialize([one], instance=instance).success
    print("ok")
    """
)

KILLED_MID_RUN = textwrap.dedent(
    """
    import os, signal, sys
    from dagster import DagsterInstance, asset, materialize

    @asset
    def killed() -> int:
        os.kill(os.getpid(), signal.SIGKILL)  # the run's process dies; its run stays STARTED
        return 1

    with DagsterInstance.from_config(sys.argv[1]) as instance:
        materialize([killed], instance=instance)
    """
)


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": os.getcwd(), "DAGSTER_DISABLE_TELEMETRY": "1"}


def test_two_runs_started_at_once_on_a_new_home_both_succeed(tmp_path):
    home = tmp_path / "dagster_home"  # does not exist yet
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", INIT_THEN_RUN, str(home)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        for _ in range(2)
    ]
    outputs = [proc.communicate(timeout=300) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], [err[-2000:] for _, err in outputs]
    assert "telemetry" in (home / "dagster.yaml").read_text()
    with DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs()
        assert len(runs) == 2 and all(run.status == DagsterRunStatus.SUCCESS for run in runs)


def test_init_home_keeps_a_users_dagster_yaml_and_is_idempotent(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    assert init_home(home) == home.resolve() and init_home(home) == home.resolve()
    assert (home / "dagster.yaml").read_text() == "telemetry:\n  enabled: false\n"
    assert (home / "history" / "runs.db").exists()


def test_a_started_run_of_a_dead_process_is_marked_failed(tmp_path):
    home = init_home(tmp_path / "home")
    done = subprocess.run(
        [sys.executable, "-c", KILLED_MID_RUN, str(home)],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
    )
    assert done.returncode != 0
    with DagsterInstance.from_config(str(home)) as instance:
        (run,) = instance.get_runs()
        assert run.status == DagsterRunStatus.STARTED
        # while its process could still be alive, nothing is touched
        assert abandoned_runs(instance, alive=lambda pid: True) == []
        said: list[str] = []
        assert mark_abandoned_runs_failed(instance, echo=said.append, dry_run=True) == [run.run_id]
        assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.STARTED
        assert mark_abandoned_runs_failed(instance, echo=said.append) == [run.run_id]
        assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.FAILURE
        assert any("is gone" in line for line in said)
        assert mark_abandoned_runs_failed(instance, echo=said.append) == []


def test_the_init_home_command(tmp_path, monkeypatch, capsys):
    from pipelines.cli import main

    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    assert main(["init-home"]) == 2 and "DAGSTER_HOME" in capsys.readouterr().err
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    assert main(["init-home"]) == 0 and "dagster home ready" in capsys.readouterr().out
    assert (tmp_path / "home" / "dagster.yaml").exists() and (
        tmp_path / "home" / "history" / "runs.db"
    ).exists()
