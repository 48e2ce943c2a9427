"""Resources: the environment a run lives in (where the photos are, where artifacts go, which device).

Hyperparameters do not live here: they are `Config` fields on the assets.
"""

from __future__ import annotations

import os
from pathlib import Path

from dagster import ConfigurableResource


class FlukeData(ConfigurableResource):
    """The Kaggle-layout data folder: `train.csv`, `train/`, `test/`, optional `annotations/boxes.csv`.

    Read-only to the pipeline. Every photo must lie inside the folder: a name or symlink that resolves outside
    it is rejected (`outside_data_folder`) before the file is opened, unless `allow_outside_links` is set.
    """

    data_dir: str
    allow_outside_links: bool = False
    """Accept photos that are symlinks to files outside the data folder (for a folder deliberately assembled
    from links to photos kept elsewhere). Off: such a photo is rejected unread, with reason
    `outside_data_folder`."""

    @property
    def root(self) -> Path:
        return Path(self.data_dir).expanduser().resolve()

    @property
    def train_csv(self) -> Path:
        return self.root / "train.csv"

    @property
    def annotations_csv(self) -> Path:
        return self.root / "annotations" / "boxes.csv"


class FlukeStorage(ConfigurableResource):
    """Where artifacts, per-image caches and model checkpoints go (`FLUKEID_STORAGE_DIR`, default `storage/`)."""

    storage_dir: str = "storage"

    @property
    def root(self) -> Path:
        root = Path(self.storage_dir).expanduser().resolve()
        root.mkdir(parents=True, exist_ok=True)
        return root

    def cache_dir(self, stage: str) -> Path:
        """Per-image cache folder of one stage; entries are keyed by content hash, stage version and config."""
        path = self.root / "cache" / stage
        path.mkdir(parents=True, exist_ok=True)
        return path

    def work_dir(self, name: str) -> Path:
        """A folder for a stage's working files (checkpoints, detector runs) that must survive a killed run."""
        path = self.root / "work" / name
        path.mkdir(parents=True, exist_ok=True)
        return path


class ComputeDevice(ConfigurableResource):
    """`auto` uses CUDA when present, else CPU (`FLUKEID_DEVICE`)."""

    device: str = "auto"

    def torch_device(self):
        import torch

        choice = self.device.lower()
        if choice == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if choice.startswith("cuda") and not torch.cuda.is_available():
            raise RuntimeError(f"FLUKEID_DEVICE={self.device} but torch sees no CUDA device")
        if choice not in ("cpu",) and not choice.startswith("cuda"):
            raise ValueError(f"FLUKEID_DEVICE must be auto, cpu or cuda[:N], got {self.device!r}")
        return torch.device(choice)


def default_storage_dir() -> str:
    return os.environ.get("FLUKEID_STORAGE_DIR", "storage")


def default_data_dir() -> str:
    return os.environ.get("FLUKEID_DATA_DIR", "data/demo")


def default_device() -> str:
    return os.environ.get("FLUKEID_DEVICE", "auto")
