"""Incremental per-image work: a full materialization of the per-image stages (raw_images, image_hashes,
fluke_boxes, fluke_tensors) from empty caches, against an update after adding 1% more photos, in one run.

The baseline is the same stages with nothing cached (what a pipeline without per-image caches pays on every
change). The detector is trained once beforehand with the tiny profile and is not timed: detection quality does
not matter here, only how the cost of each stage grows with the photos it has not seen.

    .venv/bin/python bench/incremental.py [--data DIR | --scale 0.02 --seed 5] [--add-share 0.01]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PER_IMAGE_STAGES = ["raw_images", "image_hashes", "fluke_boxes", "fluke_tensors"]


def add_photos(data: Path, count: int) -> list[str]:
    """New test photos: mirrored copies of existing ones (new content, same kind of photo)."""
    from PIL import Image, ImageOps

    added = []
    for path in sorted((data / "test").glob("*.jpg"))[:count]:
        with Image.open(path) as image:
            target = data / "test" / f"added_{path.name}"
            ImageOps.mirror(image).save(target, quality=90)
            added.append(target.name)
    return added


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=None, help="a Kaggle-layout folder (copied, never modified)"
    )
    parser.add_argument(
        "--scale", type=float, default=0.02, help="generate a set of this scale when --data is not given"
    )
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--add-share", type=float, default=0.01, help="photos added, as a share of the set")
    args = parser.parse_args()

    os.environ["FLUKEID_PROFILE"] = (
        "tiny"  # before definitions load: a quick detector, versions of that profile
    )
    os.environ.setdefault("YOLO_OFFLINE", "1")
    from dagster import AssetKey, instance_for_test

    from core.profiles import run_config
    from pipelines.definitions import build_definitions
    from pipelines.update import materialize_keys

    work = Path(tempfile.mkdtemp(prefix="flukeid-incremental-"))
    try:
        data = work / "data"
        if args.data:
            shutil.copytree(args.data, data)
        else:
            from synth import generate

            generate(data, scale=args.scale, seed=args.seed, progress=False)
        storage = work / "storage"
        defs = build_definitions(data_dir=str(data), storage_dir=str(storage), device="cpu")
        config = run_config("tiny")
        keys = [AssetKey(name) for name in PER_IMAGE_STAGES]
        photos = len(list((data / "train").glob("*.jpg"))) + len(list((data / "test").glob("*.jpg")))
        with instance_for_test() as instance:
            materialize_keys(defs, instance, [AssetKey("raw_images"), AssetKey("fluke_detector")], config)
            shutil.rmtree(storage / "cache")  # the baseline starts with nothing cached

            started = time.perf_counter()
            materialize_keys(defs, instance, keys, config)
            full = time.perf_counter() - started

            added = add_photos(data, max(1, round(photos * args.add_share)))
            started = time.perf_counter()
            materialize_keys(defs, instance, keys, config)
            update = time.perf_counter() - started

            counts = {}
            for name, field in [
                ("raw_images", "inspected"),
                ("image_hashes", "hashed"),
                ("fluke_boxes", "computed"),
                ("fluke_tensors", "computed"),
            ]:
                event = instance.get_latest_materialization_event(AssetKey(name))
                counts[name] = event.asset_materialization.metadata[field].value
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"photos: {photos}, added: {len(added)} ({args.add_share:.0%})")
    print(f"photos processed in the update, per stage: {counts}")
    print(f"baseline  full materialization, empty caches : {full:8.2f} s")
    print(f"flukeid   update after adding {len(added):>3} photos   : {update:8.2f} s")
    print(f"ratio (full / update): {full / update:.1f}x")


if __name__ == "__main__":
    main()
