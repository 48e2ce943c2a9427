"""Identification cost per query: the chain's calibrated path against the exhaustive classical matcher, one run.

Both ways start from the same cached box keypoints (`fluke_keypoints`) of a materialized storage folder, and both
identify the same test photos against every known train photo:
- baseline, the exhaustive matcher: RANSAC (ratio test, homography inliers) of the query against every gallery
  photo; individuals ranked by their best inliers, new_whale by an inlier threshold tuned on the same queries
  (which flatters it);
- flukeid: keypoint votes over one faiss index of every gallery descriptor, fused with the embedding's candidates
  (and the trailing edge's, when the storage has `fluke_outlines`),
  RANSAC on the first `candidates` individuals only, P(same whale) from validation's calibrator.
It prints each one's seconds per query, the ratio, and, with the generator's `solution.csv`, both MAP@5s.
Cost grows with the gallery: the exhaustive matcher linearly (one RANSAC per gallery photo), the chain with one
approximate nearest-neighbour search per query descriptor (sub-linear with IVF) plus a fixed number of RANSACs.

    .venv/bin/python bench/identify.py --storage storage --data data/demo [--queries 60]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    from assets.identify.calibrated import apply_calibrated, exhaustive_baseline, photo_features
    from assets.identify.matching import MatchGallery, MatchSettings
    from core.constants import NEW_WHALE
    from core.metrics import map_at_5
    from models.calibration import MatchCalibrator
    from models.outline import edges_of
    from models.retrieval import most_frequent_labels
    from pipelines.io_managers import read_parts

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--storage", type=Path, default=Path("storage"))
    parser.add_argument("--data", type=Path, default=Path("data/demo"))
    parser.add_argument("--queries", type=int, default=60, help="test photos both ways identify")
    args = parser.parse_args()

    keypoints = read_parts(args.storage / "fluke_keypoints")
    gallery_index = read_parts(args.storage / "gallery_index")
    decision = read_parts(args.storage / "validation_report")["summary"]["decision"]
    if not decision:
        sys.exit("validation_report made no calibrated decision: materialize it with fluke_keypoints first")
    gallery = gallery_index["gallery"]
    labels = gallery["label"].tolist()
    embeddings = np.asarray(gallery_index["embeddings"], dtype=np.float32)
    # The trailing edge takes part as in the chain when the storage has it (a storage from before it: two generators).
    outlines = (
        read_parts(args.storage / "fluke_outlines") if (args.storage / "fluke_outlines").is_dir() else None
    )
    gallery_images = gallery["image"].tolist()
    matched = MatchGallery(
        photo_features(keypoints, gallery_images, "train"),
        labels,
        embeddings,
        edges_of(outlines, gallery_images, "train"),
    )
    solution = pd.read_csv(args.data / "solution.csv") if (args.data / "solution.csv").exists() else None
    index = keypoints["index"]
    tests = sorted(index.loc[index["split"] == "test", "image"])
    chosen = [
        tests[i] for i in np.unique(np.linspace(0, len(tests) - 1, min(args.queries, len(tests))).astype(int))
    ]
    truths = (
        solution.set_index("Image").loc[chosen, "Id"].tolist()
        if solution is not None
        else [NEW_WHALE] * len(chosen)
    )
    features = photo_features(keypoints, chosen, "test")
    # Embedding the queries is part of neither way's matching cost (the submission has them already).
    query_embeddings = query_embeddings_from_storage(args.storage, chosen, embeddings.shape[1])
    settings = MatchSettings.from_dict(decision["matching"])
    fill = most_frequent_labels(labels)
    started = time.perf_counter()
    chain = apply_calibrated(
        features,
        query_embeddings,
        matched,
        MatchCalibrator.from_dict(decision["calibrator"]),
        fill,
        settings,
        query_edges=edges_of(outlines, chosen, "test"),
    )
    chain_seconds = (time.perf_counter() - started) / len(chosen)
    exhaustive = exhaustive_baseline(features, matched, truths, chain.rows, fill, settings, len(chosen))
    print(
        f"{len(chosen)} test photos against {len(labels)} known photos ({matched_descriptors(matched)} descriptors)"
    )
    print(f"exhaustive RANSAC matcher (baseline): {exhaustive.seconds_per_query:.3f} s per query")
    print(f"flukeid calibrated path:              {chain_seconds:.3f} s per query")
    print(f"ratio: {exhaustive.seconds_per_query / chain_seconds:.1f}x")
    if solution is not None:
        print(
            f"MAP@5 on these photos: exhaustive {exhaustive.map5:.4f}, flukeid {map_at_5(chain.rows, truths):.4f}"
        )


def matched_descriptors(matched) -> int:
    return int(sum(len(f) for f in matched.features))


def query_embeddings_from_storage(storage: Path, images: list[str], dim: int) -> np.ndarray:
    """The test photos' embeddings from the trained model and their crops (as the submission makes them)."""
    import torch

    from assets.identify.gallery import CachedEmbedder, tensor_rows
    from pipelines.io_managers import read_parts

    model = read_parts(storage / "embedding_model")
    tensors = read_parts(storage / "fluke_tensors")
    flip = bool(read_parts(storage / "gallery_index").get("info", {}).get("flip", False))
    embed = CachedEmbedder(model, torch.device("cpu"), flip, 128)
    rows = tensor_rows(tensors["index"], pd.Series(images), "test")
    return np.asarray(embed(np.asarray(tensors["tensors"][rows])), dtype=np.float32).reshape(len(images), dim)


if __name__ == "__main__":
    main()
