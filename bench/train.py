"""Training throughput: images per second, with each step's time split into data loading and compute.

Shows that the loader is not the bottleneck: batches come from the uint8 tensor store (one memmap gather per
batch), timed against a named baseline loader that decodes a JPEG photo and crops/resizes it for every image of
every batch, as a training loop over the raw photos would. On CUDA it also times fp32 against bf16 autocast +
channels-last. Runs in a minute or two on CPU; pass --device cuda on a GPU machine.

    .venv/bin/python bench/train.py                      # CPU, demo-sized random store
    .venv/bin/python bench/train.py --device cuda --steps 50 --backbone resnet18
    .venv/bin/python bench/train.py --tensors storage/fluke_tensors/tensors.npy
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.batches import batch_sampler, make_loader, training_items  # noqa: E402
from models.embedding import build_embedding_model, parameter_count  # noqa: E402
from models.epoch import train_step  # noqa: E402
from models.losses import build_losses  # noqa: E402
from models.optimizer import parameter_groups  # noqa: E402
from models.training import TrainingConfig  # noqa: E402


def demo_store(photos: int, height: int, width: int, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """A random store shaped like the demo data: ~38% new_whale, most individuals with one or two photos."""
    rng = np.random.default_rng(seed)
    tensors = rng.integers(0, 256, (photos, 1, height, width), dtype=np.uint8)
    labels, individual = [], 0
    while len(labels) < photos:
        if rng.random() < 0.38:
            labels.append("new_whale")
            continue
        labels += [f"w{individual}"] * int(min(1 + rng.zipf(2.0), photos - len(labels)))
        individual += 1
    return tensors, labels[:photos]


def jpeg_baseline_loader(tensors: np.ndarray, batches: list[list[int]], rows: np.ndarray):
    """The named baseline: every image of every batch decoded from a JPEG photo (about 2.7x the crop's size,
    as a fluke occupies a part of the photo) and cropped and resized, as a loop over raw photos would do."""
    height, width = tensors.shape[2:]
    encoded = {}
    for row in {int(r) for batch in batches for r in rows[batch]}:
        photo = Image.fromarray(tensors[row, 0]).resize((width * 3, int(height * 2.5)))
        buffer = io.BytesIO()
        photo.save(buffer, format="JPEG", quality=90)
        encoded[row] = buffer.getvalue()
    for batch in batches:
        images = []
        for row in rows[batch]:
            with Image.open(io.BytesIO(encoded[int(row)])) as photo:
                photo = photo.convert("L")
                w, h = photo.size
                crop = photo.resize(
                    (width, height), Image.Resampling.BILINEAR, box=(w * 0.1, h * 0.1, w * 0.9, h * 0.9)
                )
            images.append(np.asarray(crop)[None])
        yield torch.from_numpy(np.stack(images))


def run(
    device: torch.device,
    config: TrainingConfig,
    tensors: np.ndarray,
    labels: list[str],
    steps: int,
    warmup: int = 3,
) -> dict:
    rows = np.arange(len(labels))
    items = training_items(labels, rows, config)
    sampler = batch_sampler(items, config)
    torch.manual_seed(0)
    model = build_embedding_model(config.embedding_spec(in_channels=tensors.shape[1])).to(device)
    if device.type == "cuda" and config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    loss_fn = build_losses(config, len(items.class_names), model.embedding_dim).to(device)
    optimizer = torch.optim.AdamW(parameter_groups(model, loss_fn, config), weight_decay=config.weight_decay)
    generator = torch.Generator(device=device).manual_seed(0)
    load_seconds = compute_seconds = 0.0
    images_done = 0
    step = 0
    epoch = 0
    while step < steps + warmup:
        sampler.set_epoch(epoch)
        loader = iter(make_loader(tensors, items, sampler, device, config.loader_workers))
        while step < steps + warmup:
            tick = time.perf_counter()
            try:
                images, classes = next(loader)
            except StopIteration:
                break
            images = images.to(device, non_blocking=True)
            classes = classes.to(device, non_blocking=True)
            if device.type == "cuda":
                torch.cuda.synchronize()
            loaded = time.perf_counter()
            train_step(model, loss_fn, optimizer, None, images, classes, generator, config)  # .item() syncs
            done = time.perf_counter()
            if step >= warmup:
                load_seconds += loaded - tick
                compute_seconds += done - loaded
                images_done += len(images)
            step += 1
        epoch += 1
    total = load_seconds + compute_seconds
    return {
        "images_per_sec": images_done / total,
        "load_share": load_seconds / total,
        "load_ms_per_batch": 1000 * load_seconds / steps,
        "compute_ms_per_batch": 1000 * compute_seconds / steps,
        "parameters": parameter_count(model),
        "batch_size": sampler.batch_size,
    }


def baseline_load_ms(tensors: np.ndarray, labels: list[str], config: TrainingConfig, steps: int) -> float:
    items = training_items(labels, np.arange(len(labels)), config)
    sampler = batch_sampler(items, config)
    batches = [batch for _, batch in zip(range(steps), sampler)]
    loader = jpeg_baseline_loader(tensors, batches, items.rows)
    started = time.perf_counter()
    count = sum(1 for _ in loader)
    return 1000 * (time.perf_counter() - started) / max(1, count)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    parser.add_argument("--steps", type=int, default=15, help="timed steps per configuration")
    parser.add_argument("--backbone", default=TrainingConfig.backbone)
    parser.add_argument(
        "--tensors", default="", help="a tensors.npy of uint8 N x C x H x W (default: random)"
    )
    parser.add_argument("--photos", type=int, default=1300)
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers")
    args = parser.parse_args()

    device = torch.device(
        "cuda"
        if args.device == "auto" and torch.cuda.is_available()
        else ("cpu" if args.device == "auto" else args.device)
    )
    if args.tensors:
        tensors = np.load(args.tensors, mmap_mode="r")
        _, labels = demo_store(len(tensors), 1, 1)
    else:
        tensors, labels = demo_store(args.photos, args.height, args.width)
    config = TrainingConfig(backbone=args.backbone, loader_workers=args.workers)
    print(
        f"device {device}, backbone {args.backbone}, store {tuple(tensors.shape)}, torch threads "
        f"{torch.get_num_threads()}"
    )

    results = {}
    if device.type == "cuda":
        results["cuda fp32"] = run(
            device,
            TrainingConfig(**{**config.to_dict(), "mixed_precision": False, "channels_last": False}),
            tensors,
            labels,
            args.steps,
        )
        results["cuda bf16 + channels_last"] = run(device, config, tensors, labels, args.steps)
    else:
        results["cpu fp32"] = run(device, config, tensors, labels, args.steps)
    for name, r in results.items():
        print(
            f"{name:28s} {r['images_per_sec']:8.1f} images/s  batch {r['batch_size']}  "
            f"load {r['load_ms_per_batch']:7.1f} ms ({r['load_share']:.1%})  compute {r['compute_ms_per_batch']:8.1f} ms"
            f"  params {r['parameters']:,}"
        )
    ours = list(results.values())[-1]
    jpeg_ms = baseline_load_ms(tensors, labels, config, min(args.steps, 10))
    print(
        f"loader: tensor store {ours['load_ms_per_batch']:.1f} ms/batch vs baseline JPEG decode+crop "
        f"{jpeg_ms:.1f} ms/batch: {jpeg_ms / max(ours['load_ms_per_batch'], 1e-9):.1f}x faster; "
        f"loading is {ours['load_share']:.1%} of step time"
    )
    if len(results) == 2:
        fp32, bf16 = results.values()
        print(
            f"bf16 + channels_last vs fp32: {bf16['images_per_sec'] / fp32['images_per_sec']:.2f}x images/s"
        )


if __name__ == "__main__":
    main()
