"""`flukeid experiments`: the experiment sweep from the command line, beside the UI's partitions page.

    flukeid experiments                         print the stored comparison (`experiment_comparison`'s tables)
    flukeid experiments --run [--jobs 2] [--only EXPERIMENT ...] [--dry-run]
        observe `experiment_variants`, materialize every missing or stale partition of `experiment_run` in JOBS
        worker processes, then `experiment_comparison`, and print it. Partitions that share a training (the
        `recipe` of every experiment, for one seed) go to one worker, one after the other, so that the later ones
        find the first one's checkpoint instead of waiting for it.
    flukeid experiments --write-docs docs/experiments.md
        write the stored comparison as that page, its plots beside it in docs/experiments/

The chain's commands (`make demo`, `flukeid update`, the `identify_whales` job) never run the sweep.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from dagster import AssetKey, DagsterInstance, Definitions

from core.files import write_bytes
from pipelines.io_managers import load_artifact
from pipelines.staleness import asset_statuses, partition_statuses
from pipelines.update import materialize_keys

VARIANTS = AssetKey("experiment_variants")
RUNS = AssetKey("experiment_run")
COMPARISON = AssetKey("experiment_comparison")
SCORE_MINUTES = 1.0  # about what scoring one partition costs on the demo data, for the plan's estimate
UNBUDGETED_MINUTES = (
    6.0  # the estimate of a training without a budget (the recipe's 120 epochs on the demo data)
)


def experiment_of(partition: str) -> str:
    """`<seed>|<experiment>.<variant>` -> `<experiment>`."""
    return partition.split("|")[-1].split(".")[0]


def partitions_to_run(defs: Definitions, instance: DagsterInstance, only: Sequence[str] = ()) -> list[str]:
    """The partitions Dagster calls missing or stale, of the experiments in `only` (every one when empty)."""
    statuses = partition_statuses(defs, instance, RUNS)
    return [
        key
        for key, status in statuses.items()
        if status.needs_run and (not only or experiment_of(key) in only)
    ]


def upstream_problems(defs: Definitions, instance: DagsterInstance) -> tuple[list[str], list[str]]:
    """(missing, stale) chain assets `experiment_run` reads: missing ones make every partition fail, stale ones
    mean the sweep scores on the chain's older artifacts."""
    parents = {key for key in defs.resolve_asset_graph().get(RUNS).parent_keys if key != VARIANTS}
    statuses = [status for status in asset_statuses(defs, instance) if status.key in parents]
    missing = sorted(s.key.to_user_string() for s in statuses if s.status == "MISSING")
    return missing, sorted(s.key.to_user_string() for s in statuses if s.status == "STALE")


def plan_workers(
    partitions: Sequence[str], plan: dict[str, tuple[str, float]], jobs: int
) -> tuple[list[list[str]], list[float]]:
    """Partitions grouped by their training (`plan`: key -> (training digest, budget minutes)), the groups dealt
    to `jobs` workers, costliest first, each to the least loaded. Returns each worker's partitions, in order, and
    its estimated minutes (one training per group plus the scoring of each partition)."""
    groups: dict[str, list[str]] = {}
    for key in partitions:
        groups.setdefault(plan[key][0], []).append(key)

    def cost(group: list[str]) -> float:
        return (plan[group[0]][1] or UNBUDGETED_MINUTES) + SCORE_MINUTES * len(group)

    workers: list[list[str]] = [[] for _ in range(max(1, jobs))]
    loads = [0.0] * len(workers)
    for group in sorted(groups.values(), key=lambda g: (-cost(g), g[0])):
        least = loads.index(min(loads))
        workers[least] += group
        loads[least] += cost(group)
    busy = [i for i, worker in enumerate(workers) if worker]
    return [workers[i] for i in busy], [loads[i] for i in busy]


def run_partitions(
    defs: Definitions,
    instance: DagsterInstance,
    partitions: Sequence[str],
    echo: Callable[[str], None] = print,
) -> list[str]:
    """Materialize the partitions in this process, one after the other; returns those that failed."""
    job = defs.resolve_implicit_global_asset_job_def()
    failed = []
    for key in partitions:
        started = time.perf_counter()
        result = job.execute_in_process(
            instance=instance, asset_selection=[RUNS], partition_key=key, raise_on_error=False
        )
        seconds = time.perf_counter() - started
        echo(f"{key}: {'done' if result.success else 'FAILED'} in {seconds:.0f} s")
        if not result.success:
            failed.append(key)
    return failed


