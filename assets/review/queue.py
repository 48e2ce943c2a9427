"""What a researcher reviews, most useful first: the review queue (issue 15).

Follow one test photo: the submission's companion table gives its five ranked labels with P(same whale) (and
P(new_whale) in new_whale's row). Its expected average precision as things stand is sum_k P(rank k is right) / k,
so deciding it by hand gains 1 minus that; photos of one encounter are one item, decided together, and gain the
sum of their photos' gains. Items are ordered by that gain, largest first (ties by name). For each candidate the
queue keeps the gallery photo that matches the item's first photo best (most RANSAC inliers on the same fluke-box
keypoints verification used) and those inlier pairs, so the review page can draw them.

Without calibrated probabilities (the threshold decision path) every photo gains the same and the queue is in
name order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.artifacts import FlukeKeypoints, RawImages
from core.constants import NEW_WHALE, TOP
from models.keypoints import features_by_image
from models.verification import EMPTY, LocalFeatures, inlier_matches

ITEM_COLUMNS = [
    "item",
    "position",
    "priority",
    "photos",
    "top_label",
    "top_probability",
    "new_whale_probability",
]
PHOTO_COLUMNS = ["item", "image", "path", "box_x0", "box_y0", "box_x1", "box_y1"]
EVIDENCE = ["inliers", "vote_share", "embedding_similarity"]
CANDIDATE_COLUMNS = [
    "item",
    "rank",
    "label",
    "probability",
    "is_new_whale",
    *EVIDENCE,
    "gallery_image",
    "gallery_path",
    "gallery_box_x0",
    "gallery_box_y0",
    "gallery_box_x1",
    "gallery_box_y1",
]
LINE_COLUMNS = ["item", "rank", "qx", "qy", "gx", "gy"]
BOX = ["x0", "y0", "x1", "y1"]


@dataclass(frozen=True)
class QueueSettings:
    gallery_photos: int = 8  # gallery photos of a candidate compared with the item's first photo, at most
    max_lines: int = 60  # inlier pairs kept per candidate (the strongest picture, not every match)
    ratio: float = 0.8  # Lowe's ratio test, as verification
    reprojection_px: float = 4.0  # RANSAC inlier distance, as verification


def expected_gain(probabilities: list[float]) -> float:
    """1 - expected AP@5 of a row whose rank-k label is right with probability p_k (scaled to sum at most 1).
    NaN probabilities (no calibrated decision) count as an equal share."""
    p = np.asarray(probabilities, dtype=np.float64)
    if len(p) == 0:
        return 1.0
    if np.isnan(p).all():
        p = np.full(len(p), 1.0 / len(p))
    p = np.nan_to_num(p, nan=0.0).clip(0.0, 1.0)
    p = p / max(1.0, p.sum())
    return float(1.0 - (p / np.arange(1, len(p) + 1)).sum())


def review_items(test_images: list[str], encounters: pd.DataFrame | None) -> dict[str, list[str]]:
    """Item id -> its test photos (sorted): one item per encounter, one per photo outside any."""
    of_photo: dict[str, str] = {}
    if encounters is not None and len(encounters):
        test = encounters[encounters["split"] == "test"]
        of_photo = dict(zip(test["image"], test["encounter"].astype(str)))
    items: dict[str, list[str]] = {}
    for image in sorted(test_images):
        items.setdefault(of_photo.get(image, image), []).append(image)
    return items


def ranked_rows(matches: pd.DataFrame, submission: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Image -> its five (rank, label, probability, evidence) rows: the companion table's, or, for a photo it
    lacks, the submission's labels with unknown probabilities."""
    rows = {image: group.sort_values("rank") for image, group in matches.groupby("image", sort=False)}
    for image, ids in zip(submission["Image"], submission["Id"]):
        if image not in rows:
            labels = str(ids).split(" ")[:TOP]
            rows[image] = pd.DataFrame(
                {"rank": range(1, len(labels) + 1), "label": labels, "probability": np.nan}
            )
    return rows


def item_candidates(photo_rows: list[pd.DataFrame]) -> pd.DataFrame:
    """The item's five labels: per label the best probability any of its photos gives (with that photo's
    evidence), highest first; new_whale's is the item's highest P(new_whale). A single photo keeps its row."""
    table = pd.concat(photo_rows, ignore_index=True)
    for column in EVIDENCE:
        if column not in table:
            table[column] = np.nan
    if len(photo_rows) == 1:
        return table.sort_values("rank").head(TOP).reset_index(drop=True)
    table = table.sort_values(["probability", "rank"], ascending=[False, True], na_position="last")
    return table.drop_duplicates("label").head(TOP).reset_index(drop=True)


def best_gallery_match(
    query: LocalFeatures,
    label: str,
    photos_of: dict[str, list[str]],
    features: dict[str, LocalFeatures],
    settings: QueueSettings,
) -> tuple[str, np.ndarray, np.ndarray]:
    """(gallery image, query points, gallery points) of the candidate's photo with most inliers; ("", ...) when
    the candidate has no gallery photo."""
    best = ("", np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32))
    for image in photos_of.get(label, [])[: settings.gallery_photos]:
        q, g = inlier_matches(query, features.get(image, EMPTY), settings.ratio, settings.reprojection_px)
        if not best[0] or len(q) > len(best[1]):
            best = (image, q, g)
    return best


