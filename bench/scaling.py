"""Benchmark: how each stage's time and peak memory grow with the number of photos (issue 14).

For each scale (default 0.02, 0.05, 0.1, 0.2 of the real data's 33,320 photos; one fixed seed) the bench
generates a set with `flukeid synth` (timed: its growth extrapolates the full-size synth time), then materializes
the chain one step at a time, each step its own subprocess (`bench/scaling_step.py`) against the size's own
Dagster home and storage, with the profile `--profile` (default `configs/scaling.yaml`: training bounded, every
per-image stage at its demo settings). Per step it records:

- seconds: the Dagster run of that step (its asset checks included), timed inside the subprocess, so that
  Python's start and the imports of torch, Dagster and ultralytics (several seconds, the same at every size)
  do not flatten the growth; and its CPU seconds (user + system, its worker processes included), which other
  work on a shared machine disturbs less than the wall time;
- peak memory: the largest proportional set size (PSS) summed over the step's process tree (the step and its
  worker processes; PSS because forked workers share most of their parent's pages, which an RSS sum would count
  once per worker), sampled from here (`run_measured`), and never below the step process's own `ru_maxrss`; one
  process per step so that a step's peak is not what earlier steps left allocated (why: see
  `bench/scaling_step.py`); and `baseline_mb`, the step process's memory after its imports, so that what the
  step itself holds is visible;
- photos per second, and over the sizes the exponent b of cost ~ N^b (least squares on log-log) and b between
  the two largest sizes (`bench/scaling_fit.py`).

It writes a CSV (one row per size and stage), a log-log plot (`--plot`, default docs/scaling_loglog.png) and
prints a markdown table for the README, with each stage extrapolated to the full size (labelled as such).
Every size's set is generated first (`--synth-only` stops there and extrapolates the synth time), then the chain
runs on each. Resumable: a size's synth and each finished step are kept under `--work` and not redone unless
`--force`.

    .venv/bin/python bench/scaling.py [--scales 0.02,0.05,0.1,0.2] [--seed 1] [--profile configs/scaling.yaml]
        [--work /tmp/scaling/work] [--csv FILE] [--plot FILE] [--force]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.scaling_fit import extrapolate, markdown_table, plot_loglog, stage_summary  # noqa: E402

FULL_SIZE = 33_320  # photos of the Kaggle data (25,360 train + 7,960 test)
# The chain's steps in order: the observed source, then each asset (a multi-asset's keys together).
STEPS: list[tuple[str, ...]] = [
    ("raw_image_files",),
    ("raw_images",),
    ("image_hashes",),
    ("duplicate_groups",),
    ("training_manifest",),
    ("fluke_detector",),
    ("fluke_boxes",),
    ("fluke_tensors",),
    ("fluke_keypoints",),
    ("fluke_outlines",),
    ("embedding_model",),
    ("gallery_index",),
    ("validation_report",),
    ("submission", "submission_matches"),
    ("review_queue",),
    ("decided_identities",),
]
# Stages whose work is per photo (the bar: exponent <= 1.15); the rest are whole-set or bounded training.
PER_IMAGE = {
    "raw_image_files",
    "raw_images",
    "image_hashes",
    "duplicate_groups",
    "fluke_boxes",
    "fluke_tensors",
    "fluke_keypoints",
    "fluke_outlines",
    "gallery_index",
    "validation_report",
    "submission",
}
SAMPLE_SECONDS = 0.1


def tree_memory(process, proportional: bool) -> int:
    """Bytes resident in `process` and its descendants: the sum of RSS (cheap, but a forked worker's RSS counts
    the pages it still shares with its parent again), or with `proportional` of PSS (each shared page split among
    the processes sharing it, so the sum is what the tree occupies; about 10 ms per process to read)."""
    import psutil

    total = 0
    for member in [process, *process.children(recursive=True)]:
        try:
            info = member.memory_full_info() if proportional else member.memory_info()
            total += info.pss if proportional else info.rss
        except psutil.Error:
            pass
    return total


def run_measured(command: list[str], env: dict, log: Path, cwd: Path = ROOT) -> dict:
    """Run `command`, sampling the memory of its process tree; returns wall seconds, the peak of the tree's
    summed PSS (MB; read at least once a second and whenever the summed RSS, read every 0.1 s, rises 5% above
    where it was at the last read), the peak summed RSS (an upper bound), the tree's largest single ru_maxrss and
    the exit code."""
    import psutil

    log.parent.mkdir(parents=True, exist_ok=True)
    rss_peak = pss_peak = 0
    rss_at_pss, pss_read = 0, 0.0
    with open(log, "w") as output:
        started = time.perf_counter()
        child = subprocess.Popen(command, cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT)
        process = psutil.Process(child.pid)
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            try:
                rss = tree_memory(process, proportional=False)
                rss_peak = max(rss_peak, rss)
                now = time.perf_counter()
                if now - pss_read >= 1.0 or (rss > 1.05 * rss_at_pss and now - pss_read >= 0.2):
                    pss_peak = max(pss_peak, tree_memory(process, proportional=True))
                    rss_at_pss, pss_read = rss, time.perf_counter()
            except psutil.Error:
                pass
            time.sleep(SAMPLE_SECONDS)
        wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    maxrss_mb = usage.ru_maxrss / 1024  # KiB on Linux: the largest single process of the tree
    return {
        "wall_seconds": wall,
        # user + system CPU of the child and every descendant it waited for: less sensitive than wall time to
        # other work on a shared machine
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "peak_mb": max(pss_peak / 2**20, maxrss_mb),
        "rss_sum_peak_mb": max(rss_peak / 2**20, maxrss_mb),
        "maxrss_mb": maxrss_mb,
        "returncode": child.returncode,
    }


def photo_count(data: Path) -> int:
    with open(data / "train.csv") as handle:
        train = sum(1 for _ in handle) - 1
    return train + sum(1 for path in (data / "test").iterdir() if path.is_file())


def environment(size_dir: Path, profile: str) -> dict:
    home = size_dir / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "FLUKEID_DATA_DIR": str(size_dir / "data"),
        "FLUKEID_STORAGE_DIR": str(size_dir / "storage"),
        "FLUKEID_DEVICE": "cpu",
        "FLUKEID_PROFILE": profile,
        "YOLO_OFFLINE": "1",
        "DAGSTER_DISABLE_TELEMETRY": "1",
        "PYTHONPATH": str(ROOT),
    }


def profile_argument(profile: str) -> str:
    """A profile name (`tiny`) or a YAML path, as `FLUKEID_PROFILE` takes it (a path made absolute)."""
    path = Path(profile)
    return str(path.resolve()) if path.suffix in (".yaml", ".yml") else profile


def read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def write_json(path: Path, record: dict) -> None:
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(record, indent=1))
    partial.replace(path)


def synthesize(size_dir: Path, scale: float, seed: int, workers: int | None, env: dict) -> dict:
    """The size's data set, generated once (timed); the record of its synth."""
    record = read_json(size_dir / "synth.json")
    if record is not None and (size_dir / "data" / "train.csv").exists():
        return record
    shutil.rmtree(size_dir / "data", ignore_errors=True)
    command = [sys.executable, "-m", "pipelines.cli", "synth", str(size_dir / "data")]
    command += ["--scale", str(scale), "--seed", str(seed), "--quiet"]
    command += ["--workers", str(workers)] if workers else []
    measured = run_measured(command, env, size_dir / "logs" / "synth.log")
    if measured["returncode"]:
        raise RuntimeError(f"synth at scale {scale} failed; see {size_dir / 'logs' / 'synth.log'}")
    record = {
        "stage": "synth",
        "scale": scale,
        "seed": seed,
        "photos": photo_count(size_dir / "data"),
        "seconds": measured["wall_seconds"],
        "peak_mb": measured["peak_mb"],
        "baseline_mb": 0.0,
        **measured,
    }
    write_json(size_dir / "synth.json", record)
    return record


