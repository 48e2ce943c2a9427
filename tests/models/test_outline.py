"""models.outline: the trailing edge traced from a photo, its descriptor, and the edge ranking."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw

from models.outline import (
    EDGE_SAMPLES,
    DescriptorSettings,
    edge_descriptor,
    edge_descriptors,
    edge_rankings,
    edges_of,
    trace_edge,
    traced,
)

BOX = (100, 120, 500, 320)  # x0, y0, x1, y1 of the drawn fluke


def trailing_edge_rows(xs: np.ndarray, nicks: list[tuple[float, float, float]]) -> np.ndarray:
    """Rows (photo pixels) of a drawn fluke's trailing edge at columns `xs`: tips at the box top, a notch in the
    middle, and `nicks` (position 0..1 across, depth px, half-width px)."""
    u = (xs - BOX[0]) / (BOX[2] - BOX[0])
    rows = BOX[1] + 45.0 * np.sin(np.pi * u) ** 1.5  # the lobes dip between the tips
    rows += 25.0 * np.exp(-(((u - 0.5) / 0.02) ** 2))  # the notch
    for at, depth, half in nicks:
        rows += depth * np.clip(1 - np.abs(xs - (BOX[0] + at * (BOX[2] - BOX[0]))) / half, 0, 1)
    return rows


def fluke_photo(path, nicks, seed=0, grey=False) -> np.ndarray:
    """A 600 x 420 photo: blue wavy water, a dark fluke whose trailing edge is `trailing_edge_rows`; returns the
    true edge rows across the box."""
    rng = np.random.default_rng(seed)
    h, w = 420, 600
    yy, xx = np.mgrid[0:h, 0:w]
    waves = 0.5 + 0.25 * np.sin(xx / 17.0 + 3 * np.sin(yy / 23.0)) + rng.normal(0, 0.04, (h, w))
    water = np.stack([0.20 * waves, 0.40 * waves, 0.60 * waves], axis=2)
    image = Image.fromarray((np.clip(water, 0, 1) * 255).astype(np.uint8))
    xs = np.arange(BOX[0], BOX[2] + 1, dtype=np.float64)
    top = trailing_edge_rows(xs, nicks)
    # the leading edge: from the tips down to the peduncle, which runs to the photo's bottom edge
    outline = [*zip(xs, top), (BOX[2], BOX[1] + 8), (330, 260), (320, BOX[3]), (280, BOX[3]), (270, 260)]
    outline.append((BOX[0], BOX[1] + 8))
    ImageDraw.Draw(image).polygon([(float(x), float(y)) for x, y in outline], fill=(12, 12, 14))
    if grey:
        image = image.convert("L").convert("RGB")
    image.save(path, quality=95)
    return top


@pytest.mark.parametrize("grey", [False, True])
def test_trace_follows_the_drawn_trailing_edge(tmp_path, grey):
    path = tmp_path / "fluke.jpg"
    true_rows = fluke_photo(path, [(0.3, 12.0, 6.0), (0.75, 8.0, 5.0)], grey=grey)
    edge = trace_edge(path, BOX)
    assert edge.shape == (EDGE_SAMPLES,) and edge.dtype == np.float32 and traced(edge[None])[0]
    # heights are box widths up positive: back to photo rows (up to the window's offset, removed by the median)
    width = BOX[2] - BOX[0]
    rows = -edge * width
    truth = np.interp(np.linspace(0, len(true_rows) - 1, EDGE_SAMPLES), np.arange(len(true_rows)), true_rows)
    offset = np.median(rows - truth)
    error = np.abs(rows - truth - offset)
    assert np.percentile(error, 90) < 3.0, error.max()  # photo pixels; the box is 400 px wide
    # the nicks are in it: deeper (larger rows) than the edge either side of them
    nick = int(0.3 * EDGE_SAMPLES)
    assert rows[nick] - offset > truth[nick - 12] + 6


def test_water_alone_is_not_traced(tmp_path):
    path = tmp_path / "water.jpg"
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(60, 70, (420, 600, 3), dtype=np.uint8)).save(path)
    edge = trace_edge(path, BOX)
    assert not traced(edge[None])[0] and np.isnan(edge).all()


def test_descriptor_ignores_tilt_and_height_but_not_shape():
    x = np.linspace(-1, 1, EDGE_SAMPLES)
    edge = (-0.1 * np.sin(np.pi * (x + 1) / 2) ** 1.5 - 0.06 * np.exp(-((x / 0.04) ** 2))).astype(np.float32)
    plain = edge_descriptor(edge)
    assert plain.shape == (DescriptorSettings().points,)
    tilted = edge_descriptor(edge + 0.07 * x + 0.3)  # the fluke rolled, the box higher
    assert np.abs(tilted - plain).max() < 1e-5
    nicked = edge.copy()
    nicked[60:70] -= 0.03
    assert np.linalg.norm(edge_descriptor(nicked) - plain) > 10 * np.linalg.norm(tilted - plain) + 1e-3
    mirrored = edge_descriptor(edge[::-1].copy(), mirrored=True)
    assert np.abs(mirrored - plain).max() < 1e-5


def shapes(count: int, seed: int = 0) -> np.ndarray:
    """`count` distinct edges: tips, lobes and a nick each of their own."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 1, EDGE_SAMPLES)
    out = []
    for _ in range(count):
        edge = -rng.uniform(0.05, 0.15) * np.sin(np.pi * x) ** rng.uniform(1, 2.2)
        edge -= 0.05 * np.exp(-(((x - 0.5) / 0.02) ** 2))
        at = rng.uniform(0.15, 0.85)
        edge -= rng.uniform(0.02, 0.04) * np.clip(1 - np.abs(x - at) / 0.03, 0, 1)
        out.append(edge)
    return np.asarray(out, dtype=np.float32)


