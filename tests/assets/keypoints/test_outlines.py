"""fluke_outlines' plain code: cache keys, the cached tracing, the index and its reasons, the completeness check."""

import numpy as np
import pandas as pd
import pytest

from assets.detect.truth import read_true_boxes
from assets.ingest.scan import scan_data_folder
from assets.keypoints import outlines as ko
from core.artifacts import OUTLINE_INDEX_COLUMNS
from core.caches import ArrayCache
from models.outline import EDGE_SAMPLES, OutlineSettings, trace_edge

SETTINGS = OutlineSettings()


@pytest.fixture(scope="module")
def manifest(tiny_dataset) -> pd.DataFrame:
    # A few photos keep the test short; tracing is per photo, so more would test nothing more.
    return scan_data_folder(tiny_dataset, workers=2)[0].head(20).reset_index(drop=True)


@pytest.fixture(scope="module")
def boxes(manifest, tiny_dataset) -> pd.DataFrame:
    truth = read_true_boxes(tiny_dataset)
    found = manifest[["image", "split"]].merge(truth, on="image").assign(confidence=1.0, fallback=False)
    # One photo with the whole-photo fallback box and one with none at all: neither is traced.
    found.loc[0, "fallback"] = True
    return found[found["image"] != manifest["image"].iloc[1]].reset_index(drop=True)


def test_cache_key_follows_the_photo_box_and_settings():
    box = (10.0, 20.0, 110.0, 70.0)
    key = ko.outline_cache_key("abc", box, SETTINGS)
    assert key == ko.outline_cache_key("abc", (10.01, 20.0, 110.0, 70.0), SETTINGS)
    assert key != ko.outline_cache_key("abd", box, SETTINGS)
    assert key != ko.outline_cache_key("abc", (11.0, 20.0, 110.0, 70.0), SETTINGS)
    assert key != ko.outline_cache_key("abc", box, OutlineSettings(width=255))


def test_every_photo_gets_a_row_traced_or_with_its_reason(manifest, boxes, tiny_dataset, tmp_path):
    cache = ArrayCache(tmp_path / "cache")
    stats: dict = {}
    value = ko.trace_outlines(manifest, boxes, tiny_dataset, SETTINGS, cache, workers=1, stats=stats)
    index, edges = value["index"], value["edges"]
    assert list(index.columns) == OUTLINE_INDEX_COLUMNS and len(index) == len(manifest) == len(edges)
    assert edges.shape == (len(manifest), EDGE_SAMPLES) and edges.dtype == np.float32
    assert list(index["image"]) == list(manifest["image"]) and list(index["row"]) == list(
        range(len(manifest))
    )
    assert index["reason"].iloc[0] == ko.NO_BOX and index["reason"].iloc[1] == ko.NO_BOX
    assert not index["traced"].iloc[:2].any() and np.isnan(edges[:2]).all()
    # Synthetic flukes on open water: most are traced (some grey photos show a fluke as dark as the water), and a
    # traced row is the photo's own edge.
    assert index["traced"].iloc[2:].mean() >= 0.7
    assert (index.loc[~index["traced"], "reason"] != "").all() and (
        index.loc[index["traced"], "reason"] == ""
    ).all()
    row = int(np.flatnonzero(index["traced"])[0])
    box = boxes.set_index("image").loc[manifest["image"].iloc[row], ["x0", "y0", "x1", "y1"]]
    alone = trace_edge(tiny_dataset / manifest["path"].iloc[row], tuple(float(v) for v in box), SETTINGS)
    assert np.array_equal(alone, edges[row])
    assert stats["computed"] == len(manifest) - 2 and stats["cached"] == 0
    assert ko.outline_problems(value, manifest) == {
        "missing": 0,
        "rows_inside": True,
        "traced_flags_agree": True,
        "shape_ok": True,
        "traced": int(index["traced"].sum()),
        "photos": len(manifest),
    }
    # A second run reads every traced photo back from the cache, with the same value.
    again: dict = {}
    second = ko.trace_outlines(manifest, boxes, tiny_dataset, SETTINGS, cache, workers=1, stats=again)
    assert again["computed"] == 0 and again["cached"] == len(manifest) - 2
    assert np.array_equal(second["edges"], edges, equal_nan=True) and second["index"].equals(index)


def test_a_malformed_cache_entry_is_recomputed(manifest, boxes, tiny_dataset, tmp_path):
    cache = ArrayCache(tmp_path / "cache")
    first = ko.trace_outlines(manifest.head(4), boxes, tiny_dataset, SETTINGS, cache, workers=1)
    key = ko.outline_cache_key(
        manifest["content_hash"].iloc[2],
        tuple(
            float(v)
            for v in boxes.set_index("image").loc[manifest["image"].iloc[2], ["x0", "y0", "x1", "y1"]]
        ),
        SETTINGS,
    )
    cache.put(key, np.zeros(7, np.float64))  # sealed and readable, but not an edge
    stats: dict = {}
    second = ko.trace_outlines(manifest.head(4), boxes, tiny_dataset, SETTINGS, cache, workers=1, stats=stats)
    assert stats["computed"] == 1
    assert np.array_equal(second["edges"], first["edges"], equal_nan=True)


def test_problems_name_missing_photos_and_flags_that_lie(manifest, boxes, tiny_dataset):
    value = ko.trace_outlines(manifest.head(4), boxes, tiny_dataset, SETTINGS, workers=1)
    assert ko.outline_problems(value, manifest.head(5))["missing"] == 1
    lying = {**value, "index": value["index"].assign(traced=True)}
    assert not ko.outline_problems(lying, manifest.head(4))["traced_flags_agree"]
    outside = {**value, "index": value["index"].assign(row=value["index"]["row"] + 10)}
    problems = ko.outline_problems(outside, manifest.head(4))
    assert not problems["rows_inside"] and not problems["traced_flags_agree"]
