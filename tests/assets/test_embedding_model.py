"""The embedding_model asset: its Config mirrors TrainingConfig, the baselines, and one tiny materialization."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
from dagster import build_asset_context

from assets.embedding_model import (
    EmbeddingModelConfig,
    embedding_model,
    new_whale_first_baseline,
    pixel_nearest_neighbour_baseline,
)
from core.constants import NEW_WHALE
from core.resources import ComputeDevice, FlukeStorage
from models.embedding import embed_images, load_embedding_model
from models.training import TrainingConfig, TrainingData


def test_config_mirrors_training_config_field_for_field():
    asset_defaults = EmbeddingModelConfig().model_dump()
    training_defaults = dataclasses.asdict(TrainingConfig())
    assert asset_defaults == training_defaults


def _store(seed: int = 0):
    """Five individuals x 3 noisy copies of a pattern, four new_whale photos; one copy of each held out."""
    rng = np.random.default_rng(seed)
    patterns = rng.integers(0, 256, (5, 1, 16, 32))
    images, labels, folds = [], [], []
    for i in range(5):
        for j in range(3):
            images.append(np.clip(patterns[i] + rng.integers(-15, 15, patterns[i].shape), 0, 255))
            labels.append(f"w{i}")
            folds.append("val" if j == 0 else "train")
    for j in range(4):
        images.append(rng.integers(0, 256, (1, 16, 32)))
        labels.append(NEW_WHALE)
        folds.append("val" if j == 0 else "train")
    tensors = np.stack(images).astype(np.uint8)
    names = [f"{i:03d}.jpg" for i in range(len(labels))]
    index = pd.DataFrame({"row": np.arange(len(names)), "image": names, "split": "train"})
    manifest = pd.DataFrame({"image": names, "label": labels, "fold": folds, "individual_photos": 3})
    return tensors, index, manifest


def test_baselines_on_a_store_where_pixels_identify_the_whales():
    tensors, index, manifest = _store()
    train, val = manifest[manifest.fold == "train"], manifest[manifest.fold == "val"]
    data = TrainingData(
        tensors, train.index.to_numpy(), train.label.tolist(), val.index.to_numpy(), val.label.tolist()
    )
    # new_whale first: the one new_whale query scores 1, each whale query 1/2 .. 1/5 if in the top 4, else 0
    assert 0.1 < new_whale_first_baseline(data) < 0.6
    pixel_map5, _ = pixel_nearest_neighbour_baseline(data)
    assert pixel_map5 == pytest.approx(1.0)  # noisy copies of one pattern are each other's nearest pixels


def test_asset_trains_and_returns_a_loadable_model_and_history(tmp_path):
    tensors, index, manifest = _store()
    config = EmbeddingModelConfig(
        backbone="tiny_resnet",
        embedding_dim=8,
        head_hidden=16,
        epochs=2,
        individuals_per_batch=3,
        negatives_per_batch=2,
        eval_batch_size=8,
        validate_every=1,
    )
    output = embedding_model(
        context=build_asset_context(),
        config=config,
        device=ComputeDevice(device="cpu"),
        storage=FlukeStorage(storage_dir=str(tmp_path)),
        fluke_tensors={"tensors": tensors, "index": index},
        training_manifest=manifest,
    )
    value, metadata = output.value, output.metadata
    assert set(value) == {"weights", "config", "history"}
    assert list(value["history"]["epoch"]) == [1, 2]
    for column in ("margin_loss", "triplet_loss", "same_label_share", "images_per_sec", "val_map5"):
        assert value["history"][column].notna().all()
    for key in (
        "val_map5",
        "baseline_pixel_nn_map5",
        "baseline_new_whale_map5",
        "loss_curves",
        "val_map5_curve",
        "parameters",
        "device",
        "wall_seconds",
        "config",
        "same_label_pair_share",
    ):
        assert key in metadata
    assert list((tmp_path / "work" / "embedding_model").glob("*/last.pt"))
    model = load_embedding_model(value, "cpu")
    embedded = embed_images(model, tensors, "cpu")
    assert embedded.shape == (len(tensors), 8)
    np.testing.assert_allclose(np.linalg.norm(embedded, axis=1), 1.0, atol=1e-5)
