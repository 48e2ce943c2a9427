"""The gallery: the per-crop embedding cache (unchanged crops are never embedded twice, results the same either
way, the cache file as before), embedding rows in order, and the settings."""

import numpy as np
import pandas as pd
import pytest
import torch

from assets.identify.gallery import (
    CachedEmbedder,
    GallerySettings,
    embed_rows,
    embedding_cache,
    index_gallery,
    tensor_rows,
)
from models.embedding import EmbeddingSpec, build_embedding_model, weights_to_bytes
from models.retrieval import index_from_bytes
from tests.assets.identify.world import flat_embed, make_world


def _artifact() -> dict:
    torch.manual_seed(0)
    model = build_embedding_model(EmbeddingSpec(backbone="tiny_resnet", embedding_dim=8, head_hidden=16))
    return {"weights": weights_to_bytes(model), "config": {"model": model.spec.to_dict(), "training": {}}}


def test_cached_embedder_embeds_only_new_crops(tmp_path):
    artifact = _artifact()
    crops = np.random.default_rng(0).integers(0, 255, (7, 1, 32, 64), dtype=np.uint8)
    cache = embedding_cache(lambda stage: tmp_path / stage)
    first = CachedEmbedder(artifact, "cpu", flip=False, cache=cache)
    reference = first(crops[:5])
    assert (first.computed, first.from_cache) == (5, 0)

    second = CachedEmbedder(artifact, "cpu", flip=False, cache=cache)
    again = second(crops)
    assert (second.computed, second.from_cache) == (2, 5)
    np.testing.assert_allclose(again[:5], reference, atol=1e-6)
    uncached = CachedEmbedder(artifact, "cpu", flip=False)(crops)
    np.testing.assert_allclose(again, uncached, atol=1e-5)
    assert np.allclose(np.linalg.norm(again, axis=1), 1.0, atol=1e-4)

    # Another model (or flip setting) never reads this model's entries.
    flipped = CachedEmbedder(artifact, "cpu", flip=True, cache=cache)
    flipped(crops[:3])
    assert (flipped.computed, flipped.from_cache) == (3, 0)

    # The cache file existing storage folders hold: same place, same key and column.
    table = pd.read_parquet(tmp_path / "embeddings" / "embeddings.parquet")
    assert list(table.columns) == ["key", "embedding"] and len(table) == 10


def test_embed_rows_keeps_the_asked_order():
    tensors = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1)
    rows = np.array([7, 2, 9, 2, 0])

    def identity(batch):
        assert (np.diff(batch.reshape(-1).astype(int)) >= 0).all()  # read in ascending row order
        return batch.reshape(len(batch), 1).astype(np.float32)

    assert embed_rows(identity, tensors, rows, chunk=3).reshape(-1).tolist() == [7, 2, 9, 2, 0]
    assert tensor_rows(
        pd.DataFrame({"row": [0, 1], "image": ["a", "b"], "split": ["train", "test"]}), ["b", "a"], "train"
    ).tolist() == [-1, 0]


def test_index_gallery_embeds_known_train_photos_and_records_the_settings(tmp_path):
    world = make_world(tmp_path / "data")
    settings = GallerySettings(flip=True, index_type="hnsw", hnsw_m=8)
    built = index_gallery(flat_embed, world["fluke_tensors"], world["training_manifest"], settings)
    value = built.value
    assert set(value) == {"index", "gallery", "embeddings", "info"}
    assert value["info"] == {
        "index_type": "hnsw",
        "size": 6 * 3 + 1,
        "dim": 8 * 16,
        "individuals": 7,
        "hnsw_m": 8,
        "hnsw_ef_search": 128,
        "flip": True,
    }
    assert not built.missing and index_from_bytes(value["index"]).ntotal == 19
    assert (value["gallery"]["label"] != "new_whale").all()


def test_gallery_settings_refuse_an_unknown_index_type():
    with pytest.raises(ValueError, match="index_type must be one of"):
        GallerySettings(index_type="annoy")
    assert GallerySettings(index_type="ivf").index_options() == {"ivf_lists": 0, "ivf_probe": 16}