def run_step(size_dir: Path, step: tuple[str, ...], photos: int, scale: float, env: dict) -> dict:
    """One step, run once (its record kept in steps/<stage>.json)."""
    stage = step[0]
    done = size_dir / "steps" / f"{stage}.json"
    record = read_json(done)
    if record is not None:
        return record
    inner = size_dir / "steps" / f"{stage}.inner.json"
    inner.unlink(missing_ok=True)
    command = [sys.executable, str(ROOT / "bench" / "scaling_step.py"), str(inner), *step]
    measured = run_measured(command, env, size_dir / "logs" / f"{stage}.log")
    if measured["returncode"] or not inner.exists():
        raise RuntimeError(f"step {stage} at scale {scale} failed; see {size_dir / 'logs' / f'{stage}.log'}")
    own = json.loads(inner.read_text())
    record = {
        "stage": stage,
        "scale": scale,
        "photos": photos,
        "seconds": own["seconds"],
        "cpu_seconds": own["cpu_seconds"],
        "peak_mb": max(measured["peak_mb"], own["self_maxrss_mb"]),
        "baseline_mb": own["baseline_mb"],
        "self_maxrss_mb": own["self_maxrss_mb"],
        "workers_maxrss_mb": own["workers_maxrss_mb"],
        "rss_sum_peak_mb": measured["rss_sum_peak_mb"],
        "wall_seconds": measured["wall_seconds"],
    }
    write_json(done, record)
    return record


