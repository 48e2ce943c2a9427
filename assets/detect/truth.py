"""The boxes against the generator's true boxes: for synthetic data only, so an asset check, never the asset.

A generated data folder holds `boxes.csv` (Image,x0,y0,x1,y1: where the generator drew each fluke); a real one
does not, and the comparison then says "no truth file" and passes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from assets.detect.boxes import whole_image_boxes
from models import detector as det

TRUTH_FILE = "boxes.csv"
# The boxes must be at least as good as whole photos (fallbacks are whole photos), within this much mean IoU:
# the stable bar of a short tiny-profile training, where nearly every photo falls back.
WHOLE_PHOTO_TOLERANCE = 0.02


def read_true_boxes(data_root: Path) -> pd.DataFrame | None:
    """The generator's true boxes (`boxes.csv`: Image,x0,y0,x1,y1), or None: real data sets have none."""
    path = Path(data_root) / TRUTH_FILE
    if not path.exists():
        return None
    table = pd.read_csv(path).rename(columns={"Image": "image"})
    if not {"image", "x0", "y0", "x1", "y1"} <= set(table.columns):
        return None
    return table[["image", "x0", "y0", "x1", "y1"]].drop_duplicates("image")


def iou_against_truth(
    boxes: pd.DataFrame, truth: pd.DataFrame, split: str | None = "test"
) -> dict[str, float]:
    """Mean IoU of predicted boxes (fallbacks included, as whole photos) against true boxes, on one split."""
    chosen = boxes if split is None else boxes[boxes["split"] == split]
    merged = chosen.merge(truth, on="image", suffixes=("", "_true"))
    if merged.empty:
        return {}
    iou = det.box_iou(
        merged[["x0", "y0", "x1", "y1"]].to_numpy(),
        merged[["x0_true", "y0_true", "x1_true", "y1_true"]].to_numpy(),
    )
    detected = ~merged["fallback"].to_numpy(bool)
    return {
        "mean_iou": float(iou.mean()),
        "median_iou": float(np.median(iou)),
        "share_iou_over_0.5": float((iou > 0.5).mean()),
        "mean_iou_detected_only": float(iou[detected].mean()) if detected.any() else 0.0,
        "photos": int(len(merged)),
    }


def compare_with_truth(
    boxes: pd.DataFrame, manifest: pd.DataFrame, data_root: Path, split: str = "test"
) -> dict | None:
    """The asset check's logic: None without a truth file; else `scores` (`iou_against_truth` on `split`),
    `whole_photo` (the same for whole photos) and `passed` (the boxes are no worse than whole photos)."""
    truth = read_true_boxes(data_root)
    if truth is None:
        return None
    scores = iou_against_truth(boxes, truth, split)
    whole = iou_against_truth(whole_image_boxes(manifest, "whole photo"), truth, split)
    # Nothing of `split` in the truth file: nothing to compare, nothing wrong.
    passed = not scores or scores["mean_iou"] >= whole.get("mean_iou", 0.0) - WHOLE_PHOTO_TOLERANCE
    return {"scores": scores, "whole_photo": whole, "passed": bool(passed)}
