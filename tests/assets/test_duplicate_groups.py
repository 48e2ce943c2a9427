"""duplicate_groups: faiss candidate search, pixel verification, groups, aliases, test matches, truth scores."""

import itertools

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from assets.duplicate_groups import (
    DedupSettings,
    candidate_pairs,
    duplicate_groups_aliases_recorded,
    find_duplicates,
    hashes_to_codes,
    load_thumbnail,
    precision_recall,
    thumbnail_similarity,
)
from assets.image_hashes import compute_image_hashes
from assets.raw_images import scan_data_folder

PHOTOS = ("astronaut", "camera", "coffee", "chelsea", "rocket", "horse", "clock", "moon")


def _photo(name: str) -> Image.Image:
    from skimage import data

    pixels = getattr(data, name)()
    if pixels.dtype != np.uint8:
        pixels = (pixels * 255).astype(np.uint8) if pixels.max() <= 1 else pixels.astype(np.uint8)
    return Image.fromarray(pixels).convert("RGB")


def _crop(image: Image.Image, left: float, top: float, right: float, bottom: float) -> Image.Image:
    w, h = image.size
    return image.crop((round(left * w), round(top * h), round(w * (1 - right)), round(h * (1 - bottom))))


def _variants(image: Image.Image) -> dict[str, Image.Image]:
    """Re-encoded, resized and slightly cropped copies, as they turn up in photo collections."""
    w, h = image.size
    return {
        "requality": image,  # saved again at a lower JPEG quality below
        "resize": image.resize((w * 3 // 5, h * 3 // 5), Image.LANCZOS),
        "crop": _crop(image, 0.03, 0.02, 0.01, 0.03).resize((w * 4 // 5, h * 4 // 5), Image.LANCZOS),
        "crop_gray": _crop(image, 0.0, 0.04, 0.04, 0.0).convert("L"),
    }


@pytest.fixture(scope="module")
def real_photo_folder(tmp_path_factory):
    """A Kaggle-layout folder of scikit-image's sample photos and their near-duplicates.

    train: every photo (own id), all variants of astronaut (same id), coffee's resize as new_whale, chelsea's crop
    under a second id (an alias), rocket's crop under rocket's id; test: camera re-encoded and clock cropped.
    """
    root = tmp_path_factory.mktemp("real") / "data"
    (root / "train").mkdir(parents=True)
    (root / "test").mkdir()
    rows, truth = [], []
    for name in PHOTOS:
        _photo(name).save(root / "train" / f"{name}.jpg", quality=92)
        rows.append((f"{name}.jpg", f"w_{name}"))
    for kind, image in _variants(_photo("astronaut")).items():
        image.save(root / "train" / f"astronaut_{kind}.jpg", quality=55 if kind == "requality" else 85)
        rows.append((f"astronaut_{kind}.jpg", "w_astronaut"))
        truth.append((f"astronaut_{kind}.jpg", "astronaut"))
    extra = {
        ("coffee", "resize", "train", "new_whale"),
        ("chelsea", "crop", "train", "w_chelsea_again"),
        ("rocket", "crop_gray", "train", "w_rocket"),
        ("camera", "requality", "test", None),
        ("clock", "crop", "test", None),
    }
    for name, kind, split, label in sorted(extra):
        file = f"{name}_{kind}.jpg"
        _variants(_photo(name))[kind].save(root / split / file, quality=50 if kind == "requality" else 85)
        if label:
            rows.append((file, label))
        truth.append((file, name))
    truth += [(f"{name}.jpg", name) for name in {group for _, group in truth}]
    pd.DataFrame(rows, columns=["Image", "Id"]).to_csv(root / "train.csv", index=False)
    pd.DataFrame(truth, columns=["Image", "group"]).to_csv(root / "duplicates.csv", index=False)
    return root


def _run(root, settings=None):
    images, rejected = scan_data_folder(root, workers=1)
    assert rejected.empty
    hashes, _ = compute_image_hashes(images, root, workers=2)
    value, details = find_duplicates(images, hashes, root, settings or DedupSettings(), workers=2)
    return images, value, details


@pytest.fixture(scope="module")
def real_photo_result(real_photo_folder):
    return _run(real_photo_folder)


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


def test_real_photos_are_found_as_duplicates_of_their_originals(real_photo_folder, real_photo_result):
    _, value, _ = real_photo_result
    groups = value["groups"]
    truth = pd.read_csv(real_photo_folder / "duplicates.csv")
    expected = {frozenset(group["Image"]) for _, group in truth.groupby("group")}
    found = {frozenset(group["image"]) for _, group in groups.groupby("group") if len(group) > 1}
    assert found == expected
    scores = precision_recall(groups, truth)
    assert scores["precision"] == 1.0 and scores["recall"] == 1.0


def test_different_real_photos_are_not_similar():
    thumbnails = {}
    for name in PHOTOS:
        thumbnails[name] = np.asarray(_photo(name).convert("L").resize((64, 64), Image.BILINEAR))
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


def test_aliases_new_whale_and_representatives(real_photo_result):
    images, value, _ = real_photo_result
    groups, aliases = value["groups"], value["aliases"]
    assert aliases.to_dict("records") == [{"label": "w_chelsea_again", "canonical": "w_chelsea"}]
    label_of = dict(zip(groups["image"], groups["label"]))
    assert label_of["coffee_resize.jpg"] == "w_coffee"  # a new_whale duplicate takes the known id
    assert label_of["chelsea_crop.jpg"] == "w_chelsea"
    assert label_of["astronaut_crop_gray.jpg"] == "w_astronaut"
    reps = groups[groups["representative"]]
    assert reps["group"].is_unique and set(reps["group"]) == set(groups["group"])
    # The representative is the full-size original, not a smaller copy.
    assert set(reps["image"]) >= {f"{name}.jpg" for name in PHOTOS}
    assert len(groups) == len(images)


def test_test_photos_that_duplicate_train_photos_reveal_their_label(real_photo_result):
    matches = real_photo_result[1]["test_matches"]
    assert matches[["image", "train_image", "label"]].to_dict("records") == [
        {"image": "camera_requality.jpg", "train_image": "camera.jpg", "label": "w_camera"},
        {"image": "clock_crop.jpg", "train_image": "clock.jpg", "label": "w_clock"},
    ]
    assert (matches["distance"] <= DedupSettings().max_distance).all()


def test_pixel_check_rejects_candidates_when_strict(real_photo_folder):
    # With an impossible similarity bar every candidate is rejected: groups come only from verified pairs.
    _, value, details = _run(real_photo_folder, DedupSettings(min_similarity=1.01))
    assert len(details["pairs"]) > 0 and not details["pairs"]["verified"].any()
    assert value["groups"]["group"].is_unique
    assert value["aliases"].empty and value["test_matches"].empty


def test_precision_and_recall_on_generated_set(tiny_dataset):
    images, value, details = _run(tiny_dataset)
    scores = precision_recall(value["groups"], pd.read_csv(tiny_dataset / "duplicates.csv"))
    assert scores["true_pairs"] >= 3
    assert scores["precision"] >= 0.98
    assert scores["recall"] >= 0.95
    # Look-alike photos (candidates by hash) were there to be rejected, and were.
    assert (~details["pairs"]["verified"]).sum() > scores["true_pairs"]
    truth_aliases = pd.read_csv(tiny_dataset / "aliases.csv")
    found = set(zip(value["aliases"]["label"], value["aliases"]["canonical"]))
    assert found <= set(zip(truth_aliases["Id"], truth_aliases["alias_of"])) | set(
        zip(truth_aliases["alias_of"], truth_aliases["Id"])
    )


def test_asset_check_flags_unrecorded_aliases(real_photo_folder, real_photo_result):
    images, value, _ = real_photo_result
    raw = {"images": images}
    assert duplicate_groups_aliases_recorded(raw_images=raw, duplicate_groups=value).passed
    broken = {**value, "aliases": value["aliases"].iloc[0:0]}
    result = duplicate_groups_aliases_recorded(raw_images=raw, duplicate_groups=broken)
    assert not result.passed
    assert result.metadata["groups_with_unrecorded_aliases"].value == 1


def test_codes_round_trip_hex():
    codes = hashes_to_codes(["00ff00ff00ff00ff", "ffffffffffffffff"])
    assert codes.shape == (2, 8) and codes.dtype == np.uint8
    assert codes[0, 1] == 255 and codes[1].tolist() == [255] * 8
