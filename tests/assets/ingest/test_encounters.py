"""Encounters (assets/ingest/encounters.py): encounters.csv puts photos together and every row it cannot use is a
rejected row with its reason; EXIF capture times group consecutive test photos only when the window is on; the
times come from inspection (read once, cached); the data folder's version changes only when encounters are in
use."""

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dagster import instance_for_test, materialize
from PIL import Image

import assets.ingest.inspection as inspection
from assets.ingest.encounters import (
    ENCOUNTER_REASONS,
    SPLIT,
    encounter_counts,
    encounters_version,
    exif_encounters,
    find_encounters,
)
from assets.ingest.inspection import DATE_TIME, DATE_TIME_ORIGINAL, EXIF_IFD, inspect_image, inspection_cache
from assets.ingest.scan import scan_data_folder
from core.artifacts import ENCOUNTER_COLUMNS
from core.resources import FlukeData, FlukeStorage
from pipelines.definitions import chain_part
from pipelines.io_managers import ArtifactIOManager

START = datetime(2019, 7, 1, 8, 0, 0)


def _photo(path: Path, seed: int, taken: datetime | None = None, tag: int = DATE_TIME_ORIGINAL) -> None:
    pixels = np.random.default_rng(seed).integers(0, 255, (40, 60, 3), dtype=np.uint8)
    exif = Image.Exif()
    if taken is not None:
        stamp = taken.strftime("%Y:%m:%d %H:%M:%S")
        if tag == DATE_TIME_ORIGINAL:
            exif.get_ifd(EXIF_IFD)[DATE_TIME_ORIGINAL] = stamp
        else:
            exif[DATE_TIME] = stamp
    Image.fromarray(pixels).save(path, quality=90, exif=exif)


def _folder(root: Path, test_times: dict[str, datetime | None], train=("a.jpg", "b.jpg", "same.jpg")) -> Path:
    for split in ("train", "test"):
        (root / split).mkdir(parents=True)
    for seed, name in enumerate(train):
        _photo(root / "train" / name, seed)
    pd.DataFrame({"Image": list(train), "Id": ["w_1"] * len(train)}).to_csv(root / "train.csv", index=False)
    for seed, (name, taken) in enumerate(test_times.items(), start=10):
        _photo(root / "test" / name, seed, taken)
    return root


def _write(root: Path, text: str) -> None:
    (root / "encounters.csv").write_text(text)


def _scan(root: Path, tmp_path: Path):
    cache = inspection_cache(tmp_path / "inspected.parquet")
    manifest, _ = scan_data_folder(root, cache=cache, workers=1)
    return manifest, cache


def _pairs(table: pd.DataFrame) -> dict[tuple[str, str], str]:
    return {
        (split, image): encounter for image, split, encounter in table[["image", "split", "encounter"]].values
    }


@pytest.fixture
def undated(tmp_path) -> Path:
    return _folder(tmp_path / "data", {name: None for name in ("q1.jpg", "q2.jpg", "q3.jpg", "same.jpg")})


def test_no_file_and_window_off_is_no_encounters(undated, tmp_path):
    manifest, cache = _scan(undated, tmp_path)
    table, rejected = find_encounters(manifest, undated, cache=cache)
    assert list(table.columns) == ENCOUNTER_COLUMNS and table.empty and rejected == []
    assert encounter_counts(table)["encounters"] == 0


def test_the_file_places_photos_and_a_name_means_the_test_photo_unless_a_split_says_train(undated, tmp_path):
    _write(undated, "Image,encounter\nq1.jpg,dive 7\nq2.jpg, dive 7 \nsame.jpg,dive 8\nq3.jpg,dive 8\n")
    manifest, cache = _scan(undated, tmp_path)
    table, rejected = find_encounters(manifest, undated, cache=cache)
    assert rejected == []
    assert _pairs(table) == {
        ("test", "q1.jpg"): "dive 7",
        ("test", "q2.jpg"): "dive 7",  # the id is stripped
        ("test", "same.jpg"): "dive 8",  # in train/ and test/: the test photo
        ("test", "q3.jpg"): "dive 8",
    }
    assert set(table["source"]) == {"file"}
    assert table[["split", "image"]].values.tolist() == sorted(table[["split", "image"]].values.tolist())
    _write(undated, "Image,encounter,split\nsame.jpg,e1,train\na.jpg,e1,\nq1.jpg,e1,test\n")
    table, _ = find_encounters(manifest, undated, cache=cache)
    assert _pairs(table) == {("train", "same.jpg"): "e1", ("train", "a.jpg"): "e1", ("test", "q1.jpg"): "e1"}
    assert encounter_counts(table) == {
        "encounters": 1,
        "encounter_photos": 3,
        "encounters_from_file": 1,
        "encounter_photos_from_file": 3,
        "encounters_from_exif": 0,
        "encounter_photos_from_exif": 0,
    }


