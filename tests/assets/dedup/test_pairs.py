"""dedup pairs: faiss candidate search equals brute force; the pixel check tells copies from different photos."""

import itertools

import numpy as np
from PIL import Image

from assets.dedup.pairs import (
    DedupSettings,
    candidate_pairs,
    hashes_to_codes,
    load_thumbnail,
    thumbnail_similarity,
)
from tests.assets.dedup.photos import PHOTOS, photo


def test_candidate_pairs_match_brute_force():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, size=(40, 8), dtype=np.uint8)
    # Near copies: flip a few bits of some codes.
    codes = np.concatenate([base, base[:20] ^ (rng.random((20, 8)) < 0.03).astype(np.uint8)])
    pairs = candidate_pairs(codes, max_distance=10)
    bits = np.unpackbits(codes[:, None, :] ^ codes[None, :, :], axis=2).sum(axis=2)
    expected = {(a, b) for a, b in itertools.combinations(range(len(codes)), 2) if bits[a, b] <= 10}
    assert set(zip(pairs["a"], pairs["b"])) == expected
    assert (pairs["distance"].to_numpy() == [bits[a, b] for a, b in zip(pairs["a"], pairs["b"])]).all()
    assert len(expected) >= 20


def test_different_real_photos_are_not_similar():
    thumbnails = {}
    for name in PHOTOS:
        thumbnails[name] = np.asarray(photo(name).convert("L").resize((64, 64), Image.BILINEAR))
    similarities = [
        thumbnail_similarity(thumbnails[a], thumbnails[b]) for a, b in itertools.combinations(PHOTOS, 2)
    ]
    assert max(similarities) < DedupSettings().min_similarity - 0.2


def test_crop_search_is_what_verifies_a_cropped_copy(real_photo_folder):
    original = load_thumbnail(str(real_photo_folder / "train" / "astronaut.jpg"))
    cropped = load_thumbnail(str(real_photo_folder / "train" / "astronaut_crop.jpg"))
    with_search = thumbnail_similarity(original, cropped)
    without = thumbnail_similarity(original, cropped, DedupSettings(max_crop=0.0))
    assert with_search >= DedupSettings().min_similarity > without


def test_codes_round_trip_hex():
    codes = hashes_to_codes(["00ff00ff00ff00ff", "ffffffffffffffff"])
    assert codes.shape == (2, 8) and codes.dtype == np.uint8
    assert codes[0, 1] == 255 and codes[1].tolist() == [255] * 8
