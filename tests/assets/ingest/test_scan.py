"""Scanning the data folder: every bad-input kind gets its reason, good photos (converted where they need it) their
manifest row, raw files stay untouched."""

import hashlib
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from assets.ingest.inspection import inspection_cache
from assets.ingest.scan import (
    ALL_REASONS,
    converted_counts,
    data_folder_fingerprint,
    label_statistics,
    read_train_csv,
    safe_name,
    scan_data_folder,
    well_formed_counts,
)
from core.artifacts import IMAGE_COLUMNS, REJECTED_COLUMNS


def _jpeg(path: Path, size=(320, 200), mode="RGB", seed=0, **save_kwargs) -> bytes:
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "L": 1, "CMYK": 4}[mode]
    pixels = rng.integers(0, 255, size=(size[1], size[0], channels), dtype=np.uint8)
    image = Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode=mode)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85, **save_kwargs)
    path.write_bytes(buffer.getvalue())
    return buffer.getvalue()


@pytest.fixture
def bad_corpus(tmp_path) -> Path:
    """A Kaggle-layout folder holding one file or CSV row of every bad-input kind, next to good photos."""
    root = tmp_path / "data"
    (root / "train").mkdir(parents=True)
    (root / "test").mkdir()
    train = root / "train"
    _jpeg(train / "good_rgb.jpg", seed=1)
    _jpeg(train / "good_gray.jpg", mode="L", seed=2)
    _jpeg(train / "good_again.jpg", seed=3)
    (train / "zero.jpg").write_bytes(b"")
    (train / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg" * 20)
    full = _jpeg(train / "truncated.jpg", size=(640, 480), seed=4)
    (train / "truncated.jpg").write_bytes(full[: len(full) // 2])
    # Decodable once converted: accepted, with what was converted.
    Image.fromarray(np.zeros((60, 80, 3), np.uint8)).save(train / "png_inside.jpg", format="PNG")
    _jpeg(train / "cmyk.jpg", mode="CMYK", seed=5)
    Image.fromarray(np.full((60, 80), 40000, np.uint16)).save(train / "sixteen_bit.jpg", format="PNG")
    Image.fromarray(np.arange(60 * 80, dtype=np.uint8).reshape(60, 80)).convert("P").save(
        train / "palette.jpg", format="PNG"
    )
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    _jpeg(train / "rotated.jpg", seed=6, exif=exif.tobytes())
    _jpeg(root / "test" / "test_cmyk.jpg", mode="CMYK", seed=12)
    Image.fromarray(np.zeros((60, 80, 3), np.uint8)).save(root / "test" / "test_photo.png")
    (train / "folder.jpg").mkdir()  # listed, but not a file
    Image.new("L", (7000, 6000), 128).save(train / "bomb.jpg", format="JPEG", quality=50)
    _jpeg(train / "unlisted.jpg", seed=7)
    _jpeg(train / "empty_label.jpg", seed=8)
    _jpeg(train / "bad_label.jpg", seed=9)
    _jpeg(train / "conflict.jpg", seed=10)
    _jpeg(root / "test" / "test_good.jpg", seed=11)
    (root / "test" / "notes.txt").write_text("not a photo")
    (tmp_path / "outside.jpg").write_bytes(full)
    rows = [
        ("good_rgb.jpg", "w_0000001"),
        ("good_gray.jpg", "new_whale"),
        ("good_again.jpg", "w_0000001"),
        ("good_again.jpg", "w_0000001"),  # repeated row, same label
        ("zero.jpg", "w_0000002"),
        ("corrupt.jpg", "w_0000002"),
        ("truncated.jpg", "w_0000002"),
        ("png_inside.jpg", "w_0000002"),
        ("cmyk.jpg", "w_0000002"),
        ("sixteen_bit.jpg", "w_0000002"),
        ("rotated.jpg", "w_0000002"),
        ("palette.jpg", "w_0000002"),
        ("folder.jpg", "w_0000002"),
        ("bomb.jpg", "w_0000002"),
        ("missing.jpg", "w_0000003"),
        ("empty_label.jpg", ""),
        ("bad_label.jpg", "w 12,3"),
        ("conflict.jpg", "w_0000004"),
        ("conflict.jpg", "w_0000005"),
        ("../outside.jpg", "w_0000006"),
        ("/etc/passwd", "w_0000006"),
    ]
    pd.DataFrame(rows, columns=["Image", "Id"]).to_csv(root / "train.csv", index=False)
    return root


def _tree_state(root: Path) -> dict[str, tuple[str, int]]:
    return {
        str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_every_bad_input_kind_is_rejected_with_its_reason(bad_corpus):
    manifest, rejected = scan_data_folder(bad_corpus, workers=1)
    reasons = {(row.image, row.reason) for row in rejected.itertuples()}
    expected = {
        ("zero.jpg", "zero_bytes"),
        ("corrupt.jpg", "corrupt_image"),
        ("truncated.jpg", "truncated_image"),
        ("folder.jpg", "not_a_file"),
        ("bomb.jpg", "decompression_bomb"),
        ("missing.jpg", "missing_file"),
        ("unlisted.jpg", "not_in_train_csv"),
        ("empty_label.jpg", "empty_label"),
        ("bad_label.jpg", "malformed_label"),
        ("good_again.jpg", "duplicate_row"),
        ("conflict.jpg", "conflicting_labels"),
        ("../outside.jpg", "unsafe_path"),
        ("/etc/passwd", "unsafe_path"),
        ("notes.txt", "not_a_photo"),
    }
    assert expected <= reasons, expected - reasons
    assert set(rejected["reason"]) <= ALL_REASONS, "every reason is declared"
    assert list(manifest.columns) == IMAGE_COLUMNS and list(rejected.columns) == REJECTED_COLUMNS
    assert rejected["detail"].str.len().gt(0).all(), "every rejection explains itself"
    assert set(manifest["image"]) == {
        "good_rgb.jpg",
        "good_gray.jpg",
        "good_again.jpg",
        "test_good.jpg",
    } | set(CONVERTED)
    # Nothing is lost: every file on disk and every CSV row is either accepted or rejected.
    on_disk = {p.name for p in (bad_corpus / "train").iterdir()} | {
        p.name for p in (bad_corpus / "test").iterdir()
    }
    assert on_disk <= set(manifest["image"]) | set(rejected["image"])


# The photos of `bad_corpus` that decode once converted, and what `converted` says of each.
CONVERTED = {
    "png_inside.jpg": "png",
    "cmyk.jpg": "cmyk",
    "sixteen_bit.jpg": "png+16-bit",
    "palette.jpg": "png+palette",
    "rotated.jpg": "exif-rotation",
    "test_cmyk.jpg": "cmyk",
    "test_photo.png": "png",
}


def test_decodable_photos_are_converted_not_rejected(bad_corpus):
    manifest, rejected = scan_data_folder(bad_corpus, workers=1)
    rows = manifest.set_index("image")
    assert rows["converted"].to_dict() == {
        **{name: "" for name in rows.index if name not in CONVERTED},
        **CONVERTED,
    }
    assert not set(CONVERTED) & set(rejected["image"])
    # Sizes are the photo's upright: the EXIF-rotated one is stored 320 x 200 and shown 200 x 320.
    assert (rows.loc["rotated.jpg", "width"], rows.loc["rotated.jpg", "height"]) == (200, 320)
    assert rows.loc["cmyk.jpg", "mode"] == "CMYK" and rows.loc["sixteen_bit.jpg", "mode"] == "I;16"
    assert bool(rows.loc["sixteen_bit.jpg", "is_grayscale"]) and bool(rows.loc["palette.jpg", "is_grayscale"])
    assert converted_counts(manifest) == {
        "png": 4,
        "cmyk": 2,
        "16-bit": 1,
        "palette": 1,
        "exif-rotation": 1,
    }


def test_accepted_rows_carry_size_mode_and_content_hash(bad_corpus):
    manifest, _ = scan_data_folder(bad_corpus, workers=1)
    gray = manifest.set_index("image").loc["good_gray.jpg"]
    assert (gray["width"], gray["height"], gray["mode"]) == (320, 200, "L")
    assert bool(gray["is_grayscale"]) and gray["label"] == "new_whale" and gray["split"] == "train"
    assert (
        gray["content_hash"] == hashlib.sha256((bad_corpus / "train/good_gray.jpg").read_bytes()).hexdigest()
    )
    test_row = manifest.set_index("image").loc["test_good.jpg"]
    assert test_row["split"] == "test" and test_row["label"] is None
    assert not bool(manifest.set_index("image").loc["good_rgb.jpg", "is_grayscale"])


def test_raw_files_are_never_modified(bad_corpus):
    before = _tree_state(bad_corpus)
    scan_data_folder(bad_corpus, workers=2)
    assert _tree_state(bad_corpus) == before


def test_missing_train_csv_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="train.csv"):
        read_train_csv(tmp_path / "train.csv")


def test_wrong_header_is_a_clear_error(tmp_path):
    (tmp_path / "train.csv").write_text("file,label\na.jpg,w_1\n")
    with pytest.raises(ValueError, match="Image,Id"):
        read_train_csv(tmp_path / "train.csv")


@pytest.mark.parametrize(
    "name, ok",
    [
        ("a.jpg", True),
        ("../a.jpg", False),
        ("/abs.jpg", False),
        ("sub/a.jpg", False),
        ("C:\\x.jpg", False),
        ("..", False),
        ("", False),
        ("a..b.jpg", True),
    ],
)
def test_safe_name(name, ok):
    assert safe_name(name) is ok


def test_label_statistics_on_a_known_table():
    manifest = pd.DataFrame(
        {
            "split": ["train"] * 6 + ["test"] * 2,
            "label": ["new_whale", "new_whale", "w_a", "w_a", "w_a", "w_b", None, None],
            "is_grayscale": [True, False, True, False, True, False, True, True],
        }
    )
    stats = label_statistics(manifest)
    assert stats["train_images"] == 6 and stats["test_images"] == 2
    assert stats["individuals"] == 2 and stats["singleton_individuals"] == 1
    assert stats["new_whale_share"] == pytest.approx(2 / 6, abs=1e-4)
    assert stats["max_images_per_individual"] == 3
    assert stats["grayscale_share"] == pytest.approx(5 / 8)


def test_fingerprint_changes_when_photos_change_and_only_then(bad_corpus):
    first = data_folder_fingerprint(bad_corpus)
    assert data_folder_fingerprint(bad_corpus) == first
    _jpeg(bad_corpus / "test" / "new_photo.jpg", seed=99)
    second = data_folder_fingerprint(bad_corpus)
    assert second != first
    (bad_corpus / "test" / "new_photo.jpg").unlink()
    assert data_folder_fingerprint(bad_corpus) == first
    with open(bad_corpus / "train.csv", "a") as handle:
        handle.write("good_rgb2.jpg,w_0000009\n")
    assert data_folder_fingerprint(bad_corpus) != first


def test_inspection_cache_opens_only_new_or_changed_files(bad_corpus, tmp_path):
    cache = inspection_cache(tmp_path / "inspected.parquet")
    stats: dict = {}
    first = scan_data_folder(bad_corpus, workers=1, cache=cache, stats=stats)
    assert stats["from_cache"] == 0 and stats["inspected"] > 10
    again = scan_data_folder(bad_corpus, workers=1, cache=cache, stats=stats)
    assert stats["inspected"] == 1  # the listed-but-missing file is never cached: it is checked every time
    pd.testing.assert_frame_equal(first[0], again[0])
    pd.testing.assert_frame_equal(first[1], again[1])
    _jpeg(bad_corpus / "test" / "arrived.jpg", seed=42)
    _jpeg(bad_corpus / "train" / "good_rgb.jpg", seed=43)  # rewritten in place
    manifest, _ = scan_data_folder(bad_corpus, workers=1, cache=cache, stats=stats)
    assert stats["inspected"] == 3
    rewritten = manifest.set_index("image").loc["good_rgb.jpg", "content_hash"]
    assert rewritten == hashlib.sha256((bad_corpus / "train/good_rgb.jpg").read_bytes()).hexdigest()


def test_well_formed_counts_find_repeated_names_and_unlabelled_train_photos(bad_corpus):
    manifest, _ = scan_data_folder(bad_corpus, workers=1)
    assert well_formed_counts(manifest) == {
        "repeated_names": 0,
        "unlabelled_train": 0,
        "accepted": 4 + len(CONVERTED),
    }
    first_train = manifest[manifest["split"] == "train"].head(1)
    broken = pd.concat([manifest, first_train.assign(label=None)], ignore_index=True)
    counts = well_formed_counts(broken)
    assert counts["repeated_names"] == 1 and counts["unlabelled_train"] == 1


@pytest.fixture
def linked_corpus(tmp_path) -> Path:
    """A data folder whose photos include symlinks: out of the folder (to a photo and to a non-photo file), and
    inside it (a test photo linked from train)."""
    root, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    for folder in (root / "train", root / "test", elsewhere):
        folder.mkdir(parents=True)
    _jpeg(root / "train" / "plain.jpg", seed=1)
    _jpeg(elsewhere / "else.jpg", seed=2)
    (elsewhere / "hostname").write_text("a-host\n")
    (root / "train" / "x.jpg").symlink_to(elsewhere / "else.jpg")
    (root / "train" / "y.jpg").symlink_to(elsewhere / "hostname")
    _jpeg(root / "test" / "t.jpg", seed=3)
    (root / "train" / "inside.jpg").symlink_to(Path("..") / "test" / "t.jpg")
    (root / "test" / "out.jpg").symlink_to(elsewhere / "else.jpg")
    rows = [("plain.jpg", "w_1"), ("x.jpg", "w_1"), ("y.jpg", "w_2"), ("inside.jpg", "w_2")]
    pd.DataFrame(rows, columns=["Image", "Id"]).to_csv(root / "train.csv", index=False)
    return root


def _opened_files(monkeypatch) -> set[str]:
    """Every file opened through `open` from now on (Pillow and pathlib both go through it), resolved."""
    import builtins
    import io as io_module
    import os

    opened: set[str] = set()
    real_open = builtins.open

    def spy(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)):
            opened.add(os.path.realpath(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spy)
    monkeypatch.setattr(io_module, "open", spy)
    return opened


def test_symlinks_out_of_the_data_folder_are_rejected_unopened(linked_corpus, monkeypatch):
    opened = _opened_files(monkeypatch)
    manifest, rejected = scan_data_folder(linked_corpus, workers=1)
    outside = rejected[rejected["reason"] == "outside_data_folder"]
    assert sorted(zip(outside["split"], outside["image"])) == [
        ("test", "out.jpg"),
        ("train", "x.jpg"),
        ("train", "y.jpg"),
    ]
    assert outside["detail"].str.contains("outside the data folder").all()
    assert outside.set_index("image").loc["x.jpg", "label"] == "w_1"
    # Neither target was read or hashed: nothing outside the data folder was opened at all.
    elsewhere = str(linked_corpus.parent.resolve() / "elsewhere")
    assert not [path for path in opened if path.startswith(elsewhere)], opened
    assert str((linked_corpus / "train" / "plain.jpg").resolve()) in opened  # the spy does see reads
    # A link that stays inside the folder is an ordinary photo.
    assert set(manifest["image"]) == {"plain.jpg", "inside.jpg", "t.jpg"}


def test_outside_links_are_used_when_the_user_opts_in(linked_corpus):
    manifest, rejected = scan_data_folder(linked_corpus, workers=1, allow_outside_links=True)
    assert "outside_data_folder" not in set(rejected["reason"])
    rows = manifest.set_index(["split", "image"])
    target = linked_corpus.parent / "elsewhere" / "else.jpg"
    assert rows.loc[("train", "x.jpg"), "content_hash"] == hashlib.sha256(target.read_bytes()).hexdigest()
    assert ("test", "out.jpg") in rows.index
    # The linked non-photo is now opened, and rejected for what it is.
    assert rejected.set_index("image").loc["y.jpg", "reason"] == "corrupt_image"
    # Opting in changes the data folder's version (what is accepted changes); not opting in leaves it alone.
    assert data_folder_fingerprint(linked_corpus, allow_outside_links=True) != data_folder_fingerprint(
        linked_corpus
    )


def test_a_split_folder_linked_from_elsewhere_counts_as_outside(tmp_path):
    root, elsewhere = tmp_path / "data", tmp_path / "photos"
    (root / "train").mkdir(parents=True)
    elsewhere.mkdir()
    _jpeg(elsewhere / "t.jpg", seed=1)
    (root / "test").symlink_to(elsewhere)
    pd.DataFrame(columns=["Image", "Id"]).to_csv(root / "train.csv", index=False)
    manifest, rejected = scan_data_folder(root, workers=1)
    assert manifest.empty and rejected["reason"].tolist() == ["outside_data_folder"]
    assert scan_data_folder(root, workers=1, allow_outside_links=True)[0]["image"].tolist() == ["t.jpg"]


def test_a_fifo_listed_as_a_photo_is_rejected_without_blocking(tmp_path):
    import os
    import threading

    root = tmp_path / "data"
    (root / "train").mkdir(parents=True)
    fifo = root / "train" / "pipe.jpg"
    os.mkfifo(fifo)
    pd.DataFrame([("pipe.jpg", "w_1")], columns=["Image", "Id"]).to_csv(root / "train.csv", index=False)
    found: dict = {}
    worker = threading.Thread(target=lambda: found.update(result=scan_data_folder(root, workers=1)))
    worker.start()
    worker.join(timeout=30)
    if worker.is_alive():  # it opened the FIFO and waits for a writer: unblock it, then fail
        with open(fifo, "wb"):
            pass
        worker.join()
        pytest.fail("the scan opened a FIFO")
    assert found["result"][1]["reason"].tolist() == ["not_a_file"]