def test_rows_it_cannot_use_are_rejected_with_their_reasons_never_fatal(undated, tmp_path):
    _write(
        undated,
        "Image,encounter,split\n"
        "q1.jpg,e1,\n"  # kept
        "q2.jpg,e1,\n"  # kept
        "ghost.jpg,e1,\n"  # no such photo
        "q1.jpg,e1,\n"  # the same row again: harmless, used once
        "a.jpg,e2,test\n"  # a.jpg is a train photo only
        "q3.jpg,,\n"  # no encounter
        "same.jpg,e3,\n"  # then the same photo in another encounter: both rows rejected
        "same.jpg,e4,\n"
        "q3.jpg,e5,validation\n",  # not a split
    )
    manifest, cache = _scan(undated, tmp_path)
    table, rejected = find_encounters(manifest, undated, cache=cache)
    assert _pairs(table) == {("test", "q1.jpg"): "e1", ("test", "q2.jpg"): "e1"}
    found = sorted((row["image"], row["reason"]) for row in rejected)
    assert found == [
        ("a.jpg", "unknown_encounter_photo"),
        ("ghost.jpg", "unknown_encounter_photo"),
        ("q3.jpg", "empty_encounter"),
        ("q3.jpg", "unknown_encounter_photo"),
        ("same.jpg", "conflicting_encounter"),
        ("same.jpg", "conflicting_encounter"),
    ]
    assert {row["split"] for row in rejected} == {SPLIT}
    assert {row["reason"] for row in rejected} <= set(ENCOUNTER_REASONS)
    by_image = {(row["image"], row["reason"]): row["detail"] for row in rejected}
    assert "line 4" in by_image[("ghost.jpg", "unknown_encounter_photo")]
    assert "validation" in by_image[("q3.jpg", "unknown_encounter_photo")]
    assert {row["label"] for row in rejected if row["image"] == "same.jpg"} == {"e3", "e4"}


@pytest.mark.parametrize("content", [b"Image,Id\nq1.jpg,w_1\n", b"", b"Image,encounter\n\xff\xfe\x00q\x81\n"])
def test_a_file_that_is_not_an_encounter_table_is_one_rejected_row(undated, tmp_path, content):
    (undated / "encounters.csv").write_bytes(content)  # another table, an empty file, not text
    manifest, cache = _scan(undated, tmp_path)
    table, rejected = find_encounters(manifest, undated, cache=cache)
    assert table.empty
    assert [(row["image"], row["reason"]) for row in rejected] == [
        ("encounters.csv", "malformed_encounters_file")
    ]


@pytest.fixture
def dated(tmp_path) -> Path:
    """Test photos: p1 p2 p3 within minutes of each other, p4 alone hours later, p5 p6 the next day 20 minutes
    apart, p7 without a date; p3 and p6 are filed in encounters.csv elsewhere (the file wins)."""
    times = {
        "p1.jpg": START,
        "p2.jpg": START + timedelta(minutes=4),
        "p3.jpg": START + timedelta(minutes=9),
        "p4.jpg": START + timedelta(hours=5),
        "p5.jpg": START + timedelta(days=1),
        "p6.jpg": START + timedelta(days=1, minutes=20),
        "p7.jpg": None,
    }
    return _folder(tmp_path / "data", times)


def test_inspection_reads_the_capture_time_with_datetime_as_the_fallback(tmp_path):
    _photo(tmp_path / "original.jpg", 0, START)
    _photo(tmp_path / "datetime.jpg", 1, START + timedelta(seconds=5), tag=DATE_TIME)
    _photo(tmp_path / "none.jpg", 2)
    assert inspect_image(tmp_path / "original.jpg").taken == "2019-07-01T08:00:00"
    assert inspect_image(tmp_path / "datetime.jpg").taken == "2019-07-01T08:00:05"
    assert inspect_image(tmp_path / "none.jpg").taken == ""
    image = Image.new("RGB", (8, 8))
    exif = Image.Exif()
    exif.get_ifd(EXIF_IFD)[DATE_TIME_ORIGINAL] = "0000:00:00 00:00:00"  # what cameras write when unset
    image.save(tmp_path / "blank.jpg", exif=exif)
    report = inspect_image(tmp_path / "blank.jpg")
    assert report.taken == "" and not report.reason


def test_exif_times_group_consecutive_test_photos_only_when_the_window_is_on(dated, tmp_path):
    manifest, cache = _scan(dated, tmp_path)
    off, _ = find_encounters(manifest, dated, cache=cache)
    assert off.empty, "the default window (0) is off"
    table, rejected = find_encounters(manifest, dated, window_minutes=5, cache=cache)
    assert rejected == []
    assert _pairs(table) == {
        ("test", "p1.jpg"): "exif-p1.jpg",
        ("test", "p2.jpg"): "exif-p1.jpg",
        ("test", "p3.jpg"): "exif-p1.jpg",  # 5 minutes after p2: a chain, not 5 minutes from the first
    }
    assert set(table["source"]) == {"exif"}
    wider, _ = find_encounters(manifest, dated, window_minutes=30, cache=cache)
    assert _pairs(wider)[("test", "p5.jpg")] == _pairs(wider)[("test", "p6.jpg")] == "exif-p5.jpg"
    assert ("test", "p4.jpg") not in _pairs(wider), "a photo alone in its window is in no encounter"
    assert ("test", "p7.jpg") not in _pairs(wider), "a photo without a date is in no encounter"


