"""A contact sheet of photo pairs, so a person can see whether merged photos are really the same picture."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from PIL import Image

from core.images import open_photo


def pairs_contact_sheet(pairs: pd.DataFrame, root: Path, count: int = 6, height: int = 96) -> Image.Image:
    """A few verified pairs side by side, one pair per row, for the metadata."""
    rows = []
    for path_a, path_b in pairs[["path_a", "path_b"]].head(count).itertuples(index=False):
        row = []
        for rel in (path_a, path_b):
            image = open_photo(Path(root) / rel, "RGB", (height, height))
            row.append(image.resize((max(1, image.width * height // image.height), height)))
        rows.append(row)
    width = max((sum(im.width for im in row) + 8 for row in rows), default=1)
    sheet = Image.new("RGB", (width, max(1, len(rows) * (height + 4))), "white")
    for r, row in enumerate(rows):
        x = 0
        for image in row:
            sheet.paste(image, (x, r * (height + 4)))
            x += image.width + 8
    return sheet