def measure_size(
    work: Path,
    scale: float,
    seed: int,
    profile: str,
    workers: int | None,
    synth_only: bool = False,
    steps: list[tuple[str, ...]] = STEPS,
) -> list:
    size_dir = work / f"scale_{scale:g}"
    size_dir.mkdir(parents=True, exist_ok=True)
    env = environment(size_dir, profile)
    synth = synthesize(size_dir, scale, seed, workers, env)
    print(f"scale {scale:g}: {synth['photos']:,} photos, synth {synth['seconds']:.1f} s", flush=True)
    rows = [synth]
    if synth_only:
        return rows
    for step in steps:
        row = run_step(size_dir, step, synth["photos"], scale, env)
        print(
            f"  {row['stage']:<20} {row['seconds']:9.2f} s  peak {row['peak_mb']:8.0f} MB "
            f"(after imports {row['baseline_mb']:6.0f} MB)",
            flush=True,
        )
        rows.append(row)
    return rows


def steps_through(last: str | None) -> list[tuple[str, ...]]:
    """The chain's steps up to and including the one that materializes `last` (all of them for None)."""
    if last is None:
        return STEPS
    for position, step in enumerate(STEPS):
        if last in step:
            return STEPS[: position + 1]
    raise SystemExit(f"--through {last}: not a step of the chain ({', '.join(s[0] for s in STEPS)})")


