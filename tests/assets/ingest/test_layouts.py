"""The 2022 Happywhale layout read as it comes: detected from train.csv's header, photos in train_images/ and
test_images/, `new_individual` read as new_whale, rows of other species rejected unread, and the 2019 layout's
fingerprint left as it was."""

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from assets.ingest.scan import (
    ALL_REASONS,
    data_folder_fingerprint,
    detect_layout,
    read_train_csv,
    scan_data_folder,
    source_counts,
)
from core.constants import NEW_WHALE
from core.formats import HAPPYWHALE, KAGGLE2019
from tests.assets.ingest.test_scan import _jpeg, _opened_files

ROWS_2022 = [
    ("hump_a.jpg", "humpback_whale", "a1b2c3d4e5f6"),
    ("hump_b.jpg", "humpback_whale", "a1b2c3d4e5f6"),
    ("hump_new.jpg", "humpback_whale", "new_individual"),
    ("dolphin.jpg", "bottlenose_dolphin", "0f0f0f0f0f0f"),
    ("beluga.jpg", "beluga", "1e1e1e1e1e1e"),
]


@pytest.fixture
def happywhale_folder(tmp_path) -> Path:
    """A 2022-layout folder: three humpback rows (one `new_individual`), a dolphin and a beluga, two test photos,
    and a `train/` folder of the 2019 layout's that must be ignored."""
    root = tmp_path / "data"
    for folder in ("train_images", "test_images", "train"):
        (root / folder).mkdir(parents=True)
    for seed, (image, _, _) in enumerate(ROWS_2022):
        _jpeg(root / "train_images" / image, seed=seed)
    _jpeg(root / "train_images" / "unlisted.jpg", seed=20)
    _jpeg(root / "test_images" / "query_1.jpg", seed=21)
    _jpeg(root / "test_images" / "query_2.jpg", seed=22)
    _jpeg(root / "train" / "stray.jpg", seed=23)
    pd.DataFrame(ROWS_2022, columns=["image", "species", "individual_id"]).to_csv(
        root / "train.csv", index=False
    )
    return root


def test_the_layout_is_detected_from_the_header(happywhale_folder, tmp_path):
    assert detect_layout(happywhale_folder / "train.csv") is HAPPYWHALE
    old = tmp_path / "old.csv"
    old.write_text("Image,Id\na.jpg,w_1\n")
    assert detect_layout(old) is KAGGLE2019


@pytest.mark.parametrize(
    "header", ["image,individual_id", "Image,species,Id", "image,Species,individual_id", ""]
)
def test_a_header_of_neither_layout_is_an_error_naming_both(tmp_path, header):
    (tmp_path / "train.csv").write_text(f"{header}\na.jpg,w_1\n" if header else "")
    for read in (detect_layout, read_train_csv):
        with pytest.raises(ValueError, match="'Image,Id' .* or 'image,species,individual_id'"):
            read(tmp_path / "train.csv")


def test_a_2022_folder_is_read_with_its_folders_and_words(happywhale_folder):
    stats: dict = {}
    manifest, rejected = scan_data_folder(happywhale_folder, workers=1, stats=stats)
    rows = manifest.set_index("image")
    assert sorted(rows.index) == ["hump_a.jpg", "hump_b.jpg", "hump_new.jpg", "query_1.jpg", "query_2.jpg"]
    # The split is the chain's word; the path is the photo's real folder, which every stage opens under the root.
    assert rows.loc["hump_a.jpg", ["split", "path"]].tolist() == ["train", "train_images/hump_a.jpg"]
    assert rows.loc["query_1.jpg", ["split", "path"]].tolist() == ["test", "test_images/query_1.jpg"]
    assert all((happywhale_folder / path).is_file() for path in manifest["path"])
    assert rows.loc["hump_new.jpg", "label"] == NEW_WHALE  # new_individual, read as the chain's word
    assert rows.loc["hump_a.jpg", "label"] == "a1b2c3d4e5f6"
    assert stats["source"] == {"layout": "happywhale", "species": "humpback_whale"}
    reasons = dict(zip(rejected["image"], rejected["reason"]))
    # train/ is not a folder of this layout: its photo is neither read nor reported.
    assert reasons == {
        "dolphin.jpg": "other_species",
        "beluga.jpg": "other_species",
        "unlisted.jpg": "not_in_train_csv",
    }
    assert set(rejected["reason"]) <= ALL_REASONS
    unlisted = rejected.set_index("image").loc["unlisted.jpg", "detail"]
    assert "train_images/" in unlisted


def test_rows_of_other_species_are_rejected_with_their_reason_and_never_opened(
    happywhale_folder, monkeypatch
):
    opened = _opened_files(monkeypatch)
    _, rejected = scan_data_folder(happywhale_folder, workers=1)
    others = rejected[rejected["reason"] == "other_species"].set_index("image")
    assert others["label"].to_dict() == {"dolphin.jpg": "0f0f0f0f0f0f", "beluga.jpg": "1e1e1e1e1e1e"}
    assert others.loc["dolphin.jpg", "detail"].startswith("train.csv line 5: species bottlenose_dolphin")
    assert (others["split"] == "train").all()
    train_images = happywhale_folder.resolve() / "train_images"
    assert str(train_images / "hump_a.jpg") in opened  # the spy sees the photos that are read
    assert not {str(train_images / "dolphin.jpg"), str(train_images / "beluga.jpg")} & opened
    assert source_counts({"layout": "happywhale", "species": "humpback_whale"}, rejected) == {
        "layout": "happywhale",
        "species": "humpback_whale",
        "rejected_other_species": 2,
    }


