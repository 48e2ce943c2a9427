"""Submission: every test photo once, five distinct labels, duplicates first, fallbacks for rejected photos, the
CSV in storage, and the asset checks."""

import numpy as np
import pandas as pd
import pytest
from dagster import build_asset_context

from assets import submission as submission_module
from assets.submission import (
    duplicate_labels,
    known_labels,
    predict,
    put_first,
    submission_complete,
    submission_images,
    submission_known_labels,
    submission_well_formed,
    well_formed_problems,
    write_submission_csv,
)
from core.constants import NEW_WHALE
from core.resources import ComputeDevice, FlukeData, FlukeStorage
from core.scoring import score_submission
from models.retrieval import exact_index
from tests.assets.test_validation_report import flat_embed, make_world


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
    gallery = rng.standard_normal((6, 8)).astype(np.float32)
    gallery /= np.linalg.norm(gallery, axis=1, keepdims=True)
    labels = ["A", "A", "B", "C", "D", "E"]
    stranger = -gallery.mean(axis=0)
    queries = np.stack([gallery[2], stranger / np.linalg.norm(stranger)])
    photos = pd.DataFrame({"image": ["q_b.jpg", "q_new.jpg", "rejected.jpg", "dup.jpg"]})
    table = predict(
        photos,
        queries,
        ["q_b.jpg", "q_new.jpg"],
        exact_index(gallery),
        labels,
        threshold=0.9,
        duplicates={"dup.jpg": ["C"]},
        k=6,
    )
    ids = dict(zip(table["Image"], table["Id"].str.split(" ")))
    assert ids["q_b.jpg"][0] == "B" and ids["q_b.jpg"][1] == NEW_WHALE
    assert ids["q_new.jpg"][0] == NEW_WHALE
    assert ids["rejected.jpg"] == [NEW_WHALE, "A", "B", "C", "D"]  # new_whale + most frequent
    assert ids["dup.jpg"][0] == "C" and ids["dup.jpg"][1] == NEW_WHALE
    assert table["source"].tolist() == ["model", "model", "fallback", "duplicate"]
    assert not well_formed_problems(table[["Image", "Id"]])


def test_predict_applies_the_rerank_to_wider_candidates_before_placing_new_whale():
    gallery = np.eye(6, dtype=np.float32)
    labels = ["A", "B", "C", "D", "E", "F"]
    query = np.array([[0.9, 0.5, 0.4, 0.3, 0.2, 0.1]], np.float32)
    query /= np.linalg.norm(query)
    seen = []

    def promote_last(candidates):
        # Stand-in for geometric verification: the embedding's sixth individual is the verified one.
        seen.extend(candidates)
        return [[(row[-1][0], 2.0), *row[:-1]][:5] for row in candidates]

    photos = pd.DataFrame({"image": ["q.jpg"]})
    table = predict(
        photos,
        query,
        ["q.jpg"],
        exact_index(gallery),
        labels,
        threshold=1.5,
        duplicates={},
        k=6,
        rerank=promote_last,
        candidates_per_query=6,
    )
    assert [label for label, _ in seen[0]] == ["A", "B", "C", "D", "E", "F"]  # six candidates, not five
    # F scores 2.0 (above the threshold) and goes first; the rest fall below 1.5, so new_whale comes second.
    assert table["Id"].iloc[0].split(" ") == ["F", NEW_WHALE, "A", "B", "C"]


def test_well_formed_problems_name_the_bad_rows():
    table = pd.DataFrame(
        {
            "Image": ["ok.jpg", "short.jpg", "repeat.jpg", "spaces.jpg"],
            "Id": ["a b c d e", "a b", "a a b c d", "a  b c d e"],
        }
    )
    problems = well_formed_problems(table)
    assert len(problems) == 3
    assert (
        problems[0].startswith("short.jpg")
        and "repeated" in problems[1]
        and problems[2].startswith("spaces.jpg")
    )


