"""The per-crop embedding cache: unchanged crops are never embedded twice, results are the same either way."""

import numpy as np
import torch

from assets.gallery_index import CachedEmbedder
from core.caches import TableCache
from models.embedding import EmbeddingSpec, build_embedding_model, weights_to_bytes


def _artifact() -> dict:
    torch.manual_seed(0)
    model = build_embedding_model(EmbeddingSpec(backbone="tiny_resnet", embedding_dim=8, head_hidden=16))
    return {"weights": weights_to_bytes(model), "config": {"model": model.spec.to_dict(), "training": {}}}


def test_cached_embedder_embeds_only_new_crops(tmp_path):
    artifact = _artifact()
    crops = np.random.default_rng(0).integers(0, 255, (7, 1, 32, 64), dtype=np.uint8)
    cache = TableCache(tmp_path / "embeddings.parquet")
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
