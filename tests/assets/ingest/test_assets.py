"""raw_images in Dagster: converted photos are counted in its metadata, links out of the data folder are
rejected with their reason, and the data resource's `allow_outside_links` lets them in."""

import numpy as np
import pandas as pd
import pytest
from dagster import instance_for_test, materialize
from PIL import Image

from core.resources import FlukeData, FlukeStorage
from pipelines.definitions import chain_part
from pipelines.io_managers import ArtifactIOManager


@pytest.fixture
def folder(tmp_path):
    root, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    for path in (root / "train", root / "test", elsewhere):
        path.mkdir(parents=True)
    pixels = np.random.default_rng(0).integers(0, 255, (60, 90, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(root / "train" / "plain.jpg", quality=90)
    Image.fromarray(pixels).save(root / "train" / "png.jpg", format="PNG")
    Image.fromarray(pixels).convert("CMYK").save(root / "test" / "cmyk.jpg", quality=90)
    Image.fromarray(pixels).save(elsewhere / "far.jpg", quality=90)
    (root / "train" / "link.jpg").symlink_to(elsewhere / "far.jpg")
    rows = [("plain.jpg", "w_1"), ("png.jpg", "w_1"), ("link.jpg", "w_2")]
    pd.DataFrame(rows, columns=["Image", "Id"]).to_csv(root / "train.csv", index=False)
    return root


def materialize_raw_images(root, storage, allow_outside_links: bool) -> dict:
    resources = {
        "data": FlukeData(data_dir=str(root), allow_outside_links=allow_outside_links),
        "storage": FlukeStorage(storage_dir=str(storage)),
        "io_manager": ArtifactIOManager(storage_dir=str(storage)),
    }
    with instance_for_test() as instance:
        result = materialize(chain_part("raw_images"), resources=resources, instance=instance)
        assert result.success
        (event,) = result.get_asset_materialization_events()
        return event.materialization.metadata


def test_raw_images_counts_conversions_and_rejects_links_out(folder, tmp_path):
    metadata = materialize_raw_images(folder, tmp_path / "storage", allow_outside_links=False)
    assert metadata["converted"].value == 2
    assert metadata["converted_by_kind"].value == {"png": 1, "cmyk": 1}
    assert metadata["rejected_by_reason"].value == {"outside_data_folder": 1}
    rejected = pd.read_parquet(tmp_path / "storage" / "raw_images" / "rejected.parquet")
    assert rejected[["image", "reason"]].values.tolist() == [["link.jpg", "outside_data_folder"]]
    images = pd.read_parquet(tmp_path / "storage" / "raw_images" / "images.parquet")
    assert dict(zip(images["image"], images["converted"])) == {
        "cmyk.jpg": "cmyk",
        "plain.jpg": "",
        "png.jpg": "png",
    }


def test_the_data_resource_can_allow_links_out(folder, tmp_path):
    metadata = materialize_raw_images(folder, tmp_path / "storage", allow_outside_links=True)
    assert metadata["rejected"].value == 0 and metadata["train_images"].value == 3
