"""Validation: the fold split, baselines, and the report end to end on a hand-made world (known patterns as
"whales", a stand-in embedder handed in instead of the trained model)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from assets.identify.gallery import inlier_cache
from assets.identify.report import (
    ReportSettings,
    validate,
    validation_split,
)
from assets.identify.report_tables import comparison_table, report_figures
from core.constants import NEW_WHALE
from models.baselines import frequent_whale_baseline, pixel_vectors
from tests.assets.identify.world import flat_embed, make_world


@pytest.fixture
def world(tmp_path):
    return make_world(tmp_path / "data")


def run_validation(world, cache=None, **settings):
    return validate(
        world["gallery_index"],
        world["fluke_tensors"],
        world["training_manifest"],
        world["raw_images"],
        world["root"],
        flat_embed,
        ReportSettings(**settings),
        cache,
    )


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


def test_frequent_baseline_is_new_whale_then_most_frequent():
    labels = ["a", "a", "a", "b", "b", "c", "d", "e"]
    # rows are [new_whale, a, b, c, d]
    expected = (1 + 1 / 2 + 1 / 5 + 0) / 4
    assert frequent_whale_baseline(labels, [NEW_WHALE, "a", "d", "e"]) == pytest.approx(expected)


def test_pixel_baseline_is_unit_matches_identical_images_and_the_report_numbers():
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, size=(3, 3, 40, 60), dtype=np.uint8)
    images[2] = images[0]
    features = pixel_vectors(images, size=(8, 8))
    assert features.shape == (3, 64)
    assert np.allclose(np.linalg.norm(features, axis=1), 1.0, atol=1e-5)
    assert features[0] @ features[2] == pytest.approx(1.0, abs=1e-5)
    assert features[0] @ features[1] < 0.5
    # Bit for bit what the report computed before it used models.baselines (its own pixel_features).
    grey = torch.from_numpy(np.asarray(images, dtype=np.float32)).mean(dim=1, keepdim=True)
    small = F.adaptive_avg_pool2d(grey, (8, 8)).flatten(1)
    small = small - small.mean(dim=1, keepdim=True)
    before = (small / small.norm(dim=1, keepdim=True).clamp_min(1e-6)).numpy().astype(np.float32)
    assert np.array_equal(features, before)


def test_validation_report_end_to_end(world):
    run = run_validation(world, k=10, sweep_points=21)
    value = run.value
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
    # 8 x 16 crops hold no SIFT keypoints: every weight ties and the smallest, 0 (the embedding alone), is kept.
    assert summary["verification"]["weight"] == 0.0
    assert summary["verification"]["candidates"] == ReportSettings().verify_candidates
    assert summary["map5"] == summary["map5_embedding_only"]
    assert len(comparison_table(run)) == 5 and report_figures(run)["verification_weight"] == 0.0
    assert set(run.by_weight) == set(ReportSettings().verification_weights)
    # Weighted to the test mix: known whales by their photos, new_whale to the kept train photos' share (6/22).
    mix = summary["test_mix"]
    assert mix["new_whale_share_target"] == pytest.approx(mix["new_whale_share_weighted"], abs=1e-4)
    assert mix["new_whale_share"] == pytest.approx(3 / 9, abs=1e-4)
    assert mix["map5_known"] == pytest.approx(1.0) and report_figures(run)["map5_test_mix"] == mix["map5"]


def test_validation_report_reuses_verified_pairs_on_a_rerun(world, tmp_path):
    cache = inlier_cache(lambda stage: tmp_path / "cache" / stage)
    first = run_validation(world, cache, k=10, sweep_points=11, compare_without_crop=False)
    again = run_validation(world, cache, k=10, sweep_points=11, compare_without_crop=False)
    assert first.verify_stats["pairs"] > 0 and first.verify_stats["pairs_from_cache"] == 0
    assert again.verify_stats["pairs_from_cache"] == again.verify_stats["pairs"]
    assert again.value["summary"] == first.value["summary"]
    figures = report_figures(again)
    assert figures["verified_pairs_from_cache"] == figures["verified_pairs"]


def test_validation_report_without_verification_reports_none(world):
    run = run_validation(world, k=10, sweep_points=11, verify_candidates=0)
    summary = run.value["summary"]
    assert summary["verification"] is None
    assert summary["map5"] == summary["map5_embedding_only"]
    assert run.by_weight == {} and "verification_weight" not in report_figures(run)


def test_validation_report_without_crop_comparison(world):
    run = run_validation(world, k=10, sweep_points=11, compare_without_crop=False)
    assert run.value["summary"]["map5_without_crop"] is None
    assert 0 <= run.value["summary"]["baselines"]["pixel_nn"] <= 1


def test_without_verification_the_embedding_figure_is_the_threshold_paths_not_the_decisions():
    """The full profile turns crop verification off: the embedding-alone MAP@5 must then be the threshold path's
    (the embedding's ranking), not the calibrated decision's."""
    import pandas as pd

    from assets.identify.report import report_value
    from assets.identify.tuning import Evaluation

    def evaluation(map5: float, threshold: float) -> Evaluation:
        return Evaluation(map5, threshold, pd.DataFrame(), [["new_whale"]], pd.DataFrame(), 0.0)

    queries = pd.DataFrame({"image": ["q.jpg"], "label": ["new_whale"], "truth": ["new_whale"]})
    decided, embedding = evaluation(0.9, 0.5), evaluation(0.6, 0.7)
    summary = report_value(decided, queries, 3, {}, None, 20, False, threshold_path=embedding)["summary"]
    assert summary["map5"] == 0.9
    assert summary["map5_embedding_only"] == 0.6 and summary["threshold_embedding_only"] == 0.7
    verified = report_value(
        decided, queries, 3, {}, None, 20, False, None, evaluation(0.5, 0.1), None, embedding
    )
    assert verified["summary"]["map5_embedding_only"] == 0.5
