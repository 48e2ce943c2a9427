"""Encounters in a generated set (synth/encounters.py, `generate(encounters=SHARE)`): encounters.csv lists test
photos of one individual each, every test photo carries an EXIF time that regroups exactly those encounters,
pixels and every other file are those of the set without encounters, and the default writes none of it. Sets of
scale 0.002 (about 60 photos) are generated."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from assets.ingest.encounters import exif_encounters
from assets.ingest.inspection import inspect_image
from synth import generate
from synth.encounters import check_share, plan_encounters, with_exif_time

SCALE, SEED = 0.002, 5
TABLES = ["train.csv", "solution.csv", "boxes.csv", "duplicates.csv", "individuals.csv", "images.csv"]


def _files(root: Path, split: str) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted((root / split).iterdir())}


@pytest.fixture(scope="module")
def sets(tmp_path_factory) -> dict[str, Path]:
    """plain: the default; half and all: encounters 0.5 and 1.0; half_one_worker: 0.5 with one worker; again: a
    0.5 set regenerated over with the default."""
    base = tmp_path_factory.mktemp("encounters")
    roots = {name: base / name for name in ("plain", "half", "all", "half_one_worker", "again")}
    generate(roots["plain"], scale=SCALE, seed=SEED, workers=2, progress=False)
    generate(roots["half"], scale=SCALE, seed=SEED, workers=2, progress=False, encounters=0.5)
    generate(roots["all"], scale=SCALE, seed=SEED, workers=2, progress=False, encounters=1.0)
    generate(roots["half_one_worker"], scale=SCALE, seed=SEED, workers=1, progress=False, encounters=0.5)
    generate(roots["again"], scale=SCALE, seed=SEED, workers=2, progress=False, encounters=0.5)
    generate(roots["again"], scale=SCALE, seed=SEED, workers=2, progress=False)
    return roots


def test_the_default_writes_no_encounters_and_no_exif(sets):
    plain = sets["plain"]
    assert not (plain / "encounters.csv").exists()
    assert all(inspect_image(path).taken == "" for path in (plain / "test").iterdir())
    assert "encounters" not in json.loads((plain / "summary.json").read_text())


def test_a_set_made_over_one_with_encounters_is_byte_for_byte_the_default(sets):
    plain, again = sets["plain"], sets["again"]
    assert not (again / "encounters.csv").exists(), "an earlier set's encounters.csv is not left behind"
    for split in ("train", "test"):
        assert _files(again, split) == _files(plain, split)
    for name in TABLES:
        assert (again / name).read_bytes() == (plain / name).read_bytes(), name


def test_every_encounter_is_one_individual_of_the_test_set(sets):
    for name, share in (("half", 0.5), ("all", 1.0)):
        root = sets[name]
        listed = pd.read_csv(root / "encounters.csv")
        individuals = pd.read_csv(root / "individuals.csv").set_index("Image")["individual"]
        solution = pd.read_csv(root / "solution.csv").set_index("Image")["Id"]
        assert list(listed.columns) == ["Image", "encounter"] and not listed["Image"].duplicated().any()
        assert set(listed["Image"]) <= set(solution.index), "only test photos"
        per_encounter = listed.assign(individual=individuals[listed["Image"]].values).groupby("encounter")
        assert (per_encounter["individual"].nunique() == 1).all(), "an encounter is one whale"
        assert (per_encounter.size() >= 2).all()
        truth = solution[listed["Image"]].groupby(listed["encounter"].values).nunique()
        assert (truth == 1).all(), "and one label in solution.csv"
        test_individuals = individuals[solution.index].value_counts()
        eligible = int((test_individuals >= 2).sum())
        assert listed["encounter"].nunique() == max(1, round(share * eligible))
        summary = json.loads((root / "summary.json").read_text())
        assert summary["encounters"] == listed["encounter"].nunique()
        assert summary["encounter_photos"] == len(listed) and list(summary)[-1] == "seconds"
        if share == 1.0:  # every whale with 2+ test photos: all its test photos, in one encounter
            whole = individuals[solution.index]
            expected = set(whole[whole.isin(test_individuals[test_individuals >= 2].index)].index)
            assert set(listed["Image"]) == expected


def test_every_test_photo_has_an_exif_time_that_regroups_the_listed_encounters(sets):
    root = sets["half"]
    times = pd.DataFrame(
        [
            {"image": path.name, "split": "test", "taken": inspect_image(path).taken}
            for path in sorted((root / "test").iterdir())
        ]
    )
    assert (times["taken"] != "").all()
    listed = pd.read_csv(root / "encounters.csv")
    expected = {frozenset(group["Image"]) for _, group in listed.groupby("encounter")}
    for window in (10, 60, 12 * 60):  # within minutes, or anything under the 14 hours between days
        found = exif_encounters(times, window)
        assert {frozenset(group["image"]) for _, group in found.groupby("encounter")} == expected


def test_pixels_and_every_other_file_are_the_sets_without_encounters(sets):
    plain, half = sets["plain"], sets["half"]
    assert _files(half, "train") == _files(plain, "train")
    for name in TABLES:
        assert (half / name).read_bytes() == (plain / name).read_bytes(), name
    plain_test, half_test = _files(plain, "test"), _files(half, "test")
    assert plain_test.keys() == half_test.keys()
    for name in plain_test:
        assert half_test[name] != plain_test[name], "the EXIF block is new"
        with Image.open(plain / "test" / name) as a, Image.open(half / "test" / name) as b:
            assert np.array_equal(np.asarray(a), np.asarray(b)), name


def test_the_same_seed_gives_the_same_bytes_whatever_the_workers(sets):
    half, other = sets["half"], sets["half_one_worker"]
    assert (half / "encounters.csv").read_bytes() == (other / "encounters.csv").read_bytes()
    assert _files(half, "test") == _files(other, "test")


def test_shares_outside_zero_to_one_are_refused():
    with pytest.raises(ValueError, match="encounters"):
        check_share(1.5)
    with pytest.raises(ValueError, match="encounters"):
        check_share(-0.1)


def test_planning_picks_at_least_one_whale_and_only_whales_with_two_test_photos():
    images = [
        {"split": "test", "ind": 1, "name": "a.jpg"},
        {"split": "test", "ind": 1, "name": "b.jpg"},
        {"split": "test", "ind": 2, "name": "c.jpg"},
        {"split": "train", "ind": 2, "name": "d.jpg"},
    ]
    assert plan_encounters(images, 0.01, 0) == [[0, 1]]
    assert plan_encounters(images, 0.0, 0) == []


def test_the_exif_block_goes_after_the_jfif_header_and_a_non_jpeg_is_refused(tmp_path):
    Image.new("RGB", (16, 8), (10, 20, 30)).save(tmp_path / "x.jpg", quality=90)
    data = (tmp_path / "x.jpg").read_bytes()
    stamped = with_exif_time(data, datetime(2020, 5, 4, 3, 2, 1))
    assert stamped[:4] == data[:4] and stamped.index(b"Exif\x00\x00") > 4
    (tmp_path / "y.jpg").write_bytes(stamped)
    assert inspect_image(tmp_path / "y.jpg").taken == "2020-05-04T03:02:01"
    with pytest.raises(ValueError, match="JPEG"):
        with_exif_time(b"\x89PNG....", datetime(2020, 1, 1))
