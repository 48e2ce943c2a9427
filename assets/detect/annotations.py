"""The hand-annotated boxes the detector learns from: `annotations/boxes.csv` read, checked and split.

Follow one annotated photo: the file names it with its box; `prepare_annotations` keeps it when it is an accepted
photo and the box lies in it, and files it under the training (`train`) or the held-out (`val`) part.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from models import detector as det

# What `prepare_annotations` returns: the photo, where it is, its size, its box, and its part (train / val).
ANNOTATION_COLUMNS = ["image", "split", "path", "width", "height", *det.BOX_COLUMNS, "part"]


def read_annotations(path: Path) -> pd.DataFrame | None:
    """The annotation table (Image,x0,y0,x1,y1), or None when the data folder has none (or it is empty)."""
    path = Path(path)
    if not path.exists():
        return None
    table = pd.read_csv(path)
    return table if len(table) else None


def prepare_annotations(
    annotations: pd.DataFrame | None, manifest: pd.DataFrame, val_share: float, seed: int
) -> pd.DataFrame:
    """Usable annotated boxes (`ANNOTATION_COLUMNS`, with the `part` column); empty when there are none."""
    if annotations is None:
        return pd.DataFrame(columns=ANNOTATION_COLUMNS)
    boxes = det.clean_annotations(annotations, manifest)
    return det.split_annotations(boxes, val_share, seed)


def annotated_content(boxes: pd.DataFrame, manifest: pd.DataFrame) -> list[str]:
    """The content hashes of the annotated photos, in `boxes` order: what the detector actually sees of them."""
    if not len(boxes):
        return []
    # A reviewed test photo is also a train row of the same file: one row per name.
    by_name = manifest.drop_duplicates("image").set_index("image")
    return by_name.reindex(boxes["image"])["content_hash"].tolist()
