"""Real photos (scikit-image's samples) and their near-duplicates in a Kaggle-layout folder, and the dedup
stage run on plain tables, shared by the dedup tests."""

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from assets.dedup.groups import find_duplicates
from assets.dedup.pairs import DedupSettings
from assets.dedup.phash import compute_image_hashes
from assets.ingest.scan import scan_data_folder

PHOTOS = ("astronaut", "camera", "coffee", "chelsea", "rocket", "horse", "clock", "moon")


def photo(name: str) -> Image.Image:
    from skimage import data

    pixels = getattr(data, name)()
    if pixels.dtype != np.uint8:
        pixels = (pixels * 255).astype(np.uint8) if pixels.max() <= 1 else pixels.astype(np.uint8)
    return Image.fromarray(pixels).convert("RGB")


def _crop(image: Image.Image, left: float, top: float, right: float, bottom: float) -> Image.Image:
    w, h = image.size
    return image.crop((round(left * w), round(top * h), round(w * (1 - right)), round(h * (1 - bottom))))


def variants(image: Image.Image) -> dict[str, Image.Image]:
    """Re-encoded, resized and slightly cropped copies, as they turn up in photo collections."""
    w, h = image.size
    return {
        "requality": image,  # saved again at a lower JPEG quality below
        "resize": image.resize((w * 3 // 5, h * 3 // 5), Image.LANCZOS),
        "crop": _crop(image, 0.03, 0.02, 0.01, 0.03).resize((w * 4 // 5, h * 4 // 5), Image.LANCZOS),
        "crop_gray": _crop(image, 0.0, 0.04, 0.04, 0.0).convert("L"),
    }


def make_real_photo_folder(root: Path) -> Path:
    """A Kaggle-layout folder of scikit-image's sample photos and their near-duplicates, with duplicates.csv.

    train: every photo (own id), all variants of astronaut (same id), coffee's resize as new_whale, chelsea's crop
    under a second id (an alias), rocket's crop under rocket's id; test: camera re-encoded and clock cropped.
    """
    (root / "train").mkdir(parents=True)
    (root / "test").mkdir()
    rows, truth = [], []
    for name in PHOTOS:
        photo(name).save(root / "train" / f"{name}.jpg", quality=92)
        rows.append((f"{name}.jpg", f"w_{name}"))
    for kind, image in variants(photo("astronaut")).items():
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
        variants(photo(name))[kind].save(root / split / file, quality=50 if kind == "requality" else 85)
        if label:
            rows.append((file, label))
        truth.append((file, name))
    truth += [(f"{name}.jpg", name) for name in {group for _, group in truth}]
    pd.DataFrame(rows, columns=["Image", "Id"]).to_csv(root / "train.csv", index=False)
    pd.DataFrame(truth, columns=["Image", "group"]).to_csv(root / "duplicates.csv", index=False)
    return root


def run_dedup(root: Path, settings: DedupSettings | None = None):
    """(images, DuplicateGroups, details) of the dedup stage on the photos under `root`, without a cache."""
    images, rejected = scan_data_folder(root, workers=1)
    assert rejected.empty
    hashes, _ = compute_image_hashes(images, root, workers=2)
    value, details = find_duplicates(images, hashes, root, settings or DedupSettings(), workers=2)
    return images, value, details