def build_queue(
    matches: pd.DataFrame,
    submission: pd.DataFrame,
    raw_images: RawImages,
    boxes: pd.DataFrame,
    keypoints: FlukeKeypoints,
    gallery: pd.DataFrame,
    settings: QueueSettings = QueueSettings(),
) -> dict:
    """The `review_queue` value (parts `items`, `photos`, `candidates`, `lines`, `summary`)."""
    images = raw_images["images"]
    test = images[images["split"] == "test"]
    rows = ranked_rows(matches, submission)
    items = review_items([image for image in test["image"] if image in rows], raw_images.get("encounters"))
    paths = {(s, i): p for s, i, p in zip(images["split"], images["image"], images["path"])}
    # The frame keypoints were taken in: the box, or the whole photo where the box is a fallback (as fluke_keypoints).
    usable = boxes[~boxes["fallback"].astype(bool)] if "fallback" in boxes else boxes
    box_of = {(s, i): tuple(b) for s, i, *b in usable[["split", "image", *BOX]].itertuples(index=False)}
    query_features = features_by_image(keypoints, "test")
    gallery_features = features_by_image(keypoints, "train")
    photos_of = {label: sorted(group["image"]) for label, group in gallery.groupby("label")}
    item_rows, photo_rows, candidate_rows, line_rows = [], [], [], []
    for item, members in items.items():
        gains = [expected_gain(rows[image]["probability"].tolist()) for image in members]
        candidates = item_candidates([rows[image] for image in members])
        new_p = candidates.loc[candidates["label"] == NEW_WHALE, "probability"]
        item_rows.append(
            {
                "item": item,
                "priority": float(sum(gains)),
                "photos": len(members),
                "top_label": candidates["label"].iloc[0],
                "top_probability": float(candidates["probability"].iloc[0]),
                "new_whale_probability": float(new_p.iloc[0]) if len(new_p) else np.nan,
            }
        )
        for image in members:
            photo_rows.append(
                {"item": item, "image": image, "path": paths[("test", image)], **_box(box_of, "test", image)}
            )
        query = query_features.get(members[0], EMPTY)
        for rank, candidate in enumerate(candidates.to_dict("records"), start=1):
            label = candidate["label"]
            found = ("", None, None)
            if label != NEW_WHALE:
                found = best_gallery_match(query, label, photos_of, gallery_features, settings)
            gallery_image = found[0]
            candidate_rows.append(
                {
                    "item": item,
                    "rank": rank,
                    "label": label,
                    "probability": candidate["probability"],
                    "is_new_whale": label == NEW_WHALE,
                    **{column: candidate.get(column, np.nan) for column in EVIDENCE},
                    "gallery_image": gallery_image,
                    "gallery_path": paths.get(("train", gallery_image), ""),
                    **{
                        f"gallery_{key}": value for key, value in _box(box_of, "train", gallery_image).items()
                    },
                }
            )
            if gallery_image:
                line_rows.extend(_lines(item, rank, found[1], found[2], settings.max_lines))
    return assemble(item_rows, photo_rows, candidate_rows, line_rows, keypoints, len(test))


def assemble(
    item_rows, photo_rows, candidate_rows, line_rows, keypoints: FlukeKeypoints, test_photos: int
) -> dict:
    """The parts as tables, items in queue order (largest gain first, ties by item name)."""
    items = pd.DataFrame(item_rows, columns=[c for c in ITEM_COLUMNS if c != "position"])
    items = items.sort_values(["priority", "item"], ascending=[False, True], kind="stable").reset_index(
        drop=True
    )
    items.insert(1, "position", np.arange(len(items), dtype=np.int64))
    lines = pd.DataFrame(line_rows, columns=LINE_COLUMNS).astype(
        {"rank": "int64", "qx": "float32", "qy": "float32", "gx": "float32", "gy": "float32"}
    )
    settings = keypoints.get("settings") or {}
    return {
        "items": items[ITEM_COLUMNS],
        "photos": pd.DataFrame(photo_rows, columns=PHOTO_COLUMNS),
        "candidates": pd.DataFrame(candidate_rows, columns=CANDIDATE_COLUMNS).astype({"rank": "int64"}),
        "lines": lines,
        "summary": {
            "keypoint_width": int(settings.get("width", 384)),
            "keypoint_margin": float(settings.get("margin", 0.05)),
            "items": int(len(items)),
            "test_photos": int(test_photos),
        },
    }


def _box(box_of: dict, split: str, image: str) -> dict[str, float]:
    box = box_of.get((split, image))
    values = box if box is not None else (np.nan,) * 4
    return {f"box_{key}": float(value) for key, value in zip(BOX, values)}


def _lines(item: str, rank: int, query: np.ndarray, gallery: np.ndarray, most: int) -> list[dict]:
    return [
        {"item": item, "rank": rank, "qx": q[0], "qy": q[1], "gx": g[0], "gy": g[1]}
        for q, g in zip(query[:most], gallery[:most])
    ]
