"""Stage: the gallery. Every known train photo (both folds, canonical labels) embedded and put in a faiss index.

Follow one photo: `training_manifest` names it and its individual, `fluke_tensors` holds its crop, the embedding
model turns the crop into an L2-normalised vector, and the vector becomes row `row` of the faiss index that
`submission` searches. `new_whale` photos are left out: they are nobody in particular, so nothing to find.
"""

import hashlib
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
from dagster import AssetExecutionContext, Config, DataVersion, MetadataValue, Output, asset
from pydantic import Field

from core.caches import TableCache, ValueCache
from core.constants import NEW_WHALE
from core.digests import content_version, stable_digest
from core.profiles import asset_version
from core.resources import ComputeDevice, FlukeStorage
from models.retrieval import INDEX_TYPES, build_index, index_to_bytes

GALLERY_COLUMNS = ["row", "image", "label"]
# Rows embedded per call, so a large memory-mapped tensor store is never copied into memory whole.
EMBED_CHUNK = 2048

Embedder = Callable[[np.ndarray], np.ndarray]


# ---------------------------------------------------------------------------------------------------------------
# plain functions


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


class CachedEmbedder:
    """tensors (uint8 N x C x H x W) -> float32 N x D L2-normalised, with the trained model on `device`.

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
        cached = self.cache.lookup(keys)
        known = dict(zip(cached["key"], cached["embedding"])) if "embedding" in cached else {}
        missing = [i for i, key in enumerate(keys) if key not in known]
        fresh = self._embed(np.ascontiguousarray(tensors[missing])) if missing else None
        if fresh is not None:
            self.cache.store(pd.DataFrame({"key": [keys[i] for i in missing], "embedding": list(fresh)}))
        self.computed += len(missing)
        self.from_cache += len(tensors) - len(missing)
        dim = fresh.shape[1] if fresh is not None else len(next(iter(known.values())))
        out = np.empty((len(tensors), dim), np.float32)
        for i, key in enumerate(keys):
            if key in known:
                out[i] = known[key]
        if fresh is not None:
            out[missing] = fresh
        return out


def model_embedder(
    embedding_model: dict, torch_device, flip: bool, batch_size: int = 128, cache=None
) -> CachedEmbedder:
    """The embedder every identification stage uses (see `CachedEmbedder`)."""
    return CachedEmbedder(embedding_model, torch_device, flip, batch_size=batch_size, cache=cache)


def embedding_cache(storage) -> TableCache:
    """The per-crop embedding cache shared by gallery, validation and submission."""
    return TableCache(storage.cache_dir("embeddings") / "embeddings.parquet")


def inlier_cache(storage) -> ValueCache:
    """Inlier counts of verified crop pairs (`models.verification`), shared by validation and submission."""
    return ValueCache(storage.cache_dir("verification") / "inliers.parquet", column="inliers")


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
    embed: Embedder,
    tensors: np.ndarray,
    photos: pd.DataFrame,
    index_type: str = "flat",
    **index_options,
) -> tuple[dict, dict[str, float]]:
    """The `gallery_index` value (`index` as faiss bytes, `gallery` (row, image, label), `embeddings`, `info`) and
    timings. Timings stay out of the value so that a rerun with the same output keeps the same data version."""
    started = time.perf_counter()
    embeddings = embed_rows(embed, tensors, photos["tensor_row"].to_numpy())
    embed_seconds = time.perf_counter() - started
    if len(photos) == 0:
        raise ValueError("no known train photos with tensors: the gallery would be empty")
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
    value = {"index": index_to_bytes(index), "gallery": gallery, "embeddings": embeddings, "info": info}
    return value, {"embed_seconds": embed_seconds, "build_seconds": build_seconds}


# ---------------------------------------------------------------------------------------------------------------
# Dagster


class GalleryIndexConfig(Config):
    flip: bool = Field(
        default=False,
        description="Flip test-time augmentation in embed_images (validation and "
        "submission use the same setting, read from this asset's info).",
    )
    index_type: str = Field(
        default="flat", description="flat (exact inner product), hnsw or ivf (approximate)."
    )
    hnsw_m: int = Field(default=32, description="HNSW graph degree.")
    hnsw_ef_search: int = Field(default=128, description="HNSW search breadth (recall vs speed).")
    ivf_lists: int = Field(default=0, description="IVF lists; 0 = 4 * sqrt(gallery size).")
    ivf_probe: int = Field(default=16, description="IVF lists visited per query.")
    batch_size: int = Field(default=128, description="Embedding batch size.")


@asset(
    code_version=asset_version("gallery_index", "gallery_index-1"),
    group_name="identify",
    description="Embeddings of every known train photo and a faiss inner-product index over them.",
)
def gallery_index(
    context: AssetExecutionContext,
    config: GalleryIndexConfig,
    device: ComputeDevice,
    storage: FlukeStorage,
    embedding_model: dict,
    fluke_tensors: dict,
    training_manifest: pd.DataFrame,
) -> Output[dict]:
    if config.index_type not in INDEX_TYPES:
        raise ValueError(f"index_type must be one of {', '.join(INDEX_TYPES)}; got {config.index_type!r}")
    photos, missing = gallery_photos(training_manifest, fluke_tensors["index"])
    if missing:
        context.log.warning(
            f"{len(missing)} known train photos have no tensor and are left out: {missing[:5]}"
        )
    torch_device = device.torch_device()
    embed = model_embedder(
        embedding_model,
        torch_device,
        flip=config.flip,
        batch_size=config.batch_size,
        cache=embedding_cache(storage),
    )
    options = {}
    if config.index_type == "hnsw":
        options = {"hnsw_m": config.hnsw_m, "hnsw_ef_search": config.hnsw_ef_search}
    elif config.index_type == "ivf":
        options = {"ivf_lists": config.ivf_lists, "ivf_probe": config.ivf_probe}
    value, seconds = build_gallery(
        embed, fluke_tensors["tensors"], photos, index_type=config.index_type, **options
    )
    value["info"]["flip"] = config.flip
    info = value["info"]
    per_id = value["gallery"]["label"].value_counts()
    metadata = {
        "gallery_size": info["size"],
        "dimension": info["dim"],
        "individuals": info["individuals"],
        "index_type": info["index_type"],
        "flip_tta": config.flip,
        "build_seconds": round(seconds["build_seconds"], 3),
        "embed_seconds": round(seconds["embed_seconds"], 2),
        "embedded": embed.computed,
        "embeddings_from_cache": embed.from_cache,
        "images_per_second": round(info["size"] / max(seconds["embed_seconds"], 1e-9), 1),
        "photos_per_individual_median": float(per_id.median()) if len(per_id) else 0.0,
        "missing_tensors": len(missing),
        "index_bytes": len(value["index"]),
        "device": str(torch_device),
        "info": MetadataValue.json(info),
    }
    return Output(value, metadata=metadata, data_version=DataVersion(content_version(value)))
