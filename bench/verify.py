"""Geometric verification: OpenCV's brute-force matcher (the usual way, the baseline) against faiss, one run.

Pairs of fluke crops (query, gallery photo) as `models.verification` sees them: SIFT keypoints are extracted
once per crop (both ways share that), then each pair is matched (two nearest descriptors each, Lowe's ratio test)
and RANSAC counts the inliers. The script checks that both ways give the same inlier counts, then prints the
matching time of each and the ratio, and what one query costs with 20 candidates x 4 photos.

    .venv/bin/python bench/verify.py --tensors storage/fluke_tensors/tensors.npy [--pairs 4000]

Without `--tensors` it uses generated blotch patterns and warped copies of them.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def generated_crops(count: int, seed: int) -> np.ndarray:
    """Light flukes with dark blotches on darker water, half of them warped copies of the others (1 x 128 x 256)."""
    import cv2

    rng = np.random.default_rng(seed)
    crops = []
    for i in range(count):
        if i % 2 and crops:
            source = np.float32([[0, 0], [256, 0], [256, 128], [0, 128]])
            matrix = cv2.getPerspectiveTransform(
                source, source + rng.uniform(-8, 8, (4, 2)).astype(np.float32)
            )
            crops.append(cv2.warpPerspective(crops[-1], matrix, (256, 128), borderMode=cv2.BORDER_REFLECT))
            continue
        image = np.full((128, 256), 60, np.uint8)
        cv2.fillPoly(image, [np.array([[10, 20], [246, 20], [140, 110], [116, 110]], np.int32)], 200)
        for _ in range(14):
            centre = (int(rng.integers(30, 226)), int(rng.integers(25, 80)))
            axes = (int(rng.integers(3, 12)), int(rng.integers(2, 8)))
            cv2.ellipse(image, centre, axes, float(rng.uniform(0, 180)), 0, 360, int(rng.integers(0, 60)), -1)
        crops.append(image)
    return np.stack(crops)[:, None]


def opencv_inliers(query, gallery, ratio: float = 0.8, reprojection_px: float = 4.0) -> int:
    """The same count as `models.verification.count_inliers`, with cv2.BFMatcher.knnMatch for the matching."""
    import cv2

    if len(query) < 4 or len(gallery) < 2:
        return 0
    matches = cv2.BFMatcher(cv2.NORM_L2).knnMatch(
        query.descriptors.astype(np.float32), gallery.descriptors.astype(np.float32), k=2
    )
    good = [m[0] for m in matches if len(m) == 2 and m[0].distance < ratio * m[1].distance]
    if len(good) < 4:
        return 0
    source = query.points[[m.queryIdx for m in good]]
    target = gallery.points[[m.trainIdx for m in good]]
    _, mask = cv2.findHomography(source, target, cv2.RANSAC, reprojection_px)
    return 0 if mask is None else int(mask.sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tensors", type=Path, help="a fluke_tensors store (uint8 N x C x H x W .npy)")
    parser.add_argument("--crops", type=int, default=400, help="crops to take from the store")
    parser.add_argument("--pairs", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import cv2
    import faiss

    from models.verification import count_inliers, extract_local_features

    cv2.setNumThreads(1)  # one thread each way: the comparison is of the matching, not of the threading
    faiss.omp_set_num_threads(1)
    if args.tensors:
        store = np.load(args.tensors, mmap_mode="r")
        rows = np.sort(
            np.random.default_rng(args.seed).choice(len(store), min(args.crops, len(store)), False)
        )
        crops = np.asarray(store[rows])
        source = f"{len(crops)} crops from {args.tensors}"
    else:
        crops = generated_crops(args.crops, args.seed)
        source = f"{len(crops)} generated crops"
    started = time.perf_counter()
    features = extract_local_features(crops, range(len(crops)), max_features=300, workers=1)
    extract_seconds = time.perf_counter() - started
    rng = np.random.default_rng(args.seed)
    pairs = rng.integers(0, len(crops), (args.pairs, 2))
    pairs[: args.pairs // 4, 1] = np.minimum(
        pairs[: args.pairs // 4, 0] + 1, len(crops) - 1
    )  # some true pairs
    print(
        f"{source}, {crops.shape[2]} x {crops.shape[3]}; {args.pairs} pairs; "
        f"SIFT {extract_seconds / len(crops) * 1000:.1f} ms per crop (shared by both ways)"
    )

    # RANSAC is random: seed OpenCV's generator identically before each way so the counts can be compared.
    cv2.setRNGSeed(args.seed)
    started = time.perf_counter()
    baseline = [opencv_inliers(features[a], features[b]) for a, b in pairs]
    baseline_seconds = time.perf_counter() - started
    cv2.setRNGSeed(args.seed)
    started = time.perf_counter()
    ours = [count_inliers(features[a], features[b]) for a, b in pairs]
    ours_seconds = time.perf_counter() - started

    agree = float(np.mean(np.array(baseline) == np.array(ours)))
    print(f"same inlier count for {agree:.1%} of pairs (RANSAC draws differ where the match lists do)")
    print(
        f"opencv BFMatcher + RANSAC  {baseline_seconds:7.2f} s  ({baseline_seconds / args.pairs * 1000:.2f} ms/pair)"
    )
    print(
        f"faiss knn + RANSAC         {ours_seconds:7.2f} s  ({ours_seconds / args.pairs * 1000:.2f} ms/pair)"
    )
    print(f"ratio (baseline / faiss): {baseline_seconds / ours_seconds:.2f}x")
    per_query = 80 * ours_seconds / args.pairs + 81 * extract_seconds / len(crops)
    print(f"one query, 20 candidates x 4 photos, features computed: ~{per_query:.2f} s on one core")


if __name__ == "__main__":
    main()
