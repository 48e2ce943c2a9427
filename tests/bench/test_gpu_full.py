"""bench/gpu_full.sh: its CPU dry path end to end (the code path of the GPU run, on a tiny set, the tiny profile and
the CPU), and a CUDA device asked for where there is none refused at once, with a message that says so, by the
script, by the Dagster CLI and by the definitions."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.chain import ASSETS

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "bench" / "gpu_full.sh"
NO_CUDA = "torch sees no CUDA device"
needs_no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")


def _script(work: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "WORK": str(work), "PYTHON": sys.executable, **env}
    for name in ("DRY_RUN", "FLUKEID_DEVICE", "PROFILE", "SCALE", "STEPS", "FLUKEID_PROFILE"):
        if name not in env:
            environment.pop(name, None)
    return subprocess.run(
        ["bash", str(SCRIPT), *args], cwd=REPO, env=environment, capture_output=True, text=True, timeout=1500
    )


@pytest.mark.slow
def test_the_dry_run_goes_through_every_step_and_reports_every_stage(tmp_path):
    done = _script(tmp_path / "work", "--dry-run", FLUKEID_WORKERS="2")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    work = tmp_path / "work"
    assert (work / "data" / "train.csv").exists()  # the data step generated the set
    report = json.loads((work / "report.json").read_text())
    assert report["peak"]["tflops"] > 0 and report["peak"]["device"] == "cpu"
    succeeded = {row["step"] for row in report["steps"] if row["status"] == "SUCCESS"}
    # submission_matches is the multi-asset `submission`'s second output: one step
    chain_steps = {name for name in ASSETS if name != "submission_matches"}
    assert chain_steps <= succeeded, chain_steps - succeeded
    assert all(row["seconds"] >= 0 for row in report["steps"])
    budgets = {row["stage"]: row for row in report["budgets"]}
    assert set(budgets) == {"fluke_detector", "embedding_model"}
    assert all(row["epochs_completed"] == row["epochs_configured"] for row in budgets.values())  # no budget
    throughput = {row["stage"]: row for row in report["throughput"]}
    assert set(throughput) == {"fluke_detector", "embedding_model"}
    assert all(row["gflop_per_image"] > 0 and row["images"] > 0 for row in throughput.values())
    memory = {row["asset"]: row for row in report["memory"]}
    assert memory["embedding_model"]["process_peak_rss_mb"] > 0
    assert "cuda_max_memory_mb" not in memory["embedding_model"]  # recorded on CUDA only
    text = (work / "report.txt").read_text()
    assert "TFLOP/s" in text and "embedding_model" in text and "of the measured bf16 peak" in text


@needs_no_cuda
def test_the_script_refuses_cuda_without_a_gpu_before_doing_anything(tmp_path):
    done = _script(tmp_path / "work", FLUKEID_DEVICE="cuda")
    assert done.returncode == 2
    assert "FLUKEID_DEVICE=cuda" in done.stderr and NO_CUDA in done.stderr
    assert not (tmp_path / "work").exists()  # nothing made, nothing generated


@needs_no_cuda
def test_the_dagster_cli_refuses_cuda_without_a_gpu_when_the_definitions_load(tmp_path):
    from tests.chain import dagster_environment

    env = dagster_environment(tmp_path, tmp_path / "data", FLUKEID_DEVICE="cuda", FLUKEID_PROFILE="tiny")
    command = [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "pipelines.definitions"]
    done = subprocess.run(
        [*command, "--select", "raw_images"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode != 0
    assert "FLUKEID_DEVICE=cuda" in done.stdout + done.stderr and NO_CUDA in done.stdout + done.stderr


@needs_no_cuda
def test_the_definitions_refuse_cuda_without_a_gpu_and_name_the_way_out():
    from pipelines.definitions import build_definitions

    with pytest.raises(RuntimeError, match=f"{NO_CUDA}.*FLUKEID_DEVICE=auto or cpu"):
        build_definitions(device="cuda")
    assert build_definitions(device="cpu") is not None


def test_the_peak_benchmark_measures_a_bf16_matmul_on_the_cpu():
    from bench import stage_report

    figures = stage_report.measure_bf16_peak("cpu", size=64, seconds=0.01)
    assert figures["device"] == "cpu" and figures["tflops"] > 0 and figures["matmuls"] >= 3
