"""What `bench/gpu_full.sh` measures: the device's bf16 peak, and per stage the time, memory and throughput of a run.

    python bench/stage_report.py preflight --device cuda     refuse at once a device torch cannot see (exit 2)
    python bench/stage_report.py peak --device auto --out peak.json
    python bench/stage_report.py report --home DAGSTER_HOME [--peak peak.json] [--json report.json]

- `peak`: a bf16 matmul (n x n, repeated for about `--seconds`) on the device; prints TFLOP/s. The ceiling the
  training throughput is compared with: the device's, as measured here, not its data sheet's.
- `report`: every step of every run in the Dagster home (step key, status, seconds: Dagster's own step stats from
  the event log), then the memory the stages recorded in their metadata (`process_peak_rss_mb`, and
  `cuda_max_memory_mb`: torch's peak allocation, which the two training stages record on CUDA), then the
  training throughput: the network's FLOPs per training image (counted with `torch.utils.flop_counter` on one
  forward and backward of the architecture the metadata names; the detector's backward taken as twice its
  forward), times the images trained, over the seconds they took, as TFLOP/s and as a share of the peak.
  The embedding's seconds are its optimisation steps' (`step_seconds`); the detector's are its training's wall
  time, validation and data loading included, so its share is a lower bound.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TRAINING_STAGES = ("fluke_detector", "embedding_model")
MEMORY_KEYS = ("process_peak_rss_mb", "cuda_max_memory_mb")


def preflight(device: str) -> str:
    """The torch device `device` names (`FLUKEID_DEVICE`'s rules); raises, with the pipeline's message, when it
    is not there."""
    from core.resources import ComputeDevice

    return str(ComputeDevice(device=device).torch_device())


def measure_bf16_peak(device: str = "auto", size: int = 0, seconds: float = 2.0) -> dict:
    """TFLOP/s of a bf16 n x n matmul on `device`, repeated for about `seconds` after a warm-up."""
    import torch

    torch_device = preflight(device)
    cuda = torch_device.startswith("cuda")
    size = size or (8192 if cuda else 512)
    a = torch.randn(size, size, device=torch_device, dtype=torch.bfloat16)
    b = torch.randn(size, size, device=torch_device, dtype=torch.bfloat16)

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    for _ in range(3):
        a @ b
    sync()
    started, runs = time.perf_counter(), 0
    while runs < 3 or time.perf_counter() - started < seconds:
        a @ b
        runs += 1
        if runs % 10 == 0 or not cuda:
            sync()
    sync()
    elapsed = time.perf_counter() - started
    tflops = 2.0 * size**3 * runs / elapsed / 1e12
    name = torch.cuda.get_device_name(torch_device) if cuda else "cpu"
    return {"device": torch_device, "name": name, "size": size, "matmuls": runs, "tflops": tflops}


def step_rows(instance) -> list[dict]:
    """One row per step of every run in the instance, oldest run first, in the order the steps started."""
    rows = []
    for run in reversed(instance.get_runs()):
        for stat in sorted(instance.get_run_step_stats(run.run_id), key=lambda s: s.start_time or 0):
            seconds = stat.end_time - stat.start_time if stat.start_time and stat.end_time else math.nan
            status = stat.status.value if stat.status is not None else "IN_PROGRESS"
            rows.append({"run": run.run_id[:8], "step": stat.step_key, "status": status, "seconds": seconds})
    return rows


def latest_metadata(instance, asset: str) -> dict:
    """The plain values of the latest materialization's metadata of `asset` ({} when never materialized)."""
    from dagster import AssetKey

    event = instance.get_latest_materialization_event(AssetKey(asset))
    if event is None or event.asset_materialization is None:
        return {}
    return {
        key: getattr(value, "value", value) for key, value in event.asset_materialization.metadata.items()
    }


def embedding_flops_per_image(info: dict) -> float:
    """FLOPs of one forward and backward of the embedding network per training image (convolutions and matrix
    products, as `FlopCounterMode` counts them; the losses left out), at the size the network sees."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from models.embedding import EmbeddingSpec, build_embedding_model

    spec = EmbeddingSpec.from_dict({**info["model"], "pretrained": ""})  # weights do not change the count
    model = build_embedding_model(spec).train()
    shape = info["input"]
    batch = 4  # BatchNorm in training mode needs more than one image
    pixels = torch.zeros(batch, shape["channels"], shape["height"], shape["width"], dtype=torch.uint8)
    images = model.downscale(pixels)
    with FlopCounterMode(display=False) as counter:
        model(images, downscaled=True).float().sum().backward()
    return counter.get_total_flops() / batch


def detector_flops_per_image(model_yaml: str, imgsz: int) -> float:
    """FLOPs of training the YOLO architecture on one `imgsz` image: its forward, counted, times 3 (backward ~2x)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from models import detector as det

    det.configure_offline(Path(tempfile.mkdtemp(prefix="flukeid-flops-")))
    from ultralytics import YOLO

    network = YOLO(model_yaml, task="detect").model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        network(torch.zeros(1, 3, imgsz, imgsz))
    return 3.0 * counter.get_total_flops()


def throughput_rows(instance, peak_tflops: float | None) -> list[dict]:
    """Achieved training TFLOP/s of the two training stages, and its share of the measured peak."""
    rows = []
    embedding = latest_metadata(instance, "embedding_model")
    if embedding.get("images_trained") and embedding.get("step_seconds"):
        flops = embedding_flops_per_image(embedding["config"])
        rows.append(
            _throughput("embedding_model", flops, embedding["images_trained"], embedding["step_seconds"])
        )
    detector = latest_metadata(instance, "fluke_detector")
    if detector.get("trained") and detector.get("steps_completed") and detector.get("training_seconds"):
        flops = detector_flops_per_image(detector["model_yaml"], int(detector["imgsz"]))
        images = int(detector["steps_completed"]) * int(detector.get("batch", 1))
        rows.append(_throughput("fluke_detector", flops, images, detector["training_seconds"]))
    for row in rows:
        row["share_of_peak"] = row["tflops"] / peak_tflops if peak_tflops else math.nan
    return rows


def _throughput(stage: str, flops_per_image: float, images: int, seconds: float) -> dict:
    tflops = flops_per_image * images / max(float(seconds), 1e-9) / 1e12
    return {
        "stage": stage,
        "gflop_per_image": flops_per_image / 1e9,
        "images": int(images),
        "seconds": float(seconds),
        "tflops": tflops,
    }


def memory_rows(instance, assets: list[str]) -> list[dict]:
    """The memory figures each asset's latest materialization recorded, where it recorded any."""
    rows = []
    for asset in assets:
        metadata = latest_metadata(instance, asset)
        found = {key: metadata[key] for key in MEMORY_KEYS if key in metadata}
        if found:
            rows.append({"asset": asset, **found})
    return rows


def budget_rows(instance) -> list[dict]:
    """What the training stages ran against their time budgets."""
    keys = ("max_minutes", "stopped_by_budget", "epochs_configured", "epochs_completed", "steps_completed")
    rows = []
    for stage in TRAINING_STAGES:
        metadata = latest_metadata(instance, stage)
        if metadata:
            rows.append({"stage": stage, **{key: metadata.get(key) for key in keys}})
    return rows


def report(home: Path, peak: dict | None) -> dict:
    """Everything `report` prints, as one dict (also written as JSON)."""
    from dagster import DagsterInstance

    instance = DagsterInstance.from_config(str(home))
    try:
        steps = step_rows(instance)
        assets = sorted({row["step"] for row in steps})
        return {
            "peak": peak,
            "steps": steps,
            "memory": memory_rows(instance, assets),
            "budgets": budget_rows(instance),
            "throughput": throughput_rows(instance, peak["tflops"] if peak else None),
        }
    finally:
        instance.dispose()


def format_report(result: dict) -> str:
    lines = []
    peak = result.get("peak")
    if peak:
        lines.append(f"bf16 peak ({peak['name']}, {peak['size']}^2 matmul): {peak['tflops']:.4g} TFLOP/s")
        if not str(peak["device"]).startswith("cuda"):
            lines.append(
                "  (on the CPU training runs in float32, not bf16: the shares below measure nothing)"
            )
    lines += ["", f"{'run':8}  {'step':40} {'status':14} {'seconds':>9}"]
    for row in result["steps"]:
        lines.append(f"{row['run']:8}  {row['step']:40} {row['status']:14} {row['seconds']:9.1f}")
    done = [row["seconds"] for row in result["steps"] if not math.isnan(row["seconds"])]
    lines.append(f"{'':8}  {'all steps':40} {'':14} {sum(done):9.1f}")
    if result["memory"]:
        lines += ["", f"{'asset':24} {'peak RSS MB':>12} {'CUDA peak MB':>13}"]
        for row in result["memory"]:
            rss, cuda = row.get("process_peak_rss_mb"), row.get("cuda_max_memory_mb")
            lines.append(f"{row['asset']:24} {_or_dash(rss):>12} {_or_dash(cuda):>13}")
    for row in result["budgets"]:
        lines.append(
            f"{row['stage']}: budget {row['max_minutes']} min, {row['epochs_completed']} of "
            f"{row['epochs_configured']} epochs, {row['steps_completed']} steps, stopped by budget: "
            f"{row['stopped_by_budget']}"
        )
    for row in result["throughput"]:
        share = (
            "n/a (no peak measured)" if math.isnan(row["share_of_peak"]) else f"{row['share_of_peak']:.2%}"
        )
        lines.append(
            f"{row['stage']}: {row['gflop_per_image']:.4g} GFLOP per training image x {row['images']:,} images "
            f"in {row['seconds']:.1f} s = {row['tflops']:.4g} TFLOP/s, {share} of the measured bf16 peak"
        )
    return "\n".join(lines)


def _or_dash(value) -> str:
    return "-" if value is None else f"{float(value):,.0f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("preflight", help="refuse a device torch cannot see")
    check.add_argument("--device", default="auto")
    peak = commands.add_parser("peak", help="measure the device's bf16 matmul TFLOP/s")
    peak.add_argument("--device", default="auto")
    peak.add_argument("--size", type=int, default=0, help="matrix side (default 8192 on CUDA, 512 on CPU)")
    peak.add_argument("--seconds", type=float, default=2.0)
    peak.add_argument("--out", default=None, help="write the figures as JSON here")
    rep = commands.add_parser(
        "report", help="per-stage times, memory and training throughput of a home's runs"
    )
    rep.add_argument("--home", required=True, help="the DAGSTER_HOME the runs used")
    rep.add_argument("--peak", default=None, help="the JSON `peak --out` wrote")
    rep.add_argument("--json", default=None, help="write the report as JSON here")
    args = parser.parse_args(argv)
    try:
        if args.command == "preflight":
            print(f"device: {preflight(args.device)}")
            return 0
        if args.command == "peak":
            figures = measure_bf16_peak(args.device, args.size, args.seconds)
            print(
                f"bf16 peak on {figures['name']}: {figures['tflops']:.4g} TFLOP/s ({figures['size']}^2 matmul)"
            )
            if args.out:
                Path(args.out).write_text(json.dumps(figures, indent=1))
            return 0
    except (RuntimeError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    peak_figures = json.loads(Path(args.peak).read_text()) if args.peak and Path(args.peak).exists() else None
    result = report(Path(args.home), peak_figures)
    print(format_report(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