def chain_rows(rows: list[dict]) -> list[dict]:
    """Per size: the chain as a whole (seconds summed over the steps, the largest step peak)."""
    out = []
    for scale in dict.fromkeys(row["scale"] for row in rows):
        steps = [row for row in rows if row["scale"] == scale and row["stage"] != "synth"]
        top = max(steps, key=lambda row: row["peak_mb"])
        out.append(
            {
                "stage": "chain (sum of steps)",
                "scale": scale,
                "photos": steps[0]["photos"],
                "seconds": sum(row["seconds"] for row in steps),
                "cpu_seconds": sum(row["cpu_seconds"] for row in steps),
                "peak_mb": top["peak_mb"],
                "baseline_mb": top["baseline_mb"],
            }
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scales", default="0.02,0.05,0.1,0.2", help="comma-separated scales (>= 2)")
    parser.add_argument("--seed", type=int, default=1, help="synth seed, the same at every scale")
    parser.add_argument("--profile", default=str(ROOT / "configs" / "scaling.yaml"), help="name or YAML path")
    parser.add_argument("--work", type=Path, default=Path("/tmp/scaling/work"), help="sets, storage, homes")
    parser.add_argument("--csv", type=Path, default=None, help="default: WORK/scaling.csv")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "scaling_loglog.png")
    parser.add_argument("--workers", type=int, default=None, help="synth processes (default: all cores)")
    parser.add_argument("--targets", default=f"{FULL_SIZE},300000", help="photo counts to extrapolate to")
    parser.add_argument("--force", action="store_true", help="redo sizes already measured")
    parser.add_argument(
        "--synth-only", action="store_true", help="generate (and time) the sets, nothing else"
    )
    parser.add_argument(
        "--through",
        default=None,
        metavar="ASSET",
        help="run the chain's steps up to this asset only (a quick check of the bench itself)",
    )
    args = parser.parse_args(argv)
    scales = [float(s) for s in args.scales.split(",") if s.strip()]
    if len(scales) < 2:
        parser.error("at least two scales are needed to fit an exponent")
    targets = [float(t) for t in args.targets.split(",") if t.strip()]
    profile = profile_argument(args.profile)
    import pandas as pd

    if args.force:
        for scale in scales:
            shutil.rmtree(args.work / f"scale_{scale:g}", ignore_errors=True)
    # Every size's set first (their synth times come out early), then the chain on each.
    for scale in sorted(scales):
        measure_size(args.work, scale, args.seed, profile, args.workers, synth_only=True)
    if args.synth_only:
        synth = pd.DataFrame([read_json(args.work / f"scale_{scale:g}" / "synth.json") for scale in scales])
        for target in targets:
            seconds = extrapolate(synth["photos"].tolist(), synth["seconds"].tolist(), target)
            print(f"synth extrapolated to {int(target):,} photos: {seconds / 60:.1f} min")
        return 0
    rows = []
    for scale in sorted(scales):
        rows += measure_size(
            args.work, scale, args.seed, profile, args.workers, steps=steps_through(args.through)
        )
    rows += chain_rows(rows)
    table = pd.DataFrame(rows)
    columns = ["scale", "photos", "stage", "seconds", "cpu_seconds", "peak_mb", "baseline_mb"]
    extra = ["self_maxrss_mb", "workers_maxrss_mb", "rss_sum_peak_mb", "wall_seconds"]
    extra = [c for c in extra if c in table]
    table["items_per_s"] = table["photos"] / table["seconds"].clip(lower=1e-3)
    csv = args.csv or args.work / "scaling.csv"
    csv.parent.mkdir(parents=True, exist_ok=True)
    table[columns + ["items_per_s"] + extra].to_csv(csv, index=False, float_format="%.4f")
    args.plot.parent.mkdir(parents=True, exist_ok=True)
    plot_loglog(
        table, args.plot, title=f"flukeid, profile {Path(profile).stem}, seed {args.seed}, 2 CPU cores"
    )
    print(f"\nCSV: {csv}\nplot: {args.plot}\n")
    print(markdown_table(table, targets[0]))
    for target in targets[1:]:
        summary = stage_summary(table, target)
        print(f"\nextrapolated to {int(target):,} photos (largest size x (N / N_max)^max(b fit, b last)):")
        for row in summary.itertuples():
            print(
                f"  {row.stage:<22} {row.seconds_at_target / 3600:8.2f} h  {row.peak_mb_at_target / 1024:6.1f} GB"
            )
    summary = stage_summary(table, targets[0])
    steep = summary[
        summary["stage"].isin(PER_IMAGE) & (summary[["b_time", "b_time_last"]].max(axis=1) > 1.15)
    ]
    print(
        "\nper-image stages with an exponent above 1.15 (fit or last interval): "
        + (
            ", ".join(f"{r.stage} ({r.b_time:.2f}, last {r.b_time_last:.2f})" for r in steep.itertuples())
            or "none"
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
