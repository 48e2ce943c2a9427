"""The one identification path: validation and submission give the same rows for the same photo; verification
sees more candidates than a row shows; scores are re-ranked before new_whale is placed; embeddings already made
are reused, and the embedder is handed in."""

import numpy as np
import pandas as pd

from assets.identify.gallery import build_gallery, gallery_photos
from assets.identify.identification import Gallery, Identification, IdentifySettings, Queries, identify
from assets.identify.report import ReportSettings, validate
from assets.identify.submission import SubmissionSettings, make_submission
from core.constants import NEW_WHALE
from models.retrieval import exact_index
from models.verification import VerificationSettings
from tests.assets.identify.world import make_world, noisy_embed


def test_validation_and_submission_give_the_same_rows_for_the_same_photo(tmp_path):
    # A gallery of the train fold only; the val photos' crops are also filed as test photos. Validation ranks
    # them as val queries and tunes; the submission ranks them as test photos with what validation chose.
    world = make_world(tmp_path / "data", seed=3, height=48, width=96)
    manifest, tensors = world["training_manifest"], world["fluke_tensors"]
    photos, _ = gallery_photos(manifest[manifest["fold"] == "train"], tensors["index"])
    gallery_index, _ = build_gallery(noisy_embed, tensors["tensors"], photos)
    gallery_index["info"]["flip"] = False
    settings = ReportSettings(k=10, sweep_points=31, compare_without_crop=False, workers=1)
    report = validate(
        gallery_index, tensors, manifest, world["raw_images"], world["root"], noisy_embed, settings
    )
    summary = report.value["summary"]
    assert summary["verification"]["weight"] > 0  # verification changed the ranking

    val = tensors["index"].merge(manifest.loc[manifest["fold"] == "val", ["image"]], on="image")
    as_test = pd.concat([tensors["index"], val.assign(split="test")], ignore_index=True)
    test_photos = val[["image"]].assign(split="test", label=None, path="")
    raw = {"images": test_photos, "rejected": world["raw_images"]["rejected"].iloc[:0]}
    run = make_submission(
        gallery_index,
        summary,
        {"tensors": tensors["tensors"], "index": as_test},
        raw,
        None,
        noisy_embed,
        SubmissionSettings(k=settings.k),
    )
    assert (run.table["source"] == "model").all()
    validated = dict(zip(report.value["predictions"]["image"], report.value["predictions"]["Id"]))
    submitted = dict(zip(run.value["Image"], run.value["Id"]))
    assert submitted == validated
    assert run.identification.stats["pairs"] == report.verify_stats["pairs"]


def test_verification_sees_more_candidates_than_a_row_shows():
    embeddings = np.eye(6, dtype=np.float32)
    labels = ["A", "B", "C", "D", "E", "F"]
    query = np.array([[0.9, 0.5, 0.4, 0.3, 0.2, 0.1]], np.float32)
    query /= np.linalg.norm(query)
    crops = np.zeros((7, 1, 8, 16), np.uint8)  # featureless: no inliers anywhere
    settings = IdentifySettings(
        k=6, verification=VerificationSettings(candidates=6, workers=1), threshold=0.1
    )
    identification = identify(
        Queries(crop_rows=np.array([6]), reuse=np.array([True]), embeddings=query),
        Gallery(exact_index(embeddings), labels, embeddings, np.arange(6)),
        lambda batch: np.zeros((len(batch), 6), np.float32),
        crops,
        settings,
    )
    assert [label for label, _ in identification.candidates[0]] == labels  # six candidates, not five
    assert [label for label, _, _ in identification.verified[0]] == labels
    assert identification.predictions == [["A", "B", "C", "D", "E"]]  # all above 0.1: no new_whale in five
    assert identification.stats["pairs"] == 6


def test_scores_are_reranked_before_new_whale_is_placed():
    # The embedding's sixth individual is the verified one: with the weight it scores 0.1 + 0.1 * 20 = 2.1.
    verified = [[("A", 0.9, 0), ("B", 0.5, 0), ("C", 0.4, 0), ("D", 0.3, 0), ("E", 0.2, 0), ("F", 0.1, 30)]]
    identification = Identification(np.zeros((1, 6)), [], verified, fill_labels=[], inlier_cap=20)
    # F is above the threshold and goes first; the rest fall below 1.5, so new_whale comes second.
    assert identification.rows(0.1, 1.5) == [["F", NEW_WHALE, "A", "B", "C"]]
    assert identification.rows(0.0, 0.8) == [["A", NEW_WHALE, "B", "C", "D"]]


def test_only_queries_not_embedded_yet_are_embedded():
    embeddings = np.eye(3, dtype=np.float32)
    crops = np.arange(3 * 4, dtype=np.uint8).reshape(3, 1, 2, 2)
    embedded = []

    def embed(batch):
        embedded.append(len(batch))
        return np.tile(embeddings[2], (len(batch), 1))

    identification = identify(
        Queries(crop_rows=np.array([0, 1]), reuse=np.array([True, False]), embeddings=embeddings[:2]),
        Gallery(exact_index(embeddings), ["a", "b", "c"], embeddings, np.arange(3)),
        embed,
        crops,
        IdentifySettings(k=3),
    )
    assert embedded == [1]
    assert [row[0][0] for row in identification.candidates] == ["a", "c"]
    assert identification.predictions is None  # no threshold: validation tunes one on the candidates


def test_the_submission_applies_what_validation_chose():
    verification = {**VerificationSettings(candidates=7).to_dict(), "weight": 0.04}
    applied = IdentifySettings.validated({"threshold": 0.3, "verification": verification}, k=50)
    assert applied == IdentifySettings(
        k=50, verification=VerificationSettings(candidates=7), weight=0.04, threshold=0.3
    )
    plain = IdentifySettings.validated({"threshold": 0.3, "verification": None}, k=50)
    assert not plain.verifies and plain.threshold == 0.3
