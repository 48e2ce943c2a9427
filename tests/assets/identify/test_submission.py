"""Submission: every test photo once, five distinct labels, duplicates first, fallbacks for rejected photos, and
the CSV."""

import numpy as np
import pandas as pd
import pytest

from assets.identify.checks import complete, labels_known, matches_truth, well_formed
from assets.identify.identification import Gallery, IdentifySettings, Queries, identify
from assets.identify.submission import (
    SubmissionSettings,
    duplicate_labels,
    known_labels,
    make_submission,
    predict,
    put_first,
    submission_images,
    submission_statistics,
    write_submission_csv,
)
from core.constants import NEW_WHALE
from core.scoring import score_submission
from models.retrieval import exact_index
from tests.assets.identify.world import duplicate_groups_of_world, flat_embed, make_world, truth_file


def test_submission_images_include_rejected_photos_once():
    raw = {
        "images": pd.DataFrame({"image": ["b.jpg", "a.jpg", "t.jpg"], "split": ["test", "test", "train"]}),
        "rejected": pd.DataFrame({"image": ["c.png", "a.jpg", "x.jpg"], "split": ["test", "test", "train"]}),
    }
    photos = submission_images(raw)
    assert photos["image"].tolist() == ["a.jpg", "b.jpg", "c.png"]
    assert photos["accepted"].tolist() == [True, True, False]


def test_duplicate_labels_put_the_filed_label_then_its_canonical_id():
    groups = {
        "test_matches": pd.DataFrame(
            {
                "image": ["t1.jpg", "t1.jpg", "t2.jpg", "t3.jpg"],
                "train_image": ["far.jpg", "near.jpg", "alias.jpg", "gone.jpg"],
                "label": ["w_2", "w_1", "w_c", "w_x"],
                "distance": [6, 1, 0, 0],
            }
        ),
        "aliases": pd.DataFrame({"label": ["w_a"], "canonical": ["w_c"]}),
    }
    train_labels = {"far.jpg": "w_2", "near.jpg": "w_1", "alias.jpg": "w_a", "gone.jpg": "w_x"}
    known = {"w_1", "w_2", "w_c", "w_a"}
    assert duplicate_labels(groups, train_labels, known) == {"t1.jpg": ["w_1"], "t2.jpg": ["w_a", "w_c"]}
    assert duplicate_labels({}, train_labels, known) == {}
    assert put_first(["a", "b", "w_c", "c", "d"], ["w_a", "w_c"]) == ["w_a", "w_c", "a", "b", "c"]


def test_known_labels_include_aliases_of_gallery_individuals():
    gallery = {"gallery": pd.DataFrame({"row": [0, 1], "image": ["x", "y"], "label": ["w_c", "w_d"]})}
    groups = {"aliases": pd.DataFrame({"label": ["w_a", "w_z"], "canonical": ["w_c", "w_gone"]})}
    assert known_labels(gallery, groups) == {NEW_WHALE, "w_c", "w_d", "w_a"}


def test_predict_ranks_duplicates_and_fallbacks():
    rng = np.random.default_rng(0)
    embeddings = rng.standard_normal((6, 8)).astype(np.float32)
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    labels = ["A", "A", "B", "C", "D", "E"]
    stranger = -embeddings.mean(axis=0)
    queries = np.stack([embeddings[2], stranger / np.linalg.norm(stranger)])
    gallery = Gallery(exact_index(embeddings), labels, embeddings, np.arange(6))
    # Both queries already embedded: the embedder handed in is never called.
    identification = identify(
        Queries(crop_rows=np.arange(2), reuse=np.ones(2, bool), embeddings=queries),
        gallery,
        lambda crops: pytest.fail("nothing to embed"),
        np.zeros((6, 1, 2, 2), np.uint8),
        IdentifySettings(k=6, threshold=0.9),
    )
    photos = pd.DataFrame({"image": ["q_b.jpg", "q_new.jpg", "rejected.jpg", "dup.jpg"]})
    ranked = dict(zip(["q_b.jpg", "q_new.jpg"], identification.predictions))
    table = predict(photos, ranked, labels, duplicates={"dup.jpg": ["C"]})
    ids = dict(zip(table["Image"], table["Id"].str.split(" ")))
    assert ids["q_b.jpg"][0] == "B" and ids["q_b.jpg"][1] == NEW_WHALE
    assert ids["q_new.jpg"][0] == NEW_WHALE
    assert ids["rejected.jpg"] == [NEW_WHALE, "A", "B", "C", "D"]  # new_whale + most frequent
    assert ids["dup.jpg"][0] == "C" and ids["dup.jpg"][1] == NEW_WHALE
    assert table["source"].tolist() == ["model", "model", "fallback", "duplicate"]
    assert well_formed(table[["Image", "Id"]])["passed"]


