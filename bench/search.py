"""Nearest-neighbour search: scikit-learn's brute-force NearestNeighbors (the baseline) against faiss, one run.

25,000 x 512 random L2-normalised gallery embeddings, 8,000 queries, k = 50 (the shape of the real problem:
~25k train photos, ~8k test photos). Both find the exact same neighbours (cosine = inner product on unit
vectors); the script checks that, then prints both times and the ratio.

    .venv/bin/python bench/search.py [--gallery 25000] [--queries 8000] [--dim 512] [--k 50]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def unit_rows(rng: np.random.Generator, count: int, dim: int) -> np.ndarray:
    vectors = rng.standard_normal((count, dim), dtype=np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gallery", type=int, default=25_000)
    parser.add_argument("--queries", type=int, default=8_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import faiss
    from sklearn.neighbors import NearestNeighbors

    from models.retrieval import exact_index, search

    rng = np.random.default_rng(args.seed)
    gallery = unit_rows(rng, args.gallery, args.dim)
    queries = unit_rows(rng, args.queries, args.dim)
    print(
        f"gallery {args.gallery} x {args.dim}, {args.queries} queries, k={args.k}; "
        f"{os.cpu_count()} CPUs, faiss {faiss.__version__} with {faiss.omp_get_max_threads()} threads"
    )

    started = time.perf_counter()
    baseline = NearestNeighbors(n_neighbors=args.k, algorithm="brute", metric="cosine").fit(gallery)
    _, sklearn_ids = baseline.kneighbors(queries)
    sklearn_seconds = time.perf_counter() - started

    started = time.perf_counter()
    _, faiss_ids = search(exact_index(gallery), queries, args.k)
    faiss_seconds = time.perf_counter() - started

    # Same neighbour sets (order may differ only between exact ties of float rounding).
    overlap = np.mean([len(set(a) & set(b)) / args.k for a, b in zip(sklearn_ids, faiss_ids)])
    print(f"scikit-learn NearestNeighbors(brute, cosine): {sklearn_seconds:8.2f} s")
    print(f"faiss IndexFlatIP:                            {faiss_seconds:8.2f} s")
    print(f"neighbour agreement: {overlap:.4f}")
    print(f"ratio (scikit-learn / faiss): {sklearn_seconds / faiss_seconds:.1f}x")


if __name__ == "__main__":
    main()
