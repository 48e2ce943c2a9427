"""The gallery: every known train photo (both folds, canonical labels) embedded and put in a faiss index.

Follow one photo: `training_manifest` names it and its individual, `fluke_tensors` holds its crop, the embedding
model turns the crop into an L2-normalised vector, and the vector becomes row `row` of the faiss index that
`submission` searches. `new_whale` photos are left out: they are nobody in particular, so nothing to find.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core.artifacts import FlukeTensors, GalleryIndex
from core.caches import ValueCache, cached_map
from core.constants import NEW_WHALE
from core.digests import stable_digest
from models.retrieval import INDEX_TYPES, build_index, index_to_bytes

# Rows embedded per call, so a large memory-mapped tensor store is never copied into memory whole.
EMBED_CHUNK = 2048

# What every identification step is handed: uint8 N x C x H x W crops -> float32 N x D L2-normalised embeddings.
Embedder = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class GallerySettings:
    flip: bool = False  # flip test-time augmentation; validation and submission read it from `info`
    index_type: str = "flat"  # one of INDEX_TYPES
    hnsw_m: int = 32
    hnsw_ef_search: int = 128
    ivf_lists: int = 0  # 0: 4 * sqrt(gallery size)
    ivf_probe: int = 16
    batch_size: int = 128

    def __post_init__(self) -> None:
        # Before the model is loaded or anything embedded.
        if self.index_type not in INDEX_TYPES:
            raise ValueError(f"index_type must be one of {', '.join(INDEX_TYPES)}; got {self.index_type!r}")

    def index_options(self) -> dict:
        """The options of this index type (they go into `info`, so only the ones that apply)."""
        if self.index_type == "hnsw":
            return {"hnsw_m": self.hnsw_m, "hnsw_ef_search": self.hnsw_ef_search}
        if self.index_type == "ivf":
            return {"ivf_lists": self.ivf_lists, "ivf_probe": self.ivf_probe}
        return {}


def tensor_rows(tensor_index: pd.DataFrame, images: pd.Series | list[str], split: str) -> np.ndarray:
    """Rows of the tensor store for `images` of one split, in order; -1 where a photo has no tensor."""
    of_split = tensor_index[tensor_index["split"] == split]
    lookup = pd.Series(of_split["row"].to_numpy(), index=of_split["image"].to_numpy())
    lookup = lookup[~lookup.index.duplicated()]
    return lookup.reindex(list(images)).fillna(-1).astype(np.int64).to_numpy()


def embed_rows(
    embed: Embedder, tensors: np.ndarray, rows: np.ndarray, chunk: int = EMBED_CHUNK
) -> np.ndarray:
    """Embeddings of `tensors[rows]`, in chunks (the store may be memory-mapped and large)."""
    rows = np.asarray(rows, dtype=np.int64)
    parts = []
    for start in range(0, len(rows), chunk):
        wanted = rows[start : start + chunk]
        # Read the memory-mapped store in ascending row order, then put the results back in the asked order.
        order = np.argsort(wanted, kind="stable")
        embedded = np.asarray(embed(np.ascontiguousarray(tensors[wanted[order]])), dtype=np.float32)
        part = np.empty_like(embedded)
        part[order] = embedded
        parts.append(part)
    if not parts:
        return np.zeros((0, 0), np.float32)
    return np.ascontiguousarray(np.concatenate(parts))


def embedding_cache(cache_dir: Callable[[str], Path]) -> ValueCache:
    """The per-crop embedding cache shared by gallery, validation and submission (`cache_dir`: the storage's
    `cache_dir`, stage name -> folder)."""
    return ValueCache(cache_dir("embeddings") / "embeddings.parquet", column="embedding")


def inlier_cache(cache_dir: Callable[[str], Path]) -> ValueCache:
    """Inlier counts of verified crop pairs (`models.verification`), shared by validation and submission."""
    return ValueCache(cache_dir("verification") / "inliers.parquet", column="inliers")


def match_cache(cache_dir: Callable[[str], Path]) -> ValueCache:
    """Inlier counts of box-keypoint pairs (`matching`), shared by validation and submission."""
    return ValueCache(cache_dir("verification") / "box_inliers.parquet", column="inliers")


class CachedEmbedder:
    """An `Embedder` with the trained model on `device`: tensors (uint8 N x C x H x W) -> float32 N x D.

    With a `cache`, each crop's embedding is kept under (model weights, flip, crop bytes), so rematerializing
    after new photos arrive embeds only the new crops. `computed` and `from_cache` count what happened.
    """

    def __init__(self, embedding_model: dict, torch_device, flip: bool, batch_size: int = 128, cache=None):
        from models.embedding import load_embedding_model

        self.model = load_embedding_model(embedding_model, torch_device)
        self.device, self.flip, self.batch_size, self.cache = torch_device, flip, batch_size, cache
        self.model_key = stable_digest(
            hashlib.sha256(embedding_model["weights"]).hexdigest(), flip, "embed-1"
        )
        self.computed = 0
        self.from_cache = 0

    def _embed(self, tensors: np.ndarray) -> np.ndarray:
        from models.embedding import embed_images

        return embed_images(self.model, tensors, self.device, batch_size=self.batch_size, flip=self.flip)

    def __call__(self, tensors: np.ndarray) -> np.ndarray:
        if self.cache is None or len(tensors) == 0:
            self.computed += len(tensors)
            return self._embed(tensors)
        keys = [stable_digest(self.model_key, hashlib.sha256(t.tobytes()).hexdigest()) for t in tensors]

        def compute(positions: list[int]) -> list[np.ndarray]:
            return list(self._embed(np.ascontiguousarray(tensors[positions])))

        values, computed = cached_map(keys, compute, self.cache)
        self.computed += computed
        self.from_cache += len(keys) - computed
        return np.asarray(np.stack(values), dtype=np.float32)


def gallery_flip(gallery_index: GalleryIndex) -> bool:
    """Whether the gallery was embedded with flip TTA: queries must be embedded the same way."""
    return bool(gallery_index.get("info", {}).get("flip", False))


def gallery_photos(
    training_manifest: pd.DataFrame, tensor_index: pd.DataFrame
) -> tuple[pd.DataFrame, list[str]]:
    """Known train photos that have a tensor, as (image, label, tensor_row) sorted by image; and the images left
    out for want of a tensor (reported, never dropped silently)."""
    known = training_manifest[training_manifest["label"] != NEW_WHALE][["image", "label"]]
    known = known.drop_duplicates("image").sort_values("image", kind="stable").reset_index(drop=True)
    known["tensor_row"] = tensor_rows(tensor_index, known["image"], "train")
    missing = known.loc[known["tensor_row"] < 0, "image"].tolist()
    return known[known["tensor_row"] >= 0].reset_index(drop=True), missing


def build_gallery(
    embed: Embedder, tensors: np.ndarray, photos: pd.DataFrame, index_type: str = "flat", **index_options
) -> tuple[GalleryIndex, dict[str, float]]:
    """The gallery value (without `info["flip"]`) and timings. Timings stay out of the value so that a rerun with
    the same output keeps the same data version."""
    started = time.perf_counter()
    embeddings = embed_rows(embed, tensors, photos["tensor_row"].to_numpy())
    if len(photos) == 0:
        # Nobody known (every train photo new_whale): an empty gallery, of the model's dimension (one crop
        # embedded to learn it), against which every query is new_whale.
        if len(tensors) == 0:
            raise ValueError("no crops at all: the gallery's dimension cannot be known")
        embeddings = np.zeros((0, embed_rows(embed, tensors, np.zeros(1, np.int64)).shape[1]), np.float32)
    embed_seconds = time.perf_counter() - started
    started = time.perf_counter()
    index = build_index(embeddings, index_type=index_type, **index_options)
    build_seconds = time.perf_counter() - started
    gallery = pd.DataFrame(
        {
            "row": np.arange(len(photos), dtype=np.int64),
            "image": photos["image"].to_numpy(),
            "label": photos["label"].to_numpy(),
        }
    )
    info = {
        "index_type": index_type,
        "size": int(len(gallery)),
        "dim": int(embeddings.shape[1]),
        "individuals": int(gallery["label"].nunique()),
        **index_options,
    }
    value = GalleryIndex(index=index_to_bytes(index), gallery=gallery, embeddings=embeddings, info=info)
    return value, {"embed_seconds": embed_seconds, "build_seconds": build_seconds}


@dataclass
class GalleryBuild:
    """One `gallery_index` materialization: the value, the photos left out, and how long each step took."""

    value: GalleryIndex
    missing: list[str]
    seconds: dict[str, float]


def index_gallery(
    embed: Embedder,
    fluke_tensors: FlukeTensors,
    training_manifest: pd.DataFrame,
    settings: GallerySettings,
) -> GalleryBuild:
    """The `gallery_index` value: the known train photos embedded with `embed` and indexed as `settings` say."""
    photos, missing = gallery_photos(training_manifest, fluke_tensors["index"])
    value, seconds = build_gallery(
        embed, fluke_tensors["tensors"], photos, index_type=settings.index_type, **settings.index_options()
    )
    value["info"]["flip"] = settings.flip
    return GalleryBuild(value, missing, seconds)


def gallery_statistics(built: GalleryBuild, embedded: int, from_cache: int, device: str) -> dict:
    """The figures `gallery_index` reports: size, dimension, photos per individual, and what embedding cost
    (`embedded` crops, `from_cache` taken from the embedding cache)."""
    info, seconds = built.value["info"], built.seconds
    per_id = built.value["gallery"]["label"].value_counts()
    return {
        "gallery_size": info["size"],
        "dimension": info["dim"],
        "individuals": info["individuals"],
        "index_type": info["index_type"],
        "flip_tta": info["flip"],
        "build_seconds": round(seconds["build_seconds"], 3),
        "embed_seconds": round(seconds["embed_seconds"], 2),
        "embedded": embedded,
        "embeddings_from_cache": from_cache,
        "images_per_second": round(info["size"] / max(seconds["embed_seconds"], 1e-9), 1),
        "photos_per_individual_median": float(per_id.median()) if len(per_id) else 0.0,
        "missing_tensors": len(built.missing),
        "index_bytes": len(built.value["index"]),
        "device": device,
    }
