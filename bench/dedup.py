"""Benchmark: duplicate detection, naive baseline vs this project's `image_hashes` + `duplicate_groups`.

Baseline (what a first attempt does): decode every photo at full size, `imagehash.phash` it, in one process,
then compare every pair in a Python double loop (`hash_a - hash_b <= max_distance`) and join pairs into groups.
This stage: reduced-scale JPEG decode (libjpeg DCT scaling), processes, a faiss binary search (each photo's
`max_neighbours` nearest pHashes within the radius), and a pixel check of the candidates. Both run on the same
photos in one run; the script prints both times and the ratios:

- hashing + pair search (this stage's reduced-scale pHash and faiss search) against the baseline's hashing
  and pairwise loop, and against its pairwise loop alone (the issue-14 bar: >= 100x at full size);
- the pair search alone (faiss against the Python loop), and the whole stage (its pixel check included);
- the floor: decoding a sample at libjpeg's smallest scale with nothing else done, and the best ratio that any
  hashing which decodes every photo could reach on the same processes (what bounds the first ratio);
- how far the two methods' groups agree (and each one's precision/recall when the folders hold duplicates.csv).

On a set larger than `--naive-full-below` photos (default 3,000; the full-size set has 33,320, whose 555
million pairs the loop would take most of an hour on) the baseline is measured on a sample and extrapolated:
full-decode hashing of `--naive-hash-sample` random photos (its time per photo times N), and the Python loop over
every pair of `--naive-pair-sample` photos' hashes (its time per pair times N (N - 1) / 2; a comparison costs
the same whichever two hashes it compares). Groups are then not compared (the baseline has none).

    .venv/bin/python bench/dedup.py /tmp/synth05 [more data folders ...] [--workers N] [--max-distance 12]
        [--naive-full-below 3000] [--naive-hash-sample 300] [--naive-pair-sample 2000] [--floor-sample 600]
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


def naive_baseline(
    images: pd.DataFrame, max_distance: int
) -> tuple[pd.DataFrame, float, pd.DataFrame, dict[str, float]]:
    """Full-size decode, imagehash.phash, one process, all pairs compared in Python: (groups, seconds, the groups
    at the strict distance, the times of hashing and of the loop)."""
    started = time.perf_counter()
    hashes = []
    for path in images["path"]:
        with Image.open(path) as image:
            hashes.append(imagehash.phash(image))
    hashed = time.perf_counter()
    pairs = []
    for a in range(len(hashes)):
        for b in range(a + 1, len(hashes)):
            distance = hashes[a] - hashes[b]
            if distance <= max_distance:
                pairs.append((a, b, distance))
    looped = time.perf_counter()
    edges = pd.DataFrame(pairs, columns=["a", "b", "distance"], dtype=np.int64)
    groups = pd.DataFrame({"image": images["image"], "group": component_labels(len(images), edges)})
    seconds = time.perf_counter() - started
    # Not timed: the same pairs grouped at a strict distance, the usual way a hash-only dedup avoids chaining.
    strict = edges[edges["distance"] <= STRICT_DISTANCE]
    strict_groups = pd.DataFrame({"image": images["image"], "group": component_labels(len(images), strict)})
    times = {
        "hash_seconds": hashed - started,
        "loop_seconds": looped - hashed,
        "pairs": len(hashes) * (len(hashes) - 1) // 2,
    }
    return groups, seconds, strict_groups, times


def naive_sampled(
    images: pd.DataFrame,
    max_distance: int,
    hash_sample: int,
    pair_sample: int,
    phashes: list[str],
    seed: int = 0,
) -> dict[str, float]:
    """The baseline's time on all `len(images)` photos, extrapolated from samples (see the module doc).

    Hashing: `imagehash.phash` of `hash_sample` random photos decoded at full size. Pairs: the Python double loop
    over every pair of `pair_sample` random photos' hashes (`phashes`: this stage's hex pHashes, as imagehash
    objects; the loop costs the same per pair whatever the hashes), pairs within `max_distance` kept as the
    baseline keeps them."""
    count = len(images)
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    for path in images["path"].to_numpy()[rng.choice(count, size=min(hash_sample, count), replace=False)]:
        with Image.open(path) as image:
            imagehash.phash(image)
    hash_seconds = time.perf_counter() - started
    chosen = rng.choice(count, size=min(pair_sample, count), replace=False)
    hashes = [imagehash.hex_to_hash(phashes[i]) for i in chosen]
    started = time.perf_counter()
    pairs = []
    for a in range(len(hashes)):
        for b in range(a + 1, len(hashes)):
            distance = hashes[a] - hashes[b]
            if distance <= max_distance:
                pairs.append((a, b, distance))
    loop_seconds = time.perf_counter() - started
    sampled_pairs = len(hashes) * (len(hashes) - 1) // 2
    all_pairs = count * (count - 1) // 2
    return {
        "hash_photos": min(hash_sample, count),
        "hash_seconds_sample": hash_seconds,
        "hash_seconds": hash_seconds / min(hash_sample, count) * count,
        "pairs_sample": sampled_pairs,
        "loop_seconds_sample": loop_seconds,
        "loop_seconds": loop_seconds / max(sampled_pairs, 1) * all_pairs,
        "pairs": all_pairs,
        "hits_sample": len(pairs),
    }


def decode_floor(images: pd.DataFrame, sample: int, seed: int = 1) -> dict[str, float]:
    """The least any hashing that decodes every photo could cost: libjpeg's smallest scale (1/8, luma only, the
    DCT's DC terms; the entropy decoding of every coefficient cannot be skipped), no resize and no hash, one
    process, on `sample` random photos (read once before timing, so the page cache does not count)."""
    count = len(images)
    rng = np.random.default_rng(seed)
    paths = images["path"].to_numpy()[rng.choice(count, size=min(sample, count), replace=False)]
    for path in paths:
        Path(path).read_bytes()
    full_pixels = decoded_pixels = 0
    started = time.perf_counter()
    for path in paths:
        with Image.open(path) as image:
            full_pixels += image.width * image.height
            image.draft("L", (1, 1))
            image.load()
            decoded_pixels += image.width * image.height
    seconds = time.perf_counter() - started
    return {
        "photos": len(paths),
        "ms_per_photo": seconds / max(len(paths), 1) * 1e3,
        "pixel_share": decoded_pixels / max(full_pixels, 1),
    }


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
            "phashes": hashes["phash"].tolist(),
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--workers", type=int, default=0, help="processes for this stage (0: every core)")
    parser.add_argument("--max-distance", type=int, default=DedupSettings().max_distance)
    parser.add_argument(
        "--naive-full-below", type=int, default=3000, help="run the whole baseline below this many photos"
    )
    parser.add_argument(
        "--naive-hash-sample", type=int, default=300, help="photos the sampled baseline hashes"
    )
    parser.add_argument(
        "--floor-sample", type=int, default=600, help="photos the decode-only floor is timed on"
    )
    parser.add_argument(
        "--naive-pair-sample", type=int, default=2000, help="photos whose pairs it loops over"
    )
    args = parser.parse_args(argv)
    workers = args.workers or default_workers()
    images, truth = load_folders(args.folders)
    settings = DedupSettings(max_distance=args.max_distance)
    count = len(images)
    print(
        f"{count} photos from {len(args.folders)} folder(s); max pHash distance {args.max_distance}; "
        f"this stage on {workers} processes"
    )

    # This stage first: the baseline then starts with the page cache as warm as this stage found it.
    stage_groups, stage_seconds, stats = this_stage(images, settings, workers)
    hash_and_search = stats["seconds"] + stats["search_seconds"]
    print(
        f"this stage: {stage_seconds:8.2f} s  ({count / stage_seconds:7.1f} photos/s)  hashing "
        f"{stats['seconds']:.2f} s, faiss search {stats['search_seconds']:.3f} s, pixel check "
        f"{stats['verify_seconds']:.2f} s of {stats['candidates']} candidates ({stats['verified']} verified), "
        f"grouping {stats['group_seconds']:.2f} s"
    )
    if count < args.naive_full_below:
        naive_groups, naive_seconds, strict_groups, naive = naive_baseline(images, args.max_distance)
        how = "measured on every photo"
    else:
        naive_groups = strict_groups = None
        naive = naive_sampled(
            images, args.max_distance, args.naive_hash_sample, args.naive_pair_sample, stats["phashes"]
        )
        naive_seconds = naive["hash_seconds"] + naive["loop_seconds"]
        how = (
            f"extrapolated: full-decode hashing of {naive['hash_photos']} photos "
            f"({naive['hash_seconds_sample']:.2f} s) x {count / naive['hash_photos']:.1f}, the loop over "
            f"{naive['pairs_sample']:,} pairs ({naive['loop_seconds_sample']:.2f} s, {naive['hits_sample']} within "
            f"the radius) x {naive['pairs'] / naive['pairs_sample']:.1f}"
        )
    print(
        f"baseline  : {naive_seconds:8.2f} s  ({count / naive_seconds:7.1f} photos/s)  full decode + "
        f"imagehash.phash {naive['hash_seconds']:.2f} s, 1 process, Python double loop over "
        f"{naive['pairs']:,} pairs {naive['loop_seconds']:.2f} s; {how}"
    )
    print(
        f"speed-up, hashing + pair search (this stage {hash_and_search:.2f} s): "
        f"{(naive['hash_seconds'] + naive['loop_seconds']) / hash_and_search:.1f}x"
    )
    print(
        f"speed-up, hashing + pair search against the baseline's pairwise loop alone (its hashing left out): "
        f"{naive['loop_seconds'] / hash_and_search:.1f}x"
    )
    print(
        f"speed-up, pair search alone (faiss {stats['search_seconds']:.3f} s vs the loop): "
        f"{naive['loop_seconds'] / max(stats['search_seconds'], 1e-6):.0f}x"
    )
    print(f"speed-up, whole stage (pixel check and grouping included): {naive_seconds / stage_seconds:.1f}x")
    floor = decode_floor(images, args.floor_sample)
    floor_seconds = floor["ms_per_photo"] / 1e3 * count / workers + stats["search_seconds"]
    print(
        f"floor: decoding alone at 1/8 scale {floor['ms_per_photo']:.3f} ms per photo per process "
        f"({floor['photos']} photos), {count} photos on {workers} processes + the faiss search = "
        f"{floor_seconds:.2f} s, so no hashing that decodes every photo beats "
        f"{(naive['hash_seconds'] + naive['loop_seconds']) / floor_seconds:.1f}x "
        f"(against the loop alone {naive['loop_seconds'] / floor_seconds:.1f}x) on {workers} processes"
    )
    if naive_groups is None:
        print("groups not compared: the baseline was sampled")
        if truth is not None:
            print(f"truth, this stage: {precision_recall(stage_groups, truth)}")
        return
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