def test_the_file_wins_over_exif_and_exif_groups_what_it_leaves(dated, tmp_path):
    _write(dated, "Image,encounter\np3.jpg,boat\np6.jpg,boat\n")
    manifest, cache = _scan(dated, tmp_path)
    table, _ = find_encounters(manifest, dated, window_minutes=30, cache=cache)
    pairs = _pairs(table)
    assert pairs[("test", "p3.jpg")] == pairs[("test", "p6.jpg")] == "boat"
    assert pairs[("test", "p1.jpg")] == pairs[("test", "p2.jpg")] == "exif-p1.jpg"
    assert ("test", "p5.jpg") not in pairs, "p5 is alone once p6 is filed elsewhere"
    counts = encounter_counts(table)
    assert (counts["encounters"], counts["encounters_from_file"], counts["encounter_photos_from_exif"]) == (
        2,
        1,
        2,
    )


def test_the_times_come_from_the_scans_inspection_cache(dated, tmp_path, monkeypatch):
    manifest, cache = _scan(dated, tmp_path)

    def never(path):
        raise AssertionError(f"{path} opened again")

    monkeypatch.setattr(inspection, "inspect_image", never)
    table, _ = find_encounters(manifest, dated, window_minutes=5, cache=cache, workers=1)
    assert len(table) == 3


def test_exif_grouping_ignores_unparseable_times():
    times = pd.DataFrame(
        {
            "image": ["x.jpg", "y.jpg", "z.jpg"],
            "split": ["test"] * 3,
            "taken": ["2019-07-01T08:00:00", "garbage", "2019-07-01T08:01:00"],
        }
    )
    assert exif_encounters(times, 2)["image"].tolist() == ["x.jpg", "z.jpg"]


def test_the_folder_version_changes_only_when_encounters_are_in_use(undated):
    assert encounters_version("v0", undated) == "v0"
    assert encounters_version("v0", undated, window_minutes=-1) == "v0"
    windowed = encounters_version("v0", undated, window_minutes=10)
    assert windowed != "v0" and windowed != encounters_version("v0", undated, window_minutes=20)
    _write(undated, "Image,encounter\nq1.jpg,e1\n")
    first = encounters_version("v0", undated)
    _write(undated, "Image,encounter\nq1.jpg,e2\n")
    assert first != "v0" and encounters_version("v0", undated) != first


def test_raw_images_carries_the_encounters_and_reports_them(dated, tmp_path):
    _write(dated, "Image,encounter\np3.jpg,boat\np6.jpg,boat\nghost.jpg,boat\n")
    storage = tmp_path / "storage"
    data = FlukeData(data_dir=str(dated), encounter_window_minutes=30)
    resources = {
        "data": data,
        "storage": FlukeStorage(storage_dir=str(storage)),
        "io_manager": ArtifactIOManager(storage_dir=str(storage)),
    }
    with instance_for_test() as instance:
        result = materialize(chain_part("raw_images"), resources=resources, instance=instance)
        assert result.success
        (event,) = result.get_asset_materialization_events()
        metadata = event.materialization.metadata
    assert metadata["encounters"].value == 2 and metadata["encounter_photos"].value == 4
    assert metadata["encounters_from_exif"].value == 1 and metadata["encounter_photos_from_file"].value == 2
    assert metadata["rejected_by_reason"].value == {"unknown_encounter_photo": 1}
    stored = pd.read_parquet(storage / "raw_images" / "encounters.parquet")
    assert list(stored.columns) == ENCOUNTER_COLUMNS
    assert _pairs(stored) == {
        ("test", "p1.jpg"): "exif-p1.jpg",
        ("test", "p2.jpg"): "exif-p1.jpg",
        ("test", "p3.jpg"): "boat",
        ("test", "p6.jpg"): "boat",
    }
    rejected = pd.read_parquet(storage / "raw_images" / "rejected.parquet")
    assert rejected[["image", "split", "reason"]].values.tolist() == [
        ["ghost.jpg", SPLIT, "unknown_encounter_photo"]
    ]


def test_happywhales_lower_case_image_header_is_read_too(undated, tmp_path):
    _write(undated, "image,encounter\nq1.jpg,e1\nq2.jpg,e1\n")
    manifest, cache = _scan(undated, tmp_path)
    table, rejected = find_encounters(manifest, undated, cache=cache)
    assert rejected == [] and _pairs(table) == {("test", "q1.jpg"): "e1", ("test", "q2.jpg"): "e1"}
