"""The review loop end to end on a tiny set: decisions appended to the decisions file flow back through
`flukeid update`, which reruns exactly what they make stale; the decided photos join the gallery under their
labels, the submission answers them by their decision, and a second update runs nothing."""

from pathlib import Path

import pandas as pd
import pytest

from core.decisions import append_decision, new_individual_id
from tests.chain import dagster_environment
from tests.conftest import copy_tiny_chain
from tests.test_update import REPO, _metadata, _update


def _truths(data: Path) -> dict[str, str]:
    solution = pd.read_csv(data / "solution.csv")
    return dict(zip(solution["Image"], solution["Id"]))


def _decide(storage: Path, data: Path, decisions: Path) -> dict[str, tuple[str, str]]:
    """Decide the queue's most uncertain photos as the generator's truth says: a known whale (same), a new one
    (new) and one left unsure. Returns image -> (decision, label)."""
    items = pd.read_parquet(storage / "review_queue" / "items.parquet")
    photos = pd.read_parquet(storage / "review_queue" / "photos.parquet")
    gallery = set(pd.read_parquet(storage / "gallery_index" / "gallery.parquet")["label"])
    truths = _truths(data)
    first_of = photos.groupby("item")["image"].first()
    wanted: dict[str, tuple[str, str]] = {}
    for item in items.sort_values("position")["item"]:
        image = first_of[item]
        truth = truths[image]
        kind = "same" if truth in gallery else "new"
        if kind not in {decision for decision, _ in wanted.values()}:
            wanted[image] = (kind, truth if kind == "same" else new_individual_id(image))
        elif "unsure" not in {decision for decision, _ in wanted.values()}:
            wanted[image] = ("unsure", "")
        if len(wanted) == 3:
            break
    assert {decision for decision, _ in wanted.values()} == {"same", "new", "unsure"}
    for image, (decision, label) in wanted.items():
        append_decision(decisions, image, decision, label, reviewer="tester")
    return wanted


@pytest.mark.slow
def test_decisions_flow_back_through_update(tiny_chain, tmp_path):
    copy_tiny_chain(tiny_chain, tmp_path)
    data = tmp_path / "data"
    env = dagster_environment(tmp_path, data)
    home, storage = Path(env["DAGSTER_HOME"]), tmp_path / "storage"
    profile = REPO / "configs" / "tiny.yaml"
    out, ran = _update(env, profile)
    assert ran == set() and "everything is up to date" in out  # the copy is as fresh as the chain it copies

    decisions = data / "reviews" / "decisions.csv"
    decided = _decide(storage, data, decisions)
    out, ran = _update(env, profile)
    # The wave starts at raw_images (the decisions file is part of the observed folder) and reaches the gallery,
    # the submission and the queue; the detector's training set (annotated photos) is unchanged, so it finds its
    # finished run instead of training again.
    assert {"raw_images", "gallery_index", "submission", "review_queue", "decided_identities"} <= ran, out
    assert _metadata(home, "raw_images")["reviewed_photos"] == 3
    if "fluke_detector" in ran:
        assert _metadata(home, "fluke_detector")["reused_previous_training"] is True

    gallery = pd.read_parquet(storage / "gallery_index" / "gallery.parquet")
    labelled = {image: label for image, (decision, label) in decided.items() if decision != "unsure"}
    in_gallery = dict(zip(gallery["image"], gallery["label"]))
    assert {image: in_gallery.get(image) for image in labelled} == labelled
    unsure = next(image for image, (decision, _) in decided.items() if decision == "unsure")
    assert unsure not in in_gallery

    rows = pd.read_csv(storage / "submission.csv").set_index("Image")["Id"].str.split(" ")
    for image, (decision, label) in decided.items():
        if decision == "same":
            assert rows[image][0] == label
        elif decision == "new":
            assert rows[image][0] == "new_whale"  # a whale train.csv does not know
    assert not any(new_individual_id(image) in row for image in decided for row in rows)

    identities = pd.read_csv(storage / "decided_identities.csv").set_index("image")
    for image, label in labelled.items():
        assert identities.loc[image, "individual"] == label
        assert identities.loc[image, "decided_by"] == "review:tester"
    assert identities.loc[unsure, "decided_by"] == "model (review unsure)"

    out, ran = _update(env, profile)
    assert ran == set() and "everything is up to date" in out
