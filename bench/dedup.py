"""Benchmark: duplicate detection, naive baseline vs this project's `image_hashes` + `duplicate_groups`.

Baseline (what a first attempt does): decode every photo at full size, `imagehash.phash` it, in one process,
then compare every pair in a Python double loop (`hash_a - hash_b <= max_distance`) and join pairs into groups.
This stage: reduced-scale JPEG decode (libjpeg DCT scaling), processes, a faiss binary range search, and a pixel
check of the candidates. Both run on the same photos in one run; the script prints both times, the ratio, and
how far the two methods' groups agree (and each one's precision/recall when the folders hold duplicates.csv).

    .venv/bin/python bench/dedup.py /tmp/synth05 [more data folders ...] [--workers N] [--max-distance 12]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import imagehash
import numpy as np
import pandas as pd
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from assets.dedup.groups import component_labels, duplicate_pairs, find_duplicates  # noqa: E402
from assets.dedup.pairs import DedupSettings  # noqa: E402
from assets.dedup.phash import compute_image_hashes  # noqa: E402
from assets.dedup.truth import precision_recall  # noqa: E402
from assets.ingest.scan import scan_data_folder  # noqa: E402
from core.parallel import default_workers  # noqa: E402


def load_folders(folders: list[Path]) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Manifests of several data folders as one table (paths absolute, names prefixed to stay unique)."""
    manifests, truths = [], []
    for number, folder in enumerate(folders):
        images, _ = scan_data_folder(folder)
        prefix = f"{number}_" if len(folders) > 1 else ""
        images = images.assign(image=prefix + images["image"], path=[str(folder / p) for p in images["path"]])
        manifests.append(images)
        truth_path = folder / "duplicates.csv"
        if truth_path.exists():
            truth = pd.read_csv(truth_path, dtype={"Image": str})
            truths.append(
                truth.assign(Image=prefix + truth["Image"], group=f"{number}_" + truth["group"].astype(str))
            )
    images = pd.concat(manifests, ignore_index=True)
    truth = pd.concat(truths, ignore_index=True) if len(truths) == len(folders) else None
    return images, truth


STRICT_DISTANCE = 4


def naive_baseline(images: pd.DataFrame, max_distance: int) -> tuple[pd.DataFrame, float, pd.DataFrame]:
    """Full-size decode, imagehash.phash, one process, all pairs compared in Python."""
    started = time.perf_counter()
    hashes = []
    for path in images["path"]:
        with Image.open(path) as image:
            hashes.append(imagehash.phash(image))
    pairs = []
    for a in range(len(hashes)):
        for b in range(a + 1, len(hashes)):
            distance = hashes[a] - hashes[b]
            if distance <= max_distance:
                pairs.append((a, b, distance))
    edges = pd.DataFrame(pairs, columns=["a", "b", "distance"], dtype=np.int64)
    groups = pd.DataFrame({"image": images["image"], "group": component_labels(len(images), edges)})
    seconds = time.perf_counter() - started
    # Not timed: the same pairs grouped at a strict distance, the usual way a hash-only dedup avoids chaining.
    strict = edges[edges["distance"] <= STRICT_DISTANCE]
    strict_groups = pd.DataFrame({"image": images["image"], "group": component_labels(len(images), strict)})
    return groups, seconds, strict_groups


def this_stage(
    images: pd.DataFrame, settings: DedupSettings, workers: int
) -> tuple[pd.DataFrame, float, dict]:
    started = time.perf_counter()
    hashes, hash_stats = compute_image_hashes(images, Path("/"), cache=None, workers=workers)
    value, details = find_duplicates(images, hashes, Path("/"), settings, workers=workers)
    seconds = time.perf_counter() - started
    return (
        value["groups"],
        seconds,
        {
            **hash_stats,
            **{k: v for k, v in details.items() if k != "pairs"},
            "candidates": len(details["pairs"]),
            "verified": int(details["pairs"]["verified"].sum()),
        },
    )


def agreement(first: pd.DataFrame, second: pd.DataFrame) -> dict[str, float | int]:
    """Pairwise agreement of two groupings: shared duplicate pairs over their union (Jaccard)."""
    a, b = duplicate_pairs(first), duplicate_pairs(second)
    union = a | b
    return {
        "pairs_first": len(a),
        "pairs_second": len(b),
        "pairs_shared": len(a & b),
        "jaccard": round(len(a & b) / len(union), 4) if union else 1.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--workers", type=int, default=0, help="processes for this stage (0: every core)")
    parser.add_argument("--max-distance", type=int, default=DedupSettings().max_distance)
    args = parser.parse_args()
    workers = args.workers or default_workers()
    images, truth = load_folders(args.folders)
    settings = DedupSettings(max_distance=args.max_distance)
    print(
        f"{len(images)} photos from {len(args.folders)} folder(s); max pHash distance {args.max_distance}; "
        f"this stage on {workers} processes"
    )

    # This stage first: the baseline then starts with the page cache as warm as this stage found it.
    stage_groups, stage_seconds, stats = this_stage(images, settings, workers)
    print(
        f"this stage: {stage_seconds:8.2f} s  ({len(images) / stage_seconds:7.1f} photos/s)  hashing "
        f"{stats['seconds']:.2f} s, faiss search {stats['search_seconds']:.3f} s, pixel check "
        f"{stats['verify_seconds']:.2f} s of {stats['candidates']} candidates ({stats['verified']} verified)"
    )
    naive_groups, naive_seconds, strict_groups = naive_baseline(images, args.max_distance)
    print(
        f"baseline  : {naive_seconds:8.2f} s  ({len(images) / naive_seconds:7.1f} photos/s)  full decode + "
        f"imagehash.phash, 1 process, Python double loop over {len(images) * (len(images) - 1) // 2} pairs"
    )
    print(f"speed-up  : {naive_seconds / stage_seconds:.1f}x")
    print(f"agreement with baseline groups (same distance): {agreement(stage_groups, naive_groups)}")
    print(
        f"agreement with baseline groups (distance <= {STRICT_DISTANCE}): {agreement(stage_groups, strict_groups)}"
    )
    if truth is not None:
        print(f"truth, this stage: {precision_recall(stage_groups, truth)}")
        print(f"truth, baseline  : {precision_recall(naive_groups, truth)}")
        print(f"truth, baseline <= {STRICT_DISTANCE}: {precision_recall(strict_groups, truth)}")


if __name__ == "__main__":
    main()
