"""The train stage's plain code: the baselines beside the model, the run key, and one tiny training artifact."""

import numpy as np
import pandas as pd
import pytest
import torch

from assets.train.run import (
    CODE_VERSION,
    artifact_version,
    history_figures,
    pixel_nearest_neighbour_baseline,
    run_key,
    train_embedding_artifact,
)
from core.constants import NEW_WHALE
from models.baselines import frequent_whale_baseline
from models.embedding import embed_images, load_embedding_model
from models.epoch_validation import validation_truths
from models.training import TrainingConfig, TrainingData, prepare_training_data

TINY = dict(
    backbone="tiny_resnet",
    embedding_dim=8,
    head_hidden=16,
    epochs=2,
    individuals_per_batch=3,
    negatives_per_batch=2,
    eval_batch_size=8,
    validate_every=1,
)


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


def _data(tensors, manifest) -> TrainingData:
    train, val = manifest[manifest.fold == "train"], manifest[manifest.fold == "val"]
    return TrainingData(
        tensors, train.index.to_numpy(), train.label.tolist(), val.index.to_numpy(), val.label.tolist()
    )


def test_baselines_on_a_store_where_pixels_identify_the_whales():
    tensors, _, manifest = _store()
    data = _data(tensors, manifest)
    # new_whale first: the one new_whale query scores 1, each whale query 1/2 .. 1/5 if in the top 4, else 0
    truths = validation_truths(data.val_labels, data.train_labels)
    assert 0.1 < frequent_whale_baseline(data.train_labels, truths) < 0.6
    pixel_map5, _ = pixel_nearest_neighbour_baseline(data)
    assert pixel_map5 == pytest.approx(1.0)  # noisy copies of one pattern are each other's nearest pixels


def test_run_key_follows_code_config_and_training_photos_not_other_rows():
    tensors, index, manifest = _store()
    data = prepare_training_data(tensors, index, manifest)
    config = TrainingConfig(**TINY)
    key = run_key(config, data)
    assert key == run_key(TrainingConfig(**TINY), data) and CODE_VERSION.startswith("embedding_model-")
    assert key != run_key(TrainingConfig(**{**TINY, "epochs": 3}), data)
    # a time budget changes where a run stops, not the run: a cut run is found again and carried on
    assert key == run_key(TrainingConfig(**{**TINY, "max_minutes": 5.0}), data)
    more = np.concatenate([tensors, np.zeros((2, *tensors.shape[1:]), np.uint8)])  # e.g. new test photos
    assert key == run_key(config, prepare_training_data(more, index, manifest))
    changed = tensors.copy()
    changed[data.train_rows[0]] ^= 1
    assert key != run_key(config, prepare_training_data(changed, index, manifest))


def test_a_setting_added_later_is_keyed_only_off_its_default():
    """`hidden_norm` came after runs were keyed: at its default the key is what it was without the field, so an
    earlier run's checkpoint is found again; another value is a different run."""
    from core.digests import content_version, stable_digest

    tensors, index, manifest = _store()
    data = prepare_training_data(tensors, index, manifest)
    config = TrainingConfig(**TINY)
    before = {k: v for k, v in config.to_dict().items() if k not in ("hidden_norm", "max_minutes")}
    rows = np.asarray(data.tensors[np.asarray(data.train_rows, dtype=np.int64)])
    val = np.asarray(data.tensors[np.asarray(data.val_rows, dtype=np.int64)])
    old_key = stable_digest(
        CODE_VERSION, before, content_version(rows), data.train_labels, content_version(val), data.val_labels
    )
    assert run_key(config, data) == old_key
    assert run_key(TrainingConfig(**{**TINY, "hidden_norm": "after_relu"}), data) != old_key


def test_artifact_is_a_loadable_model_with_its_history_and_is_found_again(tmp_path):
    tensors, index, manifest = _store()
    fluke_tensors = {"tensors": tensors, "index": index}
    config = TrainingConfig(**TINY)
    value, summary = train_embedding_artifact(
        fluke_tensors, manifest, config, torch.device("cpu"), tmp_path, log=lambda _: None
    )
    assert set(value) == {"weights", "config", "history"}
    assert list(value["history"]["epoch"]) == [1, 2]
    for column in ("margin_loss", "triplet_loss", "same_label_share", "images_per_sec", "val_map5"):
        assert value["history"][column].notna().all()
    assert value["config"]["val_map5"] == summary["val_map5"] == value["history"]["val_map5"].iloc[-1]
    assert summary["training_photos"] == 13 and summary["validation_photos"] == 6
    assert summary["baseline_pixel_nn_map5"] == pytest.approx(1.0)
    assert (tmp_path / summary["run_key"] / "last.pt").exists()
    assert set(history_figures(value["history"])) >= {"same_label_pair_share", "load_share_of_step_time"}
    model = load_embedding_model(value, "cpu")
    embedded = embed_images(model, tensors, "cpu")
    assert embedded.shape == (len(tensors), 8)
    np.testing.assert_allclose(np.linalg.norm(embedded, axis=1), 1.0, atol=1e-5)
    # a second run finds the finished checkpoint: same weights and config, so the same data version
    again, again_summary = train_embedding_artifact(
        fluke_tensors, manifest, config, torch.device("cpu"), tmp_path, log=lambda _: None
    )
    assert again_summary["resumed_from_epoch"] == 2
    assert artifact_version(again) == artifact_version(value)


def test_every_photo_new_whale_trains_no_step_and_hands_on_the_network(tmp_path):
    tensors, index, manifest = _store()
    value, summary = train_embedding_artifact(
        {"tensors": tensors, "index": index},
        manifest.assign(label=NEW_WHALE),
        TrainingConfig(**TINY),
        torch.device("cpu"),
        tmp_path,
    )
    assert summary["classes"] == 0 and int(value["history"]["steps"].sum()) == 0
    assert len(value["history"]) == TINY["epochs"] and value["history"]["val_map5"].notna().all()
