"""One step of `bench/scaling.py`: materialize one asset (or one multi-asset's keys) in this process and write its
time as JSON. The environment names the data, storage, Dagster home and profile (`FLUKEID_*`, `DAGSTER_HOME`).

Run by the bench as a subprocess per step, so that each step's peak memory is its own (a long-lived process
keeps what earlier steps allocated: Python and glibc rarely give freed memory back, torch keeps its caches),
which is also how Dagster's default multiprocess executor runs a step. The seconds are those of the Dagster run
alone (its checks included), not of this process's start and imports; `baseline_mb` is this process's memory
(PSS) after the imports and before the run.

    .venv/bin/python bench/scaling_step.py OUT.json ASSET [ASSET ...]
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def cpu_seconds() -> float:
    """User + system CPU of this process and of its finished worker processes (a pool's workers count once the
    pool has joined them)."""
    own, workers = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    out, names = Path(argv[0]), argv[1:]
    import psutil
    from dagster import AssetKey, DagsterInstance

    from core.profiles import active_profile, run_config
    from pipelines.definitions import build_definitions
    from pipelines.update import materialize_keys

    defs = build_definitions(device="cpu")
    config = run_config()
    imported = psutil.Process().memory_full_info()
    with DagsterInstance.get() as instance:
        cpu_before = cpu_seconds()
        started = time.perf_counter()
        materialize_keys(defs, instance, [AssetKey(name) for name in names], config)
        seconds = time.perf_counter() - started
        cpu = cpu_seconds() - cpu_before
    record = {
        "assets": names,
        "profile": active_profile(),
        "seconds": seconds,
        "cpu_seconds": cpu,
        # PSS, as the bench's peaks are (RSS beside it)
        "baseline_mb": imported.pss / 2**20,
        "baseline_rss_mb": imported.rss / 2**20,
        # ru_maxrss is in KiB on Linux: this process's peak, and the largest of its finished worker processes.
        "self_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "workers_maxrss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(".partial")
    partial.write_text(json.dumps(record, indent=1))
    partial.replace(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
