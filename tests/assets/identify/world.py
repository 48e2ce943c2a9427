"""A hand-made world for the identify stage's tests: known patterns as "whales", their crops and whole photos,
the upstream artifacts, and a stand-in embedder handed in instead of the trained model."""

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from assets.identify.gallery import build_gallery, gallery_photos
from core.constants import NEW_WHALE

HEIGHT, WIDTH = 8, 16


def flat_embed(tensors: np.ndarray) -> np.ndarray:
    """Stand-in for the trained model: centred, L2-normalised pixels."""
    x = np.asarray(tensors, dtype=np.float32).reshape(len(tensors), -1)
    x = x - x.mean(axis=1, keepdims=True)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-6)


def noisy_embed(tensors: np.ndarray) -> np.ndarray:
    """A worse stand-in: a fixed random projection of the pixels plus noise drawn from each crop's bytes (so the
    same crop always gets the same embedding), so that geometric verification has something to correct."""
    x = np.asarray(tensors, dtype=np.float32).reshape(len(tensors), -1)
    x = (x - x.mean(axis=1, keepdims=True)) @ np.random.default_rng(0).standard_normal((x.shape[1], 32))
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-6)
    seeds = [int(hashlib.sha256(crop.tobytes()).hexdigest()[:8], 16) for crop in tensors]
    noise = np.stack([np.random.default_rng(seed).standard_normal(32) for seed in seeds]) if seeds else 0
    x = x + 0.35 * noise
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def make_world(root: Path, seed: int = 0, height: int = HEIGHT, width: int = WIDTH) -> dict:
    """A data folder and the upstream artifacts: 6 individuals with 3 photos (one held out each), one individual
    seen only in val (an unseen whale), 6 new_whale photos (2 held out), 8 test photos and one rejected one.
    Crops are `height` x `width` (8 x 16 hold no SIFT keypoints; 48 x 96 do)."""
    rng = np.random.default_rng(seed)
    patterns = rng.integers(0, 256, size=(8, 1, height, width)).astype(np.float32)
    photos = []  # image, split, label, fold, pattern
    for ident in range(6):
        for shot in range(3):
            photos.append(
                (f"w{ident}_{shot}.jpg", "train", f"w_{ident}", "val" if shot == 2 else "train", ident)
            )
    photos.append(("w6_0.jpg", "train", "w_6", "val", 6))  # only in val: truth becomes new_whale
    for n in range(6):
        photos.append((f"nw{n}.jpg", "train", NEW_WHALE, "val" if n < 2 else "train", None))
    for n in range(8):
        photos.append((f"test{n}.jpg", "test", None, None, n % 6 if n < 6 else None))
    tensors, rows = [], []
    for image, split, _label, _fold, pattern in photos:
        base = patterns[pattern] if pattern is not None else rng.integers(0, 256, size=(1, height, width))
        tensor = np.clip(base + rng.normal(0, 12, size=base.shape), 0, 255).astype(np.uint8)
        tensors.append(tensor)
        folder = root / split
        folder.mkdir(parents=True, exist_ok=True)
        # The whole photo: the pattern, bigger, inside a border of sea.
        crop = Image.fromarray(tensor[0]).resize((width * 4, height * 4), Image.NEAREST)
        photo = Image.new("L", (width * 6, height * 6), 90)
        photo.paste(crop, (width, height))
        photo.save(folder / image, quality=95)
        rows.append((len(rows), image, split))
    frame = pd.DataFrame(photos, columns=["image", "split", "label", "fold", "pattern"])
    images = frame.assign(path=frame["split"] + "/" + frame["image"])[["image", "split", "label", "path"]]
    rejected = pd.DataFrame(
        [("broken.jpg", "test", None, "truncated_image", "cut short")],
        columns=["image", "split", "label", "reason", "detail"],
    )
    train = frame[frame["split"] == "train"]
    manifest = train[["image", "label", "fold"]].assign(
        individual_photos=train["label"].map(train["label"].value_counts())
    )
    fluke_tensors = {
        "tensors": np.stack(tensors),
        "index": pd.DataFrame(rows, columns=["row", "image", "split"]),
    }
    known, missing = gallery_photos(manifest, fluke_tensors["index"])
    assert not missing
    gallery, _ = build_gallery(flat_embed, fluke_tensors["tensors"], known)
    gallery["info"]["flip"] = False
    return {
        "root": root,
        "raw_images": {"images": images, "rejected": rejected},
        "training_manifest": manifest.reset_index(drop=True),
        "fluke_tensors": fluke_tensors,
        "gallery_index": gallery,
        "frame": frame,
    }


def truth_file(world: dict) -> pd.DataFrame:
    """The generator's ground truth for the world's test photos, written to its data folder: test photos 0-5
    show w_0..w_5, 6-7 are new; the rejected one is new too."""
    frame = world["frame"]
    test = frame[frame["split"] == "test"]
    truth = test["pattern"].map(lambda p: NEW_WHALE if pd.isna(p) else f"w_{int(p)}")
    solution = pd.DataFrame({"Image": [*test["image"], "broken.jpg"], "Id": [*truth, NEW_WHALE]})
    solution.to_csv(world["root"] / "solution.csv", index=False)
    return solution


def duplicate_groups_of_world() -> dict:
    """dedup's answer for the world: test7 (a new pattern) duplicates a train photo of w_5."""
    return {
        "groups": pd.DataFrame(),
        "aliases": pd.DataFrame({"label": pd.Series(dtype=object), "canonical": pd.Series(dtype=object)}),
        "test_matches": pd.DataFrame(
            {"image": ["test7.jpg"], "train_image": ["w5_0.jpg"], "label": ["w_5"], "distance": [2]}
        ),
    }
