"""image_hashes: reduced-scale pHash close to the full-decode pHash, per-photo cache, one new photo costs one hash."""

import imagehash
import numpy as np
import pandas as pd
from PIL import Image

from assets.dedup.phash import (
    HashSettings,
    compute_image_hashes,
    hamming_distance,
    hash_cache,
    hash_file,
    hash_images,
    reduced_vs_full_distances,
)
from assets.ingest.scan import scan_data_folder


def test_hashes_are_64_bit_hex_for_every_accepted_photo(tiny_dataset):
    images, _ = scan_data_folder(tiny_dataset, workers=1)
    table, stats = compute_image_hashes(images, tiny_dataset, cache=None, workers=2)
    assert list(table.columns) == ["image", "split", "content_hash", "phash"]
    assert len(table) == len(images)
    assert table["phash"].str.fullmatch(r"[0-9a-f]{16}").all()
    assert (table["image"].to_numpy() == images["image"].to_numpy()).all()
    # Identical files share a cache key, so they are decoded once.
    assert stats["hashed"] == images["content_hash"].nunique()


def test_reduced_scale_hash_is_close_to_full_decode(tiny_dataset):
    paths = sorted(str(p) for p in (tiny_dataset / "train").glob("*.jpg"))[:40]
    distances = reduced_vs_full_distances(paths, workers=1)
    assert distances.max() <= 6
    assert distances.mean() <= 1.5
    # The full-decode path is imagehash's own pHash of the decoded photo.
    with Image.open(paths[0]) as image:
        assert hash_file(paths[0], reduced=False) == str(imagehash.phash(image))


def test_hamming_distance_counts_differing_bits():
    assert hamming_distance("0000000000000000", "0000000000000000") == 0
    assert hamming_distance("0000000000000000", "ffffffffffffffff") == 64
    assert hamming_distance("00000000000000f1", "0000000000000000") == 5


def test_adding_one_photo_hashes_exactly_that_photo(tiny_dataset_copy, tmp_path):
    root = tiny_dataset_copy
    cache = hash_cache(tmp_path / "cache")
    images, _ = scan_data_folder(root, workers=1)
    first, stats = compute_image_hashes(images, root, cache, workers=2)
    assert stats["from_cache"] == 0
    assert stats["hashed"] + stats["same_content"] == len(images)

    again, stats = compute_image_hashes(images, root, cache, workers=2)
    assert (stats["hashed"], stats["from_cache"], stats["same_content"]) == (0, len(images), 0)
    assert again.equals(first)

    # A new photo: a mirrored copy of a train photo, so its content (and hash) are new.
    source = root / images.loc[images["split"] == "train", "path"].iloc[0]
    with Image.open(source) as image:
        image.transpose(Image.FLIP_LEFT_RIGHT).save(root / "train" / "zz_new_photo.jpg", quality=90)
    with open(root / "train.csv", "a") as handle:
        handle.write("zz_new_photo.jpg,new_whale\n")
    grown, _ = scan_data_folder(root, workers=1)
    assert len(grown) == len(images) + 1
    table, stats = compute_image_hashes(grown, root, cache, workers=2)
    assert stats["hashed"] == 1
    assert stats["from_cache"] == len(images)
    new_row = table[table["image"] == "zz_new_photo.jpg"]
    assert new_row["phash"].iloc[0] == hash_file(str(root / "train" / "zz_new_photo.jpg"))


def test_cache_file_keeps_its_layout(tiny_dataset, tmp_path):
    # Caches written before the stage moved stay valid: same file, same (key, phash) columns.
    images, _ = scan_data_folder(tiny_dataset, workers=1)
    images = images.head(5)
    compute_image_hashes(images, tiny_dataset, hash_cache(tmp_path), workers=1)
    stored = pd.read_parquet(tmp_path / "hashes.parquet")
    assert list(stored.columns) == ["key", "phash"]
    assert len(stored) == images["content_hash"].nunique()


def test_changing_hash_settings_misses_the_cache(tiny_dataset, tmp_path):
    images, _ = scan_data_folder(tiny_dataset, workers=1)
    images = images.head(12)
    cache = hash_cache(tmp_path)
    compute_image_hashes(images, tiny_dataset, cache, workers=1)
    _, stats = compute_image_hashes(images, tiny_dataset, cache, HashSettings(draft_side=64), workers=1)
    assert stats["hashed"] == images["content_hash"].nunique()


def test_full_decode_sample_is_reported_only_when_asked(tiny_dataset):
    images, _ = scan_data_folder(tiny_dataset, workers=1)
    images = images.head(30)
    _, stats = hash_images(images, tiny_dataset, None, HashSettings(), 1, full_decode_sample=0)
    assert stats["reduced_vs_full"] is None
    _, stats = hash_images(images, tiny_dataset, None, HashSettings(), 1, full_decode_sample=10)
    assert len(stats["reduced_vs_full"]) == 10 and stats["reduced_vs_full"].max() <= 6


def test_recompressed_copy_hashes_alike(tmp_path):
    from skimage import data

    photo = tmp_path / "astronaut.jpg"
    Image.fromarray(data.astronaut()).save(photo, quality=95)
    copy = tmp_path / "copy.jpg"
    with Image.open(photo) as image:
        image.resize((256, 256)).save(copy, quality=40)
    assert hamming_distance(hash_file(str(photo)), hash_file(str(copy))) <= 4
    other = tmp_path / "camera.jpg"
    Image.fromarray(np.asarray(data.camera())).save(other, quality=95)
    assert hamming_distance(hash_file(str(photo)), hash_file(str(other))) > 16