def worker_command(partitions: Sequence[str]) -> list[str]:
    """The process that runs `partitions` one after the other (`main` below), printing one line per partition."""
    return [sys.executable, "-m", "pipelines.experiments", *partitions]


def run_worker(
    index: int,
    partitions: list[str],
    log: Path,
    echo: Callable[[str], None],
    failed: list[str],
    command: list[str] | None = None,
) -> None:
    """One worker process: its lines echoed with its number, its Dagster log appended to `log`, the partitions it
    reports failed (or the worker itself, when it dies without saying) added to `failed`."""
    command = command or worker_command(partitions)
    with open(log, "a") as errors:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, text=True, env=os.environ)
        for line in process.stdout:
            line = line.rstrip()
            echo(f"[worker {index}] {line}")
            if ": FAILED in " in line:
                failed.append(line.split(": FAILED in ")[0])
        if process.wait() != 0 and not any(key in failed for key in partitions):
            failed.append(f"worker {index} exited with {process.returncode} (see {log})")


def sweep(
    defs: Definitions,
    instance: DagsterInstance,
    jobs: int = 2,
    only: Sequence[str] = (),
    dry_run: bool = False,
    echo: Callable[[str], None] = print,
    experiments_file: str | None = None,
    log_dir: Path | None = None,
) -> list[str]:
    """Observe the variants, run what is missing or stale (in `jobs` worker processes; 1: in this one), then the
    comparison. Returns the partitions that failed."""
    from pipelines.definitions import experiment_plan

    missing, stale = upstream_problems(defs, instance)
    if missing and not dry_run:
        raise RuntimeError(f"the sweep reads {', '.join(missing)}: materialize the chain first (make demo)")
    if stale:
        echo(
            f"note: {', '.join(stale)} stale: the sweep scores on their stored values (flukeid update first?)"
        )
    materialize_keys(defs, instance, [VARIANTS], {})
    todo = partitions_to_run(defs, instance, only)
    workers, loads = plan_workers(todo, experiment_plan(experiments_file), jobs)
    echo(
        f"{len(todo)} partition(s) of experiment_run missing or stale; {len(workers)} worker(s), at most about "
        f"{max(loads, default=0):.0f} min (each training its whole time budget, {SCORE_MINUTES:g} min per "
        "scoring; a training whose epochs end sooner takes less)"
    )
    for index, worker in enumerate(workers):
        echo(f"  worker {index}: {', '.join(worker)}")
    if dry_run:
        return []
    started, failed = time.perf_counter(), []
    if jobs <= 1:
        failed = run_partitions(defs, instance, todo, echo)
    else:
        log_dir = Path(
            log_dir or Path(os.environ.get("FLUKEID_STORAGE_DIR", "storage")) / "work" / "experiments"
        )
        log_dir.mkdir(parents=True, exist_ok=True)
        threads = [
            threading.Thread(target=run_worker, args=(i, w, log_dir / f"worker-{i}.log", echo, failed))
            for i, w in enumerate(workers)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    echo(f"partitions done in {(time.perf_counter() - started) / 60:.1f} min; {len(failed)} failed")
    materialize_keys(defs, instance, [COMPARISON], {})
    return failed


def stored_comparison(storage_root: str | Path) -> dict:
    """The last materialized `experiment_comparison`."""
    return load_artifact(
        Path(storage_root).expanduser().resolve() / COMPARISON.path[-1], "experiment_comparison"
    )


def write_docs(value: dict, target: str | Path) -> list[Path]:
    """The comparison's markdown at `target`, its plots in the folder beside it named as the page
    (docs/experiments.md -> docs/experiments/<experiment>.png). Returns the files written."""
    target = Path(target)
    images = target.with_suffix("")
    images.mkdir(parents=True, exist_ok=True)
    written = []
    for name, encoded in value["plots"].items():
        write_bytes(base64.b64decode(encoded), images / f"{name}.png")
        written.append(images / f"{name}.png")
    write_bytes(value["text"]["markdown"].replace("{images}", images.name).encode(), target)
    return [target, *written]


def main(argv: list[str]) -> int:
    """A worker of `sweep`: materialize the partitions named, one after the other, in this process."""
    from pipelines.definitions import defs

    with DagsterInstance.get() as instance:
        failed = run_partitions(defs, instance, argv, echo=lambda line: print(line, flush=True))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
