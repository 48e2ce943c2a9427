"""Crop-and-resize throughput: a naive baseline (full Pillow decode, crop, resize, one process) against
`fluke_tensors` (reduced-scale JPEG decoding where the crop allows, parallel over processes), one run, same photos.

Boxes are the generator's true boxes (`boxes.csv`) when the data folder has them, else whole photos. No cache is
used on either side. Prints both throughputs, the ratio, and how close the two outputs are.

    .venv/bin/python bench/crop.py --data /tmp/synth05 [--limit 800] [--height 128 --width 256] [--rgb]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("FLUKEID_DATA_DIR", "/tmp/synth05")))
    parser.add_argument("--limit", type=int, default=800, help="photos to crop (0: all)")
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--margin", type=float, default=0.1)
    parser.add_argument("--rgb", action="store_true", help="keep colour (default grayscale)")
    parser.add_argument("--workers", type=int, default=0, help="0: FLUKEID_WORKERS or all cores")
    args = parser.parse_args()

    from assets.crop.crops import CropSettings, build_tensors, crop_specs, naive_crop_and_resize
    from assets.detect.boxes import whole_image_boxes
    from assets.detect.truth import read_true_boxes
    from assets.ingest.scan import scan_data_folder
    from core.parallel import default_workers

    manifest, _ = scan_data_folder(args.data)
    if args.limit:
        manifest = manifest.head(args.limit).reset_index(drop=True)
    truth = read_true_boxes(args.data)
    boxes = whole_image_boxes(manifest, "bench")
    if truth is not None:
        boxes = boxes.drop(columns=["x0", "y0", "x1", "y1"]).merge(truth, on="image", how="left")
        for column, whole in (
            ("x0", 0.0),
            ("y0", 0.0),
            ("x1", manifest["width"]),
            ("y1", manifest["height"]),
        ):
            boxes[column] = boxes[column].fillna(whole if np.isscalar(whole) else whole.astype(float))
    settings = CropSettings(
        height=args.height, width=args.width, margin=args.margin, grayscale=not args.rgb, workers=args.workers
    )
    workers = args.workers or default_workers()
    print(
        f"{len(manifest)} photos from {args.data} (median {int(manifest['width'].median())}x"
        f"{int(manifest['height'].median())}), boxes: {'boxes.csv' if truth is not None else 'whole photos'}, "
        f"output {'1' if settings.grayscale else '3'}x{args.height}x{args.width}; {os.cpu_count()} CPUs, {workers} workers"
    )

    specs = crop_specs(manifest, boxes, args.data, settings)
    started = time.perf_counter()
    baseline = np.stack([naive_crop_and_resize(spec) for spec in specs])
    naive_seconds = time.perf_counter() - started

    started = time.perf_counter()
    tensors, _, _ = build_tensors(manifest, boxes, args.data, settings, cache=None, workers=workers)
    fast_seconds = time.perf_counter() - started

    difference = np.abs(baseline.astype(np.int16) - tensors.astype(np.int16))
    naive_rate, fast_rate = len(specs) / naive_seconds, len(specs) / fast_seconds
    print(f"naive (full decode, crop, resize, 1 process): {naive_seconds:7.2f} s  {naive_rate:8.1f} photos/s")
    print(
        f"fluke_tensors (draft decode, {workers} processes): {fast_seconds:7.2f} s  {fast_rate:8.1f} photos/s"
    )
    print(
        f"ratio: {fast_rate / naive_rate:.2f}x   mean |difference| {difference.mean():.2f} grey levels (of 255)"
    )


if __name__ == "__main__":
    main()
