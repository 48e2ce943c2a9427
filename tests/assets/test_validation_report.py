"""Validation: the fold split, the tuned threshold, baselines, whole-image loading, and the asset end to end on a
hand-made world (known patterns as "whales", a stand-in embedder instead of the trained model)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dagster import build_asset_context
from PIL import Image

from assets import validation_report as report_module
from assets.gallery_index import build_gallery, embed_rows, gallery_photos, tensor_rows
from assets.validation_report import (
    ValidationReportConfig,
    choose_verification_weight,
    evaluate,
    frequent_baseline,
    load_whole_image,
    load_whole_images,
    pixel_features,
    validation_beats_new_whale_baseline,
    validation_split,
)
from core.constants import NEW_WHALE
from core.resources import ComputeDevice, FlukeData, FlukeStorage

HEIGHT, WIDTH = 8, 16


def flat_embed(tensors: np.ndarray) -> np.ndarray:
    """Stand-in for the trained model: centred, L2-normalised pixels."""
    x = np.asarray(tensors, dtype=np.float32).reshape(len(tensors), -1)
    x = x - x.mean(axis=1, keepdims=True)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-6)


def make_world(root: Path, seed: int = 0) -> dict:
    """A data folder and the upstream artifacts: 6 individuals with 3 photos (one held out each), one individual
    seen only in val (an unseen whale), 6 new_whale photos (2 held out), 8 test photos and one rejected one."""
    rng = np.random.default_rng(seed)
    patterns = rng.integers(0, 256, size=(8, 1, HEIGHT, WIDTH)).astype(np.float32)
    photos = []  # image, split, label, fold, pattern
    for ident in range(6):
        for shot in range(3):
            photos.append(
                (f"w{ident}_{shot}.jpg", "train", f"w_{ident}", "val" if shot == 2 else "train", ident)
            )
    photos.append(("w6_0.jpg", "train", "w_6", "val", 6))  # only in val: truth becomes new_whale
    for n in range(6):
        photos.append((f"nw{n}.jpg", "train", NEW_WHALE, "val" if n < 2 else "train", None))
    for n in range(8):
        photos.append((f"test{n}.jpg", "test", None, None, n % 6 if n < 6 else None))
    tensors, rows = [], []
    for image, split, _label, _fold, pattern in photos:
        base = patterns[pattern] if pattern is not None else rng.integers(0, 256, size=(1, HEIGHT, WIDTH))
        tensor = np.clip(base + rng.normal(0, 12, size=base.shape), 0, 255).astype(np.uint8)
        tensors.append(tensor)
        folder = root / split
        folder.mkdir(parents=True, exist_ok=True)
        # The whole photo: the pattern, bigger, inside a border of sea.
        crop = Image.fromarray(tensor[0]).resize((WIDTH * 4, HEIGHT * 4), Image.NEAREST)
        photo = Image.new("L", (WIDTH * 6, HEIGHT * 6), 90)
        photo.paste(crop, (WIDTH, HEIGHT))
        photo.save(folder / image, quality=95)
        rows.append((len(rows), image, split))
    frame = pd.DataFrame(photos, columns=["image", "split", "label", "fold", "pattern"])
    images = frame.assign(path=frame["split"] + "/" + frame["image"])[["image", "split", "label", "path"]]
    rejected = pd.DataFrame(
        [("broken.jpg", "test", None, "truncated_image", "cut short")],
        columns=["image", "split", "label", "reason", "detail"],
    )
    train = frame[frame["split"] == "train"]
    manifest = train[["image", "label", "fold"]].assign(
        individual_photos=train["label"].map(train["label"].value_counts())
    )
    fluke_tensors = {
        "tensors": np.stack(tensors),
        "index": pd.DataFrame(rows, columns=["row", "image", "split"]),
    }
    known, missing = gallery_photos(manifest, fluke_tensors["index"])
    assert not missing
    gallery, _ = build_gallery(flat_embed, fluke_tensors["tensors"], known)
    gallery["info"]["flip"] = False
    return {
        "root": root,
        "raw_images": {"images": images, "rejected": rejected},
        "training_manifest": manifest.reset_index(drop=True),
        "fluke_tensors": fluke_tensors,
        "gallery_index": gallery,
        "frame": frame,
    }


@pytest.fixture
def world(tmp_path):
    return make_world(tmp_path / "data")


def test_validation_split_maps_unseen_individuals_to_new_whale(world):
    train_gallery, queries = validation_split(
        world["training_manifest"], world["gallery_index"]["gallery"], world["fluke_tensors"]["index"]
    )
    assert set(train_gallery["image"]) == {f"w{i}_{s}.jpg" for i in range(6) for s in range(2)}
    truths = dict(zip(queries["image"], queries["truth"]))
    assert truths["w3_2.jpg"] == "w_3"
    assert truths["w6_0.jpg"] == NEW_WHALE  # w_6 has no train-fold photo
    assert truths["nw0.jpg"] == NEW_WHALE
    assert len(queries) == 6 + 1 + 2
    # Known val photos reuse their gallery row; val new_whale photos need embedding.
    assert (queries.loc[queries["label"] == NEW_WHALE, "gallery_row"] == -1).all()
    assert (queries.loc[queries["label"] != NEW_WHALE, "gallery_row"] >= 0).all()


def test_evaluate_tunes_threshold_between_known_and_new():
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((10, 32)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)

    def near(vectors, noise):
        x = vectors + rng.normal(0, noise, vectors.shape).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    gallery = near(np.repeat(centres, 2, axis=0), 0.05)
    labels = [f"id{i}" for i in range(10) for _ in range(2)]
    strangers = rng.standard_normal((5, 32)).astype(np.float32)
    queries = np.concatenate(
        [near(centres, 0.05), strangers / np.linalg.norm(strangers, axis=1, keepdims=True)]
    )
    truths = [f"id{i}" for i in range(10)] + [NEW_WHALE] * 5
    result = evaluate(gallery, labels, queries, truths, k=10, sweep_points=41)
    assert result.map5 == pytest.approx(1.0)
    assert result.map5_at_no_new_whale < 0.8  # without new_whale the strangers score nothing
    assert result.per_rank["hits"].sum() == 15
    assert result.per_rank["new_whale_share"].iloc[0] == pytest.approx(5 / 15)
    assert len(result.sweep) >= 20


def test_frequent_baseline_is_new_whale_then_most_frequent():
    labels = ["a", "a", "a", "b", "b", "c", "d", "e"]
    # rows are [new_whale, a, b, c, d]
    assert frequent_baseline(labels, [NEW_WHALE, "a", "d", "e"]) == pytest.approx((1 + 1 / 2 + 1 / 5 + 0) / 4)


def test_load_whole_image_resizes_to_tensor_shape(tmp_path):
    path = tmp_path / "photo.jpg"
    Image.new("RGB", (300, 200), (200, 40, 10)).save(path)
    grey = load_whole_image(path, 16, 32, 1)
    colour = load_whole_image(path, 16, 32, 3)
    assert grey.shape == (1, 16, 32) and grey.dtype == np.uint8
    assert colour.shape == (3, 16, 32)
    assert abs(int(colour[0].mean()) - 200) < 4 and abs(int(colour[2].mean()) - 10) < 4
    assert load_whole_images([path, path], 16, 32, 1, workers=1).shape == (2, 1, 16, 32)


def test_pixel_features_are_unit_and_match_identical_images():
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, size=(3, 3, 40, 60), dtype=np.uint8)
    images[2] = images[0]
    features = pixel_features(images, side=8)
    assert features.shape == (3, 64)
    assert np.allclose(np.linalg.norm(features, axis=1), 1.0, atol=1e-5)
    assert features[0] @ features[2] == pytest.approx(1.0, abs=1e-5)
    assert features[0] @ features[1] < 0.5


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


def run_validation_report(world, monkeypatch, **config):
    monkeypatch.setattr(report_module, "model_embedder", lambda *args, **kwargs: flat_embed)
    resources = {
        "data": FlukeData(data_dir=str(world["root"])),
        "device": ComputeDevice(device="cpu"),
        "storage": FlukeStorage(storage_dir=str(world["root"].parent / "storage")),
    }
    # As a context manager the context's ephemeral instance is closed when the asset returns.
    with build_asset_context(resources=resources) as context:
        return report_module.validation_report(
            context,
            config=ValidationReportConfig(**config),
            gallery_index=world["gallery_index"],
            embedding_model={},
            fluke_tensors=world["fluke_tensors"],
            training_manifest=world["training_manifest"],
            raw_images=world["raw_images"],
        )


def test_validation_report_asset_end_to_end(world, monkeypatch):
    output = run_validation_report(world, monkeypatch, k=10, sweep_points=21)
    value, metadata = output.value, output.metadata
    summary = value["summary"]
    assert set(value) == {"summary", "per_rank", "sweep", "predictions"}
    # Distinct noisy patterns are easy for pixel embeddings: the model stand-in finds every known whale.
    assert summary["map5_known"] == pytest.approx(1.0)
    assert (
        summary["queries"] == 9
        and summary["queries_new_whale"] == 3
        and summary["queries_unseen_individuals"] == 1
    )
    assert summary["map5"] > summary["baselines"]["new_whale_frequent"]
    assert summary["map5_without_crop"] is not None and 0 <= summary["map5_without_crop"] <= 1
    assert 0 <= summary["baselines"]["pixel_nn"] <= 1
    assert value["per_rank"]["rank"].tolist() == [1, 2, 3, 4, 5]
    assert all(len(set(ids.split())) == 5 for ids in value["predictions"]["Id"])
    assert "threshold_sweep" in metadata and "comparison" in metadata
    # 8 x 16 crops hold no SIFT keypoints: every weight ties and the smallest, 0 (the embedding alone), is kept.
    assert summary["verification"]["weight"] == 0.0
    assert summary["verification"]["candidates"] == ValidationReportConfig().verify_candidates
    assert summary["map5"] == summary["map5_embedding_only"]
    check = validation_beats_new_whale_baseline(value)
    assert check.passed


def test_validation_report_reuses_verified_pairs_on_a_rerun(world, monkeypatch):
    first = run_validation_report(world, monkeypatch, k=10, sweep_points=11, compare_without_crop=False)
    again = run_validation_report(world, monkeypatch, k=10, sweep_points=11, compare_without_crop=False)

    def number(output, key):
        return getattr(output.metadata[key], "value", output.metadata[key])

    assert number(first, "verified_pairs") > 0 and number(first, "verified_pairs_from_cache") == 0
    assert number(again, "verified_pairs_from_cache") == number(again, "verified_pairs")
    assert again.value["summary"] == first.value["summary"]


def test_validation_report_without_verification_reports_none(world, monkeypatch):
    output = run_validation_report(world, monkeypatch, k=10, sweep_points=11, verify_candidates=0)
    summary = output.value["summary"]
    assert summary["verification"] is None
    assert summary["map5"] == summary["map5_embedding_only"]
    assert "verification_weights" not in output.metadata


def test_choose_verification_weight_takes_the_weight_that_ranks_verified_whales_first():
    # Two queries whose true whale the embedding ranks second but verification supports; one new whale query
    # whose candidates verification does not support.
    verified = [
        [("a", 0.9, 3), ("b", 0.85, 30), ("c", 0.5, 0)],
        [("c", 0.8, 2), ("a", 0.75, 25), ("b", 0.4, 1)],
        [("b", 0.7, 2), ("c", 0.6, 1), ("a", 0.3, 0)],
    ]
    truths = ["b", "a", NEW_WHALE]
    weight, by_weight = choose_verification_weight(verified, truths, ["a", "b", "c"], [0.0, 0.001, 0.05], 20)
    assert weight == 0.05
    assert by_weight[0.05].map5 == pytest.approx(1.0)
    assert by_weight[0.0].map5 < 1.0
    # Ties go to the smaller weight: with no inliers anywhere every weight scores the same.
    flat = [[(label, sim, 0) for label, sim, _ in row] for row in verified]
    tied, _ = choose_verification_weight(flat, truths, ["a", "b", "c"], [0.05, 0.0, 0.01], 20)
    assert tied == 0.0
    with pytest.raises(ValueError):
        choose_verification_weight(verified, truths, [], [], 20)


def test_validation_check_fails_below_the_baseline():
    failing = {"summary": {"map5": 0.2, "baselines": {"new_whale_frequent": 0.3}}}
    assert not validation_beats_new_whale_baseline(failing).passed


def test_validation_report_without_crop_comparison(world, monkeypatch):
    output = run_validation_report(world, monkeypatch, k=10, sweep_points=11, compare_without_crop=False)
    assert output.value["summary"]["map5_without_crop"] is None
    assert 0 <= output.value["summary"]["baselines"]["pixel_nn"] <= 1
