"""Inspecting one photo, and the per-file inspection cache (whose file layout earlier runs wrote)."""

from dataclasses import asdict

import numpy as np
import pandas as pd
from PIL import Image

from assets.ingest.inspection import (
    INSPECT_VERSION,
    REPORT_COLUMNS,
    inspect_image,
    inspect_images,
    inspection_cache,
)
from core.caches import TableCache
from core.digests import stable_digest


def test_rgb_photo_with_equal_channels_counts_as_grayscale(tmp_path):
    gray = np.random.default_rng(0).integers(0, 255, (100, 150), dtype=np.uint8)
    Image.fromarray(np.stack([gray] * 3, axis=-1)).save(tmp_path / "x.jpg", quality=95)
    report = inspect_image(tmp_path / "x.jpg")
    assert report.mode == "RGB" and report.is_grayscale and not report.reason


def _photos(folder, count=3):
    folder.mkdir()
    paths = []
    for seed in range(count):
        pixels = np.random.default_rng(seed).integers(0, 255, (40, 60, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"p{seed}.jpg", quality=90)
        paths.append(folder / f"p{seed}.jpg")
    return paths


def test_cache_written_before_is_read_as_it_is(tmp_path):
    # The layout earlier runs stored: a `key` column (inspect version, path, size, mtime) and the report fields.
    paths = _photos(tmp_path / "photos")
    rows = []
    for path in paths:
        stat = path.stat()
        key = stable_digest(INSPECT_VERSION, str(path), stat.st_size, stat.st_mtime_ns)
        rows.append({"key": key, **asdict(inspect_image(path))})
    TableCache(tmp_path / "inspected.parquet").store(pd.DataFrame(rows))
    reports, inspected = inspect_images(
        paths, cache=inspection_cache(tmp_path / "inspected.parquet"), workers=1
    )
    assert inspected == 0
    assert reports == [inspect_image(path) for path in paths]


def test_cache_stores_the_same_columns_and_skips_missing_files(tmp_path):
    paths = _photos(tmp_path / "photos") + [tmp_path / "photos" / "gone.jpg"]
    cache = inspection_cache(tmp_path / "inspected.parquet")
    reports, inspected = inspect_images(paths, cache=cache, workers=1)
    assert inspected == 4 and reports[-1].reason == "missing_file"
    stored = pd.read_parquet(tmp_path / "inspected.parquet")
    assert set(stored.columns) == {"key", *REPORT_COLUMNS} and len(stored) == 3
    again, inspected = inspect_images(paths, cache=cache, workers=1)
    assert inspected == 1 and again == reports