def test_submission_end_to_end_writes_a_complete_kaggle_csv(tmp_path):
    world = make_world(tmp_path / "data")
    solution = truth_file(world)
    groups = duplicate_groups_of_world()
    run = make_submission(
        world["gallery_index"],
        {"threshold": 0.5, "map5": 0.9},
        world["fluke_tensors"],
        world["raw_images"],
        groups,
        flat_embed,
        SubmissionSettings(k=10),
    )
    value = run.value
    assert list(value.columns) == ["Image", "Id"]
    assert sorted(value["Image"]) == sorted(solution["Image"])
    rows = dict(zip(value["Image"], value["Id"].str.split(" ")))
    assert rows["test7.jpg"][0] == "w_5"  # test7 (a new pattern) duplicates a photo of w_5: w_5 goes first
    assert rows["broken.jpg"][0] == NEW_WHALE
    assert rows["test6.jpg"][0] == NEW_WHALE  # a random pattern is far from every known whale
    assert all(rows[f"test{n}.jpg"][0] == f"w_{n}" for n in range(6))
    target = tmp_path / "storage" / "submission.csv"
    write_submission_csv(value, target)
    pd.testing.assert_frame_equal(pd.read_csv(target), value.reset_index(drop=True))
    score = score_submission(target, world["root"] / "solution.csv")
    # all right at rank 1 except test7, whose wrong duplicate put new_whale at rank 2
    assert score["map5"] == pytest.approx((8 + 0.5) / 9)
    statistics = submission_statistics(run, {"map5": 0.9})
    assert statistics["rows_fallback"] == 1 and statistics["rows_from_duplicates"] == 1
    assert statistics["threshold"] == 0.5 and statistics["verified_pairs"] == 0

    # The checks on it, and the score against the generator's truth (now a check, not the asset's metadata).
    assert matches_truth(value, world["root"] / "solution.csv")["test_map5"] == pytest.approx(
        score["map5"], abs=1e-6
    )
    assert complete(value, world["raw_images"])["passed"]
    assert well_formed(value)["passed"]
    assert labels_known(value, world["gallery_index"], groups)["passed"]
    assert not complete(value.iloc[1:], world["raw_images"])["passed"]
    assert not complete(pd.concat([value, value.iloc[:1]]), world["raw_images"])["passed"]
    broken = value.assign(Id=value["Id"].where(value.index != 0, "w_unknown a b c d"))
    assert not labels_known(broken, world["gallery_index"], groups)["passed"]


def test_written_csv_is_atomic_and_plain(tmp_path):
    target = tmp_path / "submission.csv"
    table = pd.DataFrame({"Image": ["a.jpg"], "Id": ["new_whale w_1 w_2 w_3 w_4"], "source": ["model"]})
    write_submission_csv(table, target)
    assert target.read_text() == "Image,Id\na.jpg,new_whale w_1 w_2 w_3 w_4\n"
    assert [p.name for p in tmp_path.iterdir()] == ["submission.csv"]