def test_submission_asset_writes_a_complete_kaggle_csv(tmp_path, monkeypatch):
    world = make_world(tmp_path / "data")
    frame = world["frame"]
    test = frame[frame["split"] == "test"]
    # The generator's ground truth: test photos 0-5 show w_0..w_5, 6-7 are new; the rejected one is new too.
    truth = test["pattern"].map(lambda p: NEW_WHALE if pd.isna(p) else f"w_{int(p)}")
    solution = pd.DataFrame({"Image": [*test["image"], "broken.jpg"], "Id": [*truth, NEW_WHALE]})
    solution.to_csv(world["root"] / "solution.csv", index=False)
    groups = {
        "groups": pd.DataFrame(),
        "aliases": pd.DataFrame({"label": pd.Series(dtype=object), "canonical": pd.Series(dtype=object)}),
        # test7 (a new pattern) duplicates a train photo of w_5 according to dedup: it must take w_5 first.
        "test_matches": pd.DataFrame(
            {"image": ["test7.jpg"], "train_image": ["w5_0.jpg"], "label": ["w_5"], "distance": [2]}
        ),
    }
    monkeypatch.setattr(submission_module, "model_embedder", lambda *args, **kwargs: flat_embed)
    storage = tmp_path / "storage"
    context = build_asset_context(
        resources={
            "data": FlukeData(data_dir=str(world["root"])),
            "storage": FlukeStorage(storage_dir=str(storage)),
            "device": ComputeDevice(device="cpu"),
        }
    )
    output = submission_module.submission(
        context,
        config=submission_module.SubmissionConfig(k=10),
        gallery_index=world["gallery_index"],
        validation_report={"summary": {"threshold": 0.5, "map5": 0.9}},
        fluke_tensors=world["fluke_tensors"],
        embedding_model={},
        duplicate_groups=groups,
        raw_images=world["raw_images"],
    )
    value = output.value
    assert list(value.columns) == ["Image", "Id"]
    assert sorted(value["Image"]) == sorted(solution["Image"])
    rows = dict(zip(value["Image"], value["Id"].str.split(" ")))
    assert rows["test7.jpg"][0] == "w_5"
    assert rows["broken.jpg"][0] == NEW_WHALE
    assert rows["test6.jpg"][0] == NEW_WHALE  # a random pattern is far from every known whale
    assert all(rows[f"test{n}.jpg"][0] == f"w_{n}" for n in range(6))
    written = pd.read_csv(storage / "submission.csv")
    pd.testing.assert_frame_equal(written, value.reset_index(drop=True))
    score = score_submission(storage / "submission.csv", world["root"] / "solution.csv")
    # all right at rank 1 except test7, whose wrong duplicate put new_whale at rank 2
    assert score["map5"] == pytest.approx((8 + 0.5) / 9)
    assert output.metadata["test_map5"].value == pytest.approx(score["map5"], abs=1e-6)
    assert output.metadata["rows_fallback"].value == 1 and output.metadata["rows_from_duplicates"].value == 1

    assert submission_complete(value, world["raw_images"]).passed
    assert submission_well_formed(value).passed
    assert submission_known_labels(value, world["gallery_index"], groups).passed
    assert not submission_complete(value.iloc[1:], world["raw_images"]).passed
    assert not submission_complete(pd.concat([value, value.iloc[:1]]), world["raw_images"]).passed
    broken = value.assign(Id=value["Id"].where(value.index != 0, "w_unknown a b c d"))
    assert not submission_known_labels(broken, world["gallery_index"], groups).passed


def test_written_csv_is_atomic_and_plain(tmp_path):
    target = tmp_path / "submission.csv"
    table = pd.DataFrame({"Image": ["a.jpg"], "Id": ["new_whale w_1 w_2 w_3 w_4"], "source": ["model"]})
    write_submission_csv(table, target)
    assert target.read_text() == "Image,Id\na.jpg,new_whale w_1 w_2 w_3 w_4\n"
    assert [p.name for p in tmp_path.iterdir()] == ["submission.csv"]
