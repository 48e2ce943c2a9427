"""The Happywhale layout of a generated set (synth/layouts.py): for the same seed, the same photos and labels as
the 2019 layout, written in the 2022 competition's files and folders, plus train rows of other species with
photos of their own; one layout written over the other leaves nothing of it behind. Two very small sets (scale
0.0005, about 45 photos each) are generated and compared byte for byte."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from core.constants import NEW_WHALE
from core.formats import HUMPBACK, NEW_INDIVIDUAL
from synth import generate
from synth.layouts import OTHER_SPECIES, OTHER_SPECIES_SHARE

SCALE, SEED = 0.0005, 5
# Tables with the same bytes in both layouts (the ground truth beside the label files).
SAME_TABLES = ["aliases.csv", "duplicates.csv", "annotations/boxes.csv"]


def _photos(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def both(tmp_path_factory) -> tuple[Path, Path, dict, dict]:
    base = tmp_path_factory.mktemp("layouts")
    old = generate(base / "kaggle2019", scale=SCALE, seed=SEED, workers=2, progress=False)
    new = generate(
        base / "happywhale", scale=SCALE, seed=SEED, workers=2, progress=False, layout="happywhale"
    )
    return base / "kaggle2019", base / "happywhale", old, new


def test_the_happywhale_set_has_the_2022_files_and_folders(both):
    _, root, _, summary = both
    assert (root / "train_images").is_dir() and (root / "test_images").is_dir()
    assert not (root / "train").exists() and not (root / "test").exists()
    assert (root / "train.csv").read_text().splitlines()[0] == "image,species,individual_id"
    assert (root / "solution.csv").read_text().splitlines()[0] == "image,individual_id"
    assert (root / "sample_submission.csv").read_text().splitlines()[0] == "image,predictions"
    train = pd.read_csv(root / "train.csv")
    assert sorted(train["image"]) == sorted(_photos(root / "train_images"))  # every row has its photo
    assert NEW_WHALE not in set(train["individual_id"]) and NEW_INDIVIDUAL in set(train["individual_id"])
    sample = pd.read_csv(root / "sample_submission.csv")
    assert sample["predictions"].str.split(" ").map(len).eq(5).all()
    assert sample["predictions"].str.startswith(f"{NEW_INDIVIDUAL} ").all()
    assert json.loads((root / "summary.json").read_text())["layout"] == "happywhale" == summary["layout"]


def test_the_same_seed_gives_the_same_humpbacks_in_both_layouts(both):
    old_root, new_root, old, new = both
    train_2019, train_2022 = pd.read_csv(old_root / "train.csv"), pd.read_csv(new_root / "train.csv")
    humpbacks = train_2022[train_2022["species"] == HUMPBACK]
    assert humpbacks["image"].tolist() == train_2019["Image"].tolist()
    assert humpbacks["individual_id"].replace(NEW_INDIVIDUAL, NEW_WHALE).tolist() == train_2019["Id"].tolist()
    solution_2019, solution_2022 = (
        pd.read_csv(old_root / "solution.csv"),
        pd.read_csv(new_root / "solution.csv"),
    )
    assert solution_2022["image"].tolist() == solution_2019["Image"].tolist()
    assert (
        solution_2022["individual_id"].replace(NEW_INDIVIDUAL, NEW_WHALE).tolist()
        == solution_2019["Id"].tolist()
    )
    sample_2019 = pd.read_csv(old_root / "sample_submission.csv")
    sample_2022 = pd.read_csv(new_root / "sample_submission.csv")
    assert (
        sample_2022["predictions"].str.replace(NEW_INDIVIDUAL, NEW_WHALE).tolist()
        == sample_2019["Id"].tolist()
    )
    # Photo for photo the same bytes: test photos all, train photos all but the other species'.
    assert _photos(new_root / "test_images") == _photos(old_root / "test")
    train_photos = _photos(new_root / "train_images")
    assert {name: train_photos[name] for name in humpbacks["image"]} == _photos(old_root / "train")
    for name in SAME_TABLES:
        assert (new_root / name).read_bytes() == (old_root / name).read_bytes(), name
    boxes_2019, boxes_2022 = pd.read_csv(old_root / "boxes.csv"), pd.read_csv(new_root / "boxes.csv")
    pd.testing.assert_frame_equal(
        boxes_2022[boxes_2022["Image"].isin(boxes_2019["Image"])].reset_index(drop=True), boxes_2019
    )
    # The summary describes the humpbacks: the same figures, plus the layout and the other species.
    drop = {"out_dir", "seconds", "layout", "other_species_train", "other_species"}
    assert {k: v for k, v in new.items() if k not in drop} == {k: v for k, v in old.items() if k not in drop}
    assert "layout" not in old and "other_species_train" not in old  # the 2019 summary keeps its keys


def test_other_species_have_rows_ids_and_photos_of_their_own(both):
    old_root, new_root, old, new = both
    train = pd.read_csv(new_root / "train.csv")
    others = train[train["species"] != HUMPBACK]
    assert set(others["species"]) == set(OTHER_SPECIES)
    assert (
        len(others) == new["other_species_train"] == max(2, round(OTHER_SPECIES_SHARE * old["train_images"]))
    )
    assert new["other_species"] == others["species"].value_counts().to_dict()
    humpback_ids = set(train.loc[train["species"] == HUMPBACK, "individual_id"])
    assert not set(others["individual_id"]) & humpback_ids
    all_2019 = set(_photos(old_root / "train")) | set(_photos(old_root / "test"))
    assert not set(others["image"]) & all_2019
    photos = _photos(new_root / "train_images")
    assert all(photos[name][:2] == b"\xff\xd8" for name in others["image"])  # real JPEG photos
    # Their photos are in the truth tables of every photo, like any other.
    assert set(others["image"]) <= set(pd.read_csv(new_root / "boxes.csv")["Image"])
    assert set(others["image"]) <= set(pd.read_csv(new_root / "images.csv")["Image"])


def test_one_layout_written_over_the_other_leaves_nothing_of_it(tmp_path):
    root = tmp_path / "data"
    generate(root, scale=SCALE, seed=SEED, workers=1, progress=False, layout="happywhale")
    generate(root, scale=SCALE, seed=SEED + 1, workers=1, progress=False)
    assert not (root / "train_images").exists() and not (root / "test_images").exists()
    assert sorted(_photos(root / "train")) == sorted(pd.read_csv(root / "train.csv")["Image"])
    generate(root, scale=SCALE, seed=SEED, workers=1, progress=False, layout="happywhale")
    assert not (root / "train").exists() and not (root / "test").exists()
    assert sorted(_photos(root / "train_images")) == sorted(pd.read_csv(root / "train.csv")["image"])


def test_an_unknown_layout_and_foreign_2022_folders_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown layout 'kaggle2022'"):
        generate(tmp_path / "x", scale=SCALE, seed=SEED, workers=1, progress=False, layout="kaggle2022")
    assert not (tmp_path / "x").exists()  # refused before anything is written
    (tmp_path / "y" / "train_images").mkdir(parents=True)
    (tmp_path / "y" / "train_images" / "mine.jpg").write_bytes(b"x")
    with pytest.raises(FileExistsError):
        generate(tmp_path / "y", scale=SCALE, seed=SEED, workers=1, progress=False, layout="happywhale")
