"""dedup pairs: faiss candidate search equals brute force; the pixel check tells copies from different photos."""

import itertools

import numpy as np
from PIL import Image

from assets.dedup.pairs import (
    DedupSettings,
    batch_similarities,
    candidate_pairs,
    hashes_to_codes,
    load_thumbnail,
    prepare_thumbnail,
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


def test_capped_candidates_keep_each_photos_nearest_and_grow_linearly():
    """With max_neighbours, a crowd of look-alikes (every code within the radius of every other) gives at most
    N x k pairs, and each photo still pairs with its nearest code (its copy)."""
    rng = np.random.default_rng(3)
    crowd = np.repeat(rng.integers(0, 256, size=(1, 8), dtype=np.uint8), 60, axis=0)
    for row in crowd:  # each member differs from the shared code by 6 random bits: all pairs within 12
        flat = np.unpackbits(row)
        flat[rng.choice(64, 6, replace=False)] ^= 1
        row[:] = np.packbits(flat)
    copies = crowd[:10] ^ np.packbits(np.eye(64, dtype=np.uint8)[0])  # one bit from its original
    codes = np.concatenate([crowd, copies])
    every = candidate_pairs(codes, max_distance=12)
    capped = candidate_pairs(codes, max_distance=12, max_neighbours=4)
    assert len(every) > 2000 and len(capped) <= len(codes) * 4
    assert set(zip(capped["a"], capped["b"])) <= set(zip(every["a"], every["b"]))
    assert {(i, 60 + i) for i in range(10)} <= set(zip(capped["a"], capped["b"]))
    assert capped.equals(capped.sort_values(["a", "b"]).reset_index(drop=True))
    # A cap at or above the count of other photos is no cap.
    assert candidate_pairs(codes, 12, max_neighbours=len(codes)).equals(every)


def test_a_chunk_of_pairs_scores_each_pair_as_it_scores_alone(real_photo_folder):
    """The batched pixel check gives every pair the similarity it gets alone, whatever else is in its chunk,
    and the coarse threshold only rejects: a pair below it keeps its no-crop correlation."""
    names = [
        "astronaut.jpg",
        "astronaut_crop.jpg",
        *[f"{name}.jpg" for name in PHOTOS if name != "astronaut"],
    ]
    prepared = {
        i: prepare_thumbnail(load_thumbnail(str(real_photo_folder / "train" / name)))
        for i, name in enumerate(names)
        if (real_photo_folder / "train" / name).exists()
    }
    pairs = list(itertools.combinations(sorted(prepared), 2))
    assert (0, 1) in pairs and len(pairs) >= 6
    settings = DedupSettings()
    together, coarse = batch_similarities(prepared, pairs, settings)
    alone = [batch_similarities({a: prepared[a], b: prepared[b]}, [(a, b)], settings)[0][0] for a, b in pairs]
    np.testing.assert_allclose(together, alone, atol=1e-5)
    assert together[pairs.index((0, 1))] >= settings.min_similarity
    assert (together[1:] < settings.min_similarity).all()
    strict, strict_coarse = batch_similarities(prepared, pairs, DedupSettings(min_coarse=1.0))
    np.testing.assert_allclose(strict_coarse, coarse, atol=1e-6)
    assert strict[pairs.index((0, 1))] < settings.min_similarity <= together[pairs.index((0, 1))]
