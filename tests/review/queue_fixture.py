"""A `review_queue` artifact built by hand, in the format `assets/review/` writes, over real photos of a
generated data set: the review page's tests need a queue without running the chain.

One function, `build_queue_fixture(storage, data)`, so that a test can swap it for a queue the real chain
materialized. Six items: five single photos, then an encounter of two photos (last, so that the first four
decisions are one photo each). Each item has five candidates, the true individual first where the generator
knows it; new_whale sits at rank 3 of the first item, at rank 1 of the fifth. Lines join points spread over the
two crops' frames (not real matches: the page only draws them).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from core.constants import NEW_WHALE
from core.images import upright_size
from models.keypoints import KeypointSettings, box_window, output_size

SETTINGS = KeypointSettings(width=256, margin=0.05)
LINES_PER_CANDIDATE = 9
NEW_WHALE_RANK = {0: 3, 4: 1}  # item position -> the rank new_whale takes there
BOX = ["x0", "y0", "x1", "y1"]


def _frame(data: Path, path: str, box: tuple | None) -> tuple[int, int]:
    """(width, height) of `box_image(data / path, box, SETTINGS)`, without decoding the photo."""
    with Image.open(data / path) as image:
        size = upright_size(image)
    return output_size(box_window(box, size, SETTINGS.margin), SETTINGS.width)


def _box_columns(prefix: str, box: tuple | None) -> dict[str, float]:
    values = box if box is not None else (np.nan,) * 4
    return {f"{prefix}box_{key}": float(value) for key, value in zip(BOX, values)}


def build_queue_fixture(storage: Path, data: Path) -> Path:
    """Write `<storage>/review_queue/` (items, photos, candidates, lines parquet; summary.json) over photos
    of the data folder `data`; returns the folder."""
    storage, data = Path(storage), Path(data)
    rng = np.random.default_rng(15)
    train = pd.read_csv(data / "train.csv")
    known = train[train["Id"] != NEW_WHALE]
    annotations = data / "annotations" / "boxes.csv"
    boxes = {}
    if annotations.exists():
        table = pd.read_csv(annotations)
        boxes = {
            image: tuple(float(v) for v in row) for image, *row in table[["Image", *BOX]].itertuples(False)
        }
    # Each individual's gallery photo: an annotated one where it has one (a box to crop), else its first.
    gallery_of = {
        label: sorted(group["Image"], key=lambda image: (image not in boxes, image))[0]
        for label, group in known.groupby("Id")
    }
    labels = sorted(gallery_of)
    truth_file = data / "solution.csv"
    truth = dict(pd.read_csv(truth_file).itertuples(False)) if truth_file.exists() else {}
    tests = sorted(p.name for p in (data / "test").iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    members = [[image] for image in tests[:5]] + [tests[5:7]]
    items, photos, candidates, lines = [], [], [], []
    for position, images in enumerate(members):
        item = images[0] if len(images) == 1 else "encounter_0001"
        first_truth = truth.get(images[0])
        ranked = [first_truth] if first_truth in gallery_of else []
        ranked += [label for label in rng.permutation(labels) if label not in ranked][: 5 - len(ranked)]
        ranked = ranked[:4]
        ranked.insert(NEW_WHALE_RANK.get(position, 5) - 1, NEW_WHALE)
        probabilities = np.sort(rng.dirichlet(np.ones(6)))[::-1][:5]
        new_whale_p = float(probabilities[ranked.index(NEW_WHALE)])
        items.append(
            {
                "item": item,
                "position": position,
                "priority": round(0.9 - 0.1 * position, 3),
                "photos": len(images),
                "top_label": ranked[0],
                "top_probability": float(probabilities[0]),
                "new_whale_probability": new_whale_p,
            }
        )
        for image in images:
            photos.append(
                {"item": item, "image": image, "path": f"test/{image}", **_box_columns("", boxes.get(image))}
            )
        query_frame = _frame(data, f"test/{images[0]}", boxes.get(images[0]))
        for rank, (label, probability) in enumerate(zip(ranked, probabilities), start=1):
            row = {"item": item, "rank": rank, "label": label, "probability": float(probability)}
            if label == NEW_WHALE:
                candidates.append(
                    {
                        **row,
                        "is_new_whale": True,
                        "inliers": np.nan,
                        "vote_share": np.nan,
                        "embedding_similarity": np.nan,
                        "gallery_image": "",
                        "gallery_path": "",
                        **_box_columns("gallery_", None),
                    }
                )
                continue
            gallery = gallery_of[label]
            count = LINES_PER_CANDIDATE - rank
            candidates.append(
                {
                    **row,
                    "is_new_whale": False,
                    "inliers": float(count),
                    "vote_share": float(probability),
                    "embedding_similarity": float(0.9 - 0.1 * rank),
                    "gallery_image": gallery,
                    "gallery_path": f"train/{gallery}",
                    **_box_columns("gallery_", boxes.get(gallery)),
                }
            )
            gallery_frame = _frame(data, f"train/{gallery}", boxes.get(gallery))
            q = rng.uniform(0, 1, (count, 2)) * query_frame
            g = rng.uniform(0, 1, (count, 2)) * gallery_frame
            for (qx, qy), (gx, gy) in zip(q, g):
                lines.append({"item": item, "rank": rank, "qx": qx, "qy": qy, "gx": gx, "gy": gy})
    folder = storage / "review_queue"
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(items).to_parquet(folder / "items.parquet", index=False)
    pd.DataFrame(photos).to_parquet(folder / "photos.parquet", index=False)
    pd.DataFrame(candidates).astype({"rank": "int64"}).to_parquet(folder / "candidates.parquet", index=False)
    pd.DataFrame(lines).astype({c: "float32" for c in ("qx", "qy", "gx", "gy")}).to_parquet(
        folder / "lines.parquet", index=False
    )
    summary = {
        "keypoint_width": SETTINGS.width,
        "keypoint_margin": SETTINGS.margin,
        "items": len(items),
        "test_photos": sum(len(images) for images in members),
    }
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder
