"""fluke_keypoints' plain code: cache keys, the cached extraction, the flat arrays and their index."""

import numpy as np
import pandas as pd
import pytest

from assets.detect.truth import read_true_boxes
from assets.ingest.scan import scan_data_folder
from assets.keypoints import features as kf
from core.artifacts import KEYPOINT_INDEX_COLUMNS, FlukeKeypoints
from core.caches import ArrayCache
from models.keypoints import KeypointSettings, box_keypoints, features_by_image, features_of
from models.verification import LocalFeatures

SETTINGS = KeypointSettings(width=128, max_features=100)


@pytest.fixture(scope="module")
def manifest(tiny_dataset) -> pd.DataFrame:
    return scan_data_folder(tiny_dataset, workers=2)[0]


@pytest.fixture(scope="module")
def true_boxes(manifest, tiny_dataset) -> pd.DataFrame:
    truth = read_true_boxes(tiny_dataset)
    return manifest[["image", "split"]].merge(truth, on="image").assign(confidence=1.0, fallback=False)


def test_cache_key_follows_the_photo_box_and_settings():
    box = (10.0, 20.0, 110.0, 70.0)
    key = kf.keypoint_cache_key("abc", box, SETTINGS)
    assert key == kf.keypoint_cache_key("abc", (10.01, 20.0, 110.0, 70.0), SETTINGS)  # within 0.1 px
    assert key != kf.keypoint_cache_key("abd", box, SETTINGS)
    assert key != kf.keypoint_cache_key("abc", (10.5, 20.0, 110.0, 70.0), SETTINGS)
    assert key != kf.keypoint_cache_key("abc", None, SETTINGS)
    assert key != kf.keypoint_cache_key("abc", box, KeypointSettings(width=128, max_features=101))
    assert key != kf.keypoint_cache_key(
        "abc", box, KeypointSettings(width=128, max_features=100, root_sift=False)
    )
    # Workers change how fast, not what: the same entry.
    assert key == kf.keypoint_cache_key("abc", box, KeypointSettings(width=128, max_features=100, workers=7))


def test_encoding_round_trips():
    rng = np.random.default_rng(0)
    features = LocalFeatures(
        rng.uniform(0, 300, (5, 2)).astype(np.float32), rng.integers(0, 256, (5, 128), dtype=np.uint8)
    )
    entry = kf.encode(features)
    assert entry.dtype == np.uint8 and entry.shape == (5, kf.ENTRY_WIDTH)
    back = kf.decode(entry)
    assert np.array_equal(back.points, features.points) and np.array_equal(
        back.descriptors, features.descriptors
    )
    assert kf.decode(
        kf.encode(LocalFeatures(np.zeros((0, 2), np.float32), np.zeros((0, 128), np.uint8)))
    ).points.shape == (0, 2)


def test_extraction_is_cached_per_photo(manifest, true_boxes, tiny_dataset, tmp_path):
    cache, stats = ArrayCache(tmp_path / "cache"), {}
    value = kf.extract_keypoints(manifest, true_boxes, tiny_dataset, SETTINGS, cache, workers=2, stats=stats)
    index = value["index"]
    assert list(index.columns) == KEYPOINT_INDEX_COLUMNS and list(index["image"]) == list(manifest["image"])
    assert value["points"].dtype == np.float32 and value["points"].shape == (index["count"].sum(), 2)
    assert value["descriptors"].dtype == np.uint8 and value["descriptors"].shape == (
        len(value["points"]),
        128,
    )
    assert stats["computed"] == len(manifest) and stats["cached"] == 0
    assert index["count"].mean() > 20 and (index["count"] <= SETTINGS.max_features).all()
    problems = kf.keypoint_problems(value, manifest)
    assert problems["missing"] == 0 and problems["tiled"] and problems["shapes"]

    again = kf.extract_keypoints(manifest, true_boxes, tiny_dataset, SETTINGS, cache, workers=2, stats=stats)
    assert stats["computed"] == 0 and stats["cached"] == len(manifest)
    assert all(np.array_equal(value[part], again[part]) for part in ("points", "descriptors"))
    # A moved box is a new key: that photo alone is recomputed.
    moved = true_boxes.copy()
    moved.loc[0, "x1"] = moved.loc[0, "x1"] - 20
    kf.extract_keypoints(manifest, moved, tiny_dataset, SETTINGS, cache, workers=2, stats=stats)
    assert stats["computed"] == 1
    # A changed setting misses every entry.
    photos = manifest.head(20)
    fewer = KeypointSettings(width=128, max_features=50)
    kf.extract_keypoints(photos, true_boxes, tiny_dataset, fewer, cache, workers=2, stats=stats)
    assert stats["computed"] == len(photos)


def test_photo_keypoints_are_the_box_keypoints_and_fallbacks_use_the_whole_photo(
    manifest, true_boxes, tiny_dataset
):
    photos = manifest.head(6).reset_index(drop=True)
    boxes = true_boxes.copy()
    fallback = boxes["image"] == photos["image"].iloc[1]
    boxes.loc[fallback, "fallback"] = True
    boxes = boxes[boxes["image"] != photos["image"].iloc[2]]  # no box row at all
    value = kf.extract_keypoints(photos, boxes, tiny_dataset, SETTINGS, workers=1)
    box = tuple(
        float(v) for v in true_boxes.set_index("image").loc[photos["image"].iloc[0], ["x0", "y0", "x1", "y1"]]
    )
    expected = [box_keypoints(tiny_dataset / photos["path"].iloc[0], box, SETTINGS)]
    expected += [box_keypoints(tiny_dataset / photos["path"].iloc[i], None, SETTINGS) for i in (1, 2)]
    for i, want in enumerate(expected):
        row = value["index"].iloc[i]
        got = features_of(value, int(row["start"]), int(row["count"]))
        assert np.array_equal(got.points, want.points) and np.array_equal(got.descriptors, want.descriptors)
    assert kf.photo_boxes(photos, boxes)[1:3] == [None, None] and kf.photo_boxes(photos, boxes)[0] == box


def test_slices_read_back_from_memory_mapped_arrays(manifest, true_boxes, tiny_dataset, tmp_path):
    photos = manifest.head(5)
    value = kf.extract_keypoints(photos, true_boxes, tiny_dataset, SETTINGS, workers=1)
    for part in ("points", "descriptors"):
        np.save(tmp_path / f"{part}.npy", value[part])
    mapped = {part: np.load(tmp_path / f"{part}.npy", mmap_mode="r") for part in ("points", "descriptors")}
    loaded = FlukeKeypoints(index=value["index"], **mapped)
    by_image = features_by_image(loaded)
    assert list(by_image) == list(photos["image"])
    for image, start, count in value["index"][["image", "start", "count"]].itertuples(index=False):
        one = by_image[image]
        assert (
            len(one) == count and isinstance(one.points, np.ndarray) and not isinstance(one.points, np.memmap)
        )
        assert np.array_equal(one.descriptors, value["descriptors"][start : start + count])
        assert np.array_equal(one.points, value["points"][start : start + count])
    split = photos["split"].iloc[0]
    assert set(features_by_image(loaded, split=split)) == set(photos.loc[photos["split"] == split, "image"])


def test_problems_name_a_missing_photo_and_broken_tiling(manifest, true_boxes, tiny_dataset):
    photos = manifest.head(4)
    value = kf.extract_keypoints(photos, true_boxes, tiny_dataset, SETTINGS, workers=1)
    short = {**value, "index": value["index"].iloc[:-1]}
    assert kf.keypoint_problems(short, photos)["missing"] == 1
    assert not kf.keypoint_problems(short, photos)["tiled"]  # the arrays hold more than the slices
    shifted = value["index"].copy()
    shifted.loc[1, "start"] += 1
    assert not kf.keypoint_problems({**value, "index": shifted}, photos)["tiled"]


FORKED_AFTER_SIFT = """
import sys
import numpy as np
import pandas as pd
from PIL import Image
from assets.keypoints.features import extract_keypoints
from models.keypoints import KeypointSettings, grey_keypoints

folder = sys.argv[1]
rng = np.random.default_rng(0)
for i in range(20):
    coarse = Image.fromarray(rng.integers(0, 256, (30, 40), dtype=np.uint8))
    coarse.resize((320, 240), Image.Resampling.BICUBIC).save(f"{folder}/{i}.png")
manifest = pd.DataFrame(
    {"image": [f"{i}.png" for i in range(20)], "split": "train", "path": [f"{i}.png" for i in range(20)]}
).assign(content_hash=lambda m: m["image"])
settings = KeypointSettings(width=128, max_features=50)
grey_keypoints(np.asarray(Image.open(f"{folder}/0.png")), settings)  # OpenCV's thread pool now exists
value = extract_keypoints(manifest, pd.DataFrame(columns=["image", "split", "x0", "y0", "x1", "y1"]), folder,
                          settings, workers=2)
print(int(value["index"]["count"].sum()))
"""


def test_workers_forked_after_sift_in_this_process_do_not_hang(tmp_path):
    # OpenCV deadlocks in a forked child that changes its thread count once the parent has run SIFT on threads.
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", FORKED_AFTER_SIFT, str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.strip()) > 20 * 10


def test_a_malformed_cache_entry_is_recomputed(manifest, true_boxes, tiny_dataset, tmp_path):
    photos, cache, stats = manifest.head(3), ArrayCache(tmp_path / "cache"), {}
    value = kf.extract_keypoints(photos, true_boxes, tiny_dataset, SETTINGS, cache, workers=1)
    box = kf.photo_boxes(photos, true_boxes)[0]
    key = kf.keypoint_cache_key(photos["content_hash"].iloc[0], box, SETTINGS)
    cache.put(key, np.zeros((4, 8), dtype=np.float32))  # e.g. written by another version by mistake
    again = kf.extract_keypoints(photos, true_boxes, tiny_dataset, SETTINGS, cache, workers=1, stats=stats)
    assert stats["computed"] == 1 and np.array_equal(value["descriptors"], again["descriptors"])
    assert cache.get(key).shape[1] == kf.ENTRY_WIDTH