def test_edge_rankings_find_the_whale_mirrored_and_skip_what_is_untraced():
    gallery = shapes(6)
    labels = ["a", "b", "c", "d", "e", "f"]
    gallery[4] = np.nan  # photo of "e" not traced: never returned
    rng = np.random.default_rng(3)
    queries = np.stack(
        [
            gallery[2] + rng.normal(0, 0.001, EDGE_SAMPLES),  # "c", slightly noisy
            gallery[5][::-1] + 0.02,  # "f" seen from the dorsal side, higher in its box
            np.full(EDGE_SAMPLES, np.nan),  # no edge: no ranking
            gallery[1],
        ]
    ).astype(np.float32)
    ranked = edge_rankings(queries, gallery, labels, neighbours=10, exclude=[None, None, None, 1])
    assert ranked[0][0][0] == "c" and ranked[1][0][0] == "f" and ranked[2] == []
    assert "b" not in [label for label, _ in ranked[3]]  # its only photo excluded
    for ranking in ranked:
        assert "e" not in [label for label, _ in ranking]
        distances = [d for _, d in ranking]
        assert distances == sorted(distances)
    assert edge_rankings(queries, np.full((2, EDGE_SAMPLES), np.nan), ["a", "b"]) == [[], [], [], []]


def test_edge_descriptors_zero_for_untraced_rows():
    edges = shapes(3)
    edges[1] = np.nan
    described = edge_descriptors(edges)
    assert np.all(described[1] == 0) and np.any(described[0] != 0)


def test_edges_of_orders_by_image_and_marks_missing_rows():
    edges = shapes(3)
    outlines = {
        "edges": edges,
        "index": pd.DataFrame(
            {
                "image": ["a.jpg", "b.jpg", "a.jpg"],
                "split": ["train", "train", "test"],
                "row": [0, 1, 2],
                "traced": [True, True, True],
                "reason": ["", "", ""],
            }
        ),
        "settings": {},
    }
    found = edges_of(outlines, ["b.jpg", "zz.jpg", "a.jpg"], "train")
    assert np.array_equal(found[0], edges[1]) and np.array_equal(found[2], edges[0])
    assert np.isnan(found[1]).all()
    assert np.array_equal(edges_of(outlines, ["a.jpg"], "test")[0], edges[2])
    assert edges_of(None, ["a.jpg"], "train") is None
