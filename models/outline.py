"""The trailing edge of a fluke, traced from its photo, and a descriptor of its shape (issue 13).

Why a third candidate generator: the embedding and the keypoint votes both read the underside's pattern, so a
whale whose gallery photos show little of it (small, blurred, backlit, the dorsal side, a washed-out fluke) is
lost by both. The trailing edge (the notch, scallops, nicks, a bite, a missing tip) identifies a fluke where the
pattern does not, as CurvRank and finFindR use it on real flukes and fins.

Tracing, per photo: the fluke box (plus margins, more above it where the water is) cut from the photo and resized
to `width` across; OpenCV's GrabCut separates fluke from water, started from the box (everything outside it is
water) and, when that finds too little fluke, once more from a seeded mask (the box's lower middle is fluke).
The fluke is the connected region holding most of the box's lower middle, its holes filled; its upper boundary,
column by column across the box, is the trailing edge, resampled to `EDGE_SAMPLES` heights in box widths (up
positive). A photo without a detected box is not traced: the whole photo's outline would be the frame's.

The descriptor: the edge without its tilt (a least-squares line: the fluke's roll), cut by `trim` at both ends
(where the box cuts the tips), resampled so that its notch (the lowest point near the middle) lands in the centre
(yaw and perspective move it), smoothed, `points` numbers. A dorsal-side photo shows the edge mirrored, so a query
is compared by its edge and by its mirror image, the closer counting. Ranking is an exact faiss L2 search: 64
floats per gallery photo, so even 25k photos are 6 MB and a query costs one pass over them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from os import PathLike

import faiss
import numpy as np
import pandas as pd
from PIL import Image
from scipy import ndimage

from core.artifacts import FlukeOutlines
from core.images import decode_photo

EDGE_SAMPLES = 256  # heights stored per traced edge, evenly across the box

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class OutlineSettings:
    """Where the edge is traced: the box plus margins (shares of its size) resized to `width` across."""

    width: int = 192  # measured: 256 px cost 3x (0.35 s a photo with 4 GrabCut iterations), recall@20 +0.02
    side: float = 0.06  # added left and right
    above: float = 0.25  # added above: the water over the trailing edge, GrabCut's sample of the background
    below: float = 0.05
    iterations: int = 2  # GrabCut's
    min_columns: float = 0.5  # share of the box's columns the fluke must reach, else the trace is refused

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class DescriptorSettings:
    """How a traced edge becomes a vector (`edge_descriptor`)."""

    points: int = 64
    smooth: float = 2.0  # Gaussian sigma, in descriptor points
    trim: float = 0.05  # share of the edge cut at each end
    notch_window: float = 0.1  # the notch is looked for within this share of the middle, each side


def outline_window(
    photo: str | PathLike, box: Box, settings: OutlineSettings
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The RGB uint8 window around `box` (photo pixels), `settings.width` pixels across the box, and the box in
    the window's pixels (x0, y0, x1, y1; parts of the window outside the photo are black)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    w, h = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
    region = (
        x0 - settings.side * w,
        y0 - settings.above * h,
        x1 + settings.side * w,
        y1 + settings.below * h,
    )
    scale = settings.width / w
    size = (
        max(8, int(round((region[2] - region[0]) * scale))),
        max(8, int(round((region[3] - region[1]) * scale))),
    )
    image = decode_photo(photo, "RGB").image
    window = np.asarray(image.transform(size, Image.Transform.EXTENT, region, Image.Resampling.BILINEAR))
    inner = (
        int(round((x0 - region[0]) * scale)),
        int(round((y0 - region[1]) * scale)),
        int(round((x1 - region[0]) * scale)),
        int(round((y1 - region[1]) * scale)),
    )
    return np.ascontiguousarray(window, dtype=np.uint8), inner


def _grabcut(rgb: np.ndarray, box: tuple[int, int, int, int], iterations: int, seeded: bool) -> np.ndarray:
    """GrabCut's foreground (bool H x W): from the box alone, or from a mask whose box is probably fluke and
    whose lower middle is surely fluke (`seeded`)."""
    import cv2

    height, width = rgb.shape[:2]
    x0, y0 = max(box[0], 0), max(box[1], 0)
    x1, y1 = min(box[2], width), min(box[3], height)
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    # GrabCut seeds its colour models' k-means from OpenCV's global generator: reseed it, so that a photo's edge
    # does not depend on which photos this process traced before it.
    cv2.setRNGSeed(0)
    background, foreground = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    if seeded:
        mask = np.full((height, width), cv2.GC_BGD, np.uint8)
        mask[y0:y1, x0:x1] = cv2.GC_PR_FGD
        w, h = x1 - x0, y1 - y0
        mask[y0 + int(0.35 * h) : y0 + int(0.6 * h), x0 + int(0.44 * w) : x0 + int(0.56 * w)] = cv2.GC_FGD
        cv2.grabCut(bgr, mask, None, background, foreground, iterations, cv2.GC_INIT_WITH_MASK)
    else:
        mask = np.zeros((height, width), np.uint8)
        rect = (x0, y0, max(1, x1 - x0), max(1, y1 - y0))
        cv2.grabCut(bgr, mask, rect, background, foreground, iterations, cv2.GC_INIT_WITH_RECT)
    return (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)


def upper_edge(mask: np.ndarray, box: tuple[int, int, int, int], min_columns: float) -> np.ndarray | None:
    """The fluke region's upper boundary across the box: row per box column (float), or None when the fluke
    region reaches fewer than `min_columns` of them (what GrabCut found is then not the fluke)."""
    height, width = mask.shape
    x0, y0, x1, y1 = max(box[0], 0), max(box[1], 0), min(box[2], width), min(box[3], height)
    if x1 - x0 < 4 or y1 - y0 < 4:
        return None
    # One erosion-dilation pass drops spray and thin wave crests joined to the fluke.
    cleaned = ndimage.binary_opening(mask, ndimage.generate_binary_structure(2, 1))
    labels, count = ndimage.label(cleaned)
    if count == 0:
        return None
    core_rows = slice(y0 + int(0.3 * (y1 - y0)), y1)
    core_cols = slice(x0 + int(0.25 * (x1 - x0)), x0 + int(0.75 * (x1 - x0)))
    votes = np.bincount(labels[core_rows, core_cols].ravel(), minlength=count + 1)
    votes[0] = 0
    if votes.max() == 0:
        return None
    fluke = ndimage.binary_fill_holes(labels == int(votes.argmax()))[:, x0:x1]
    reached = fluke.any(axis=0)
    if reached.mean() < min_columns:
        return None
    columns = np.arange(x1 - x0)
    top = fluke.argmax(axis=0).astype(np.float64)
    top = np.interp(columns, columns[reached], top[reached])
    return ndimage.median_filter(top, 3)


def trace_edge(photo: str | PathLike, box: Box, settings: OutlineSettings = OutlineSettings()) -> np.ndarray:
    """The trailing edge of the fluke in `box`: float32 `EDGE_SAMPLES` heights in box widths (up positive),
    left to right as the photo shows it; all NaN where it could not be traced."""
    rgb, inner = outline_window(photo, box, settings)
    top = None
    for seeded in (False, True):
        top = upper_edge(_grabcut(rgb, inner, settings.iterations, seeded), inner, settings.min_columns)
        if top is not None:
            break
    if top is None:
        return np.full(EDGE_SAMPLES, np.nan, np.float32)
    samples = np.interp(np.linspace(0, len(top) - 1, EDGE_SAMPLES), np.arange(len(top)), top)
    return (-samples / max(len(top), 1)).astype(np.float32)


def traced(edges: np.ndarray) -> np.ndarray:
    """Which rows of an N x EDGE_SAMPLES array hold a traced edge."""
    edges = np.asarray(edges, dtype=np.float32).reshape(-1, EDGE_SAMPLES)
    return ~np.isnan(edges).any(axis=1)


def edge_descriptor(
    edge: np.ndarray, settings: DescriptorSettings = DescriptorSettings(), mirrored: bool = False
) -> np.ndarray:
    """One traced edge (or its mirror image) as `settings.points` float32 numbers; see the module docstring."""
    edge = np.asarray(edge, dtype=np.float64)[::-1] if mirrored else np.asarray(edge, dtype=np.float64)
    cut = int(len(edge) * settings.trim)
    edge = edge[cut : len(edge) - cut]
    n = len(edge)
    x = np.linspace(-1.0, 1.0, n)
    tilt = np.polyfit(x, edge, 1)
    edge = edge - np.polyval(tilt, x)
    low, high = int(n * (0.5 - settings.notch_window)), max(int(n * (0.5 + settings.notch_window)), 1)
    notch = low + int(np.argmin(ndimage.gaussian_filter1d(edge, 2.0)[low:high]))
    half = settings.points // 2
    positions = np.concatenate(
        [
            np.linspace(0, notch, half, endpoint=False),
            np.linspace(notch, n - 1, settings.points - half),
        ]
    )
    described = ndimage.gaussian_filter1d(np.interp(positions, np.arange(n), edge), settings.smooth)
    return (described - described.mean()).astype(np.float32)


def edge_descriptors(
    edges: np.ndarray, settings: DescriptorSettings = DescriptorSettings(), mirrored: bool = False
) -> np.ndarray:
    """`edge_descriptor` of every traced row (untraced rows: zeros; `traced` tells them apart)."""
    edges = np.asarray(edges, dtype=np.float32).reshape(-1, EDGE_SAMPLES)
    found = traced(edges)
    out = np.zeros((len(edges), settings.points), np.float32)
    for row in np.flatnonzero(found):
        out[row] = edge_descriptor(edges[row], settings, mirrored)
    return out


def edge_rankings(
    query_edges: np.ndarray,
    gallery_edges: np.ndarray,
    labels: list[str],
    neighbours: int = 300,
    settings: DescriptorSettings = DescriptorSettings(),
    exclude: list[int | None] | None = None,
) -> list[list[tuple[str, float]]]:
    """Per query: (individual, smallest edge distance) of the individuals among its `neighbours` nearest gallery
    edges (each gallery edge against the query's edge and its mirror image), nearest first. Empty for a query
    without a traced edge; gallery photos without one are never returned. `exclude[q]`: a gallery row query q
    must not match (itself)."""
    gallery_edges = np.asarray(gallery_edges, dtype=np.float32).reshape(-1, EDGE_SAMPLES)
    query_edges = np.asarray(query_edges, dtype=np.float32).reshape(-1, EDGE_SAMPLES)
    rows = np.flatnonzero(traced(gallery_edges))
    result: list[list[tuple[str, float]]] = [[] for _ in range(len(query_edges))]
    asked = np.flatnonzero(traced(query_edges))
    if len(rows) == 0 or len(asked) == 0:
        return result
    index = faiss.IndexFlatL2(settings.points)
    index.add(edge_descriptors(gallery_edges[rows], settings))
    depth = min(len(rows), neighbours + 1)
    distances, found = [], []
    for mirrored in (False, True):
        d, i = index.search(edge_descriptors(query_edges[asked], settings, mirrored), depth)
        distances.append(d)
        found.append(i)
    distance, hit = np.concatenate(distances, axis=1), np.concatenate(found, axis=1)
    for position, query in enumerate(asked):
        skip = None if exclude is None else exclude[query]
        best: dict[str, float] = {}
        for value, gallery_row in sorted(zip(distance[position], hit[position])):
            if gallery_row < 0 or rows[gallery_row] == skip:
                continue
            label = labels[rows[gallery_row]]
            if label not in best:
                best[label] = float(value)
        result[query] = list(best.items())
    return result


def edges_of(outlines: FlukeOutlines | None, images: list[str], split: str) -> np.ndarray | None:
    """The edges of `images` of one split, in order (NaN rows where a photo has none); None without outlines."""
    if outlines is None:
        return None
    index = outlines["index"]
    index = index[index["split"] == split]
    rows = pd.Series(index["row"].to_numpy(), index=index["image"].to_numpy())
    rows = rows[~rows.index.duplicated()].reindex(list(images))
    edges = np.full((len(images), EDGE_SAMPLES), np.nan, np.float32)
    present = rows.notna().to_numpy()
    if present.any():
        edges[present] = np.asarray(outlines["edges"])[rows[present].astype(np.int64).to_numpy()]
    return edges