def test_the_species_setting_chooses_whose_rows_are_used(happywhale_folder):
    every, rejected = scan_data_folder(happywhale_folder, workers=1, species="")
    assert {"dolphin.jpg", "beluga.jpg", "hump_a.jpg"} <= set(every["image"])
    assert "other_species" not in set(rejected["reason"])
    stats: dict = {}
    belugas, _ = scan_data_folder(happywhale_folder, workers=1, species="beluga", stats=stats)
    assert belugas.loc[belugas["split"] == "train", "image"].tolist() == ["beluga.jpg"]
    assert stats["source"] == {"layout": "happywhale", "species": "beluga"}


def test_a_2019_folder_reports_its_layout_and_ignores_the_species_setting(tmp_path):
    root = tmp_path / "data"
    (root / "train").mkdir(parents=True)
    _jpeg(root / "train" / "a.jpg", seed=1)
    (root / "train.csv").write_text("Image,Id\na.jpg,w_1\n")
    stats: dict = {}
    manifest, _ = scan_data_folder(root, workers=1, stats=stats, species="beluga")
    assert manifest["path"].tolist() == ["train/a.jpg"]
    assert stats["source"] == {"layout": "kaggle2019", "species": ""}
    assert source_counts(None, pd.DataFrame({"reason": []}))["layout"] == "kaggle2019"  # an older artifact


def _fixed_2019_folder(root: Path) -> None:
    """A 2019 folder whose names, sizes and modification times are fixed, so its fingerprint is known."""
    for folder in ("train", "test", "annotations"):
        (root / folder).mkdir(parents=True)
    (root / "train.csv").write_text("Image,Id\na.jpg,w_1\nb.jpg,new_whale\n")
    (root / "annotations" / "boxes.csv").write_text("Image,x0,y0,x1,y1\na.jpg,1,2,3,4\n")
    for relative, size in (("train/a.jpg", 10), ("train/b.jpg", 20), ("test/c.jpg", 30)):
        (root / relative).write_bytes(b"x" * size)
        os.utime(root / relative, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))


def test_the_2019_fingerprint_is_the_one_it_always_was(tmp_path):
    # The values the fingerprint had before the 2022 layout (computed with that code on this folder): a 2019
    # folder observed after the change is not seen as changed.
    _fixed_2019_folder(tmp_path / "data")
    assert data_folder_fingerprint(tmp_path / "data") == "c23ac8188a7d7cb724ff"
    assert data_folder_fingerprint(tmp_path / "data", True) == "07a70be2b9add992fe2d"
    assert data_folder_fingerprint(tmp_path / "data", species="humpback_whale") == "c23ac8188a7d7cb724ff"
    assert data_folder_fingerprint(tmp_path / "data", species="") != "c23ac8188a7d7cb724ff"


def test_the_fingerprint_covers_the_2022_folders_and_the_species(happywhale_folder):
    first = data_folder_fingerprint(happywhale_folder)
    assert data_folder_fingerprint(happywhale_folder, species="beluga") != first
    _jpeg(happywhale_folder / "test_images" / "query_3.jpg", seed=30)
    second = data_folder_fingerprint(happywhale_folder)
    assert second != first
    _jpeg(happywhale_folder / "train_images" / "hump_a.jpg", seed=31)  # rewritten in place
    assert data_folder_fingerprint(happywhale_folder) != second


def test_raw_images_names_its_source_and_counts_the_other_species(happywhale_folder, tmp_path):
    from dagster import instance_for_test, materialize

    from core.resources import FlukeData, FlukeStorage
    from pipelines.definitions import chain_part
    from pipelines.io_managers import ArtifactIOManager

    storage = tmp_path / "storage"
    resources = {
        "data": FlukeData(data_dir=str(happywhale_folder)),
        "storage": FlukeStorage(storage_dir=str(storage)),
        "io_manager": ArtifactIOManager(storage_dir=str(storage)),
    }
    with instance_for_test() as instance:
        result = materialize(chain_part("raw_images"), resources=resources, instance=instance)
    assert result.success
    (event,) = result.get_asset_materialization_events()
    metadata = {key: value.value for key, value in event.materialization.metadata.items()}
    assert (metadata["layout"], metadata["species"], metadata["rejected_other_species"]) == (
        "happywhale",
        "humpback_whale",
        2,
    )
    assert metadata["train_images"] == 3 and metadata["test_images"] == 2
    assert json.loads((storage / "raw_images" / "source.json").read_text()) == {
        "layout": "happywhale",
        "species": "humpback_whale",
    }
    images = pd.read_parquet(storage / "raw_images" / "images.parquet")
    assert images["path"].str.match(r"^(train|test)_images/").all()
