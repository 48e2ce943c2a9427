"""Materializing the identify stage from stand-in upstream artifacts, shared by the stage's Dagster tests."""

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from dagster import asset, instance_for_test, materialize

from core.resources import ComputeDevice, FlukeData, FlukeStorage
from models.embedding import EmbeddingSpec, build_embedding_model, weights_to_bytes
from pipelines.definitions import chain_part
from pipelines.io_managers import ArtifactIOManager

STAGE = ["gallery_index", "validation_report", "submission"]
RUN_CONFIG = {
    "ops": {
        "gallery_index": {"config": {"batch_size": 16}},
        "validation_report": {"config": {"k": 10, "sweep_points": 11, "workers": 1}},
        "submission": {"config": {"k": 10}},
    }
}


def no_keypoints(images: pd.DataFrame) -> dict:
    """A `core.artifacts.FlukeKeypoints` where no photo has keypoints (the worlds' 8 x 16 crops hold none): the
    calibrated decision then rests on the embedding's evidence alone."""
    index = images[["image", "split"]].assign(start=0, count=0).reset_index(drop=True)
    return {
        "points": np.zeros((0, 2), np.float32),
        "descriptors": np.zeros((0, 128), np.uint8),
        "index": index,
    }


def no_outlines(images: pd.DataFrame) -> dict:
    """A `core.artifacts.FlukeOutlines` where no photo's trailing edge was traced: the edge generator then finds
    nobody and the decision rests on the other evidence."""
    from models.outline import EDGE_SAMPLES

    index = images[["image", "split"]].reset_index(drop=True)
    index = index.assign(row=np.arange(len(index), dtype=np.int64), traced=False, reason="no fluke box")
    return {"edges": np.full((len(index), EDGE_SAMPLES), np.nan, np.float32), "index": index, "settings": {}}


def untrained_model(history: pd.DataFrame) -> dict:
    """A whole `core.artifacts.EmbeddingModel` (its type check wants every part) of a small untrained network;
    only weights and config are read by the stage."""
    torch.manual_seed(0)
    model = build_embedding_model(EmbeddingSpec(backbone="tiny_resnet", embedding_dim=8, head_hidden=16))
    return {"weights": weights_to_bytes(model), "config": {"model": model.spec.to_dict()}, "history": history}


def stand_ins(values: dict) -> list:
    """An asset per upstream name returning its value."""

    def stand_in(name):
        @asset(name=name)
        def _value():
            return values[name]

        return _value

    return [stand_in(name) for name in values]


def run_stage(upstream: dict, data_root: Path, storage: Path):
    """Materialize the stage and its checks over `upstream` (name -> value); returns the successful result."""
    resources = {
        "data": FlukeData(data_dir=str(data_root)),
        "storage": FlukeStorage(storage_dir=str(storage)),
        "device": ComputeDevice(device="cpu"),
        "io_manager": ArtifactIOManager(storage_dir=str(storage)),
    }
    with instance_for_test() as instance:
        result = materialize(
            [*stand_ins(upstream), *chain_part(*STAGE)],
            resources=resources,
            run_config=RUN_CONFIG,
            instance=instance,
        )
        assert result.success
        return result
