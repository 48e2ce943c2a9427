"""Resources: the environment a run lives in (where the photos are, where artifacts go, which device).

Hyperparameters do not live here: they are `Config` fields on the assets.
"""

from __future__ import annotations

import os
from pathlib import Path

from dagster import ConfigurableResource

from core.formats import HUMPBACK


class FlukeData(ConfigurableResource):
    """The Kaggle-layout data folder: `train.csv`, `train/`, `test/`, optional `annotations/boxes.csv`; or the
    2022 Happywhale layout (`train.csv` with `image,species,individual_id`, `train_images/`, `test_images/`),
    detected from train.csv's header (`core.formats`).

    Read-only to the pipeline. Every photo must lie inside the folder: a name or symlink that resolves outside
    it is rejected (`outside_data_folder`) before the file is opened, unless `allow_outside_links` is set.
    """

    data_dir: str
    allow_outside_links: bool = False
    """Accept photos that are symlinks to files outside the data folder (for a folder deliberately assembled
    from links to photos kept elsewhere). Off: such a photo is rejected unread, with reason
    `outside_data_folder`."""

    species: str = HUMPBACK
    """Where train.csv has a species column (the Happywhale layout), the species whose rows are used; rows of
    other species are rejected unread (`other_species`). Empty: every species. Ignored without a species
    column."""

    decisions_file: str = "reviews/decisions.csv"
    """The review decisions (`flukeid review` appends to it; `core.decisions`), relative to the data folder unless
    absolute. Read as labels by `raw_images`; kept outside the storage folder so that wiping storage loses none."""

    encounter_window_minutes: float = 0.0
    """Test photos whose EXIF capture times follow each other within this many minutes form one encounter
    (identified together), unless `encounters.csv` places them. 0 (default) or less: off. Opt-in because real
    Kaggle photos carry no EXIF, and consecutive photos of a pod may show different whales."""

    @property
    def root(self) -> Path:
        return Path(self.data_dir).expanduser().resolve()

    @property
    def decisions_path(self) -> Path:
        path = Path(self.decisions_file).expanduser()
        return path if path.is_absolute() else self.root / path

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
            raise RuntimeError(
                f"FLUKEID_DEVICE={self.device} but torch sees no CUDA device (torch {torch.__version__}, CUDA "
                f"build {torch.version.cuda or 'none'}): run with FLUKEID_DEVICE=auto or cpu on this machine"
            )
        if choice not in ("cpu",) and not choice.startswith("cuda"):
            raise ValueError(f"FLUKEID_DEVICE must be auto, cpu or cuda[:N], got {self.device!r}")
        return torch.device(choice)


def default_storage_dir() -> str:
    return os.environ.get("FLUKEID_STORAGE_DIR", "storage")


def default_data_dir() -> str:
    return os.environ.get("FLUKEID_DATA_DIR", "data/demo")


def default_decisions_file() -> str:
    return os.environ.get("FLUKEID_DECISIONS_FILE", "reviews/decisions.csv")


def default_species() -> str:
    return os.environ.get("FLUKEID_SPECIES", HUMPBACK)


def default_device() -> str:
    return os.environ.get("FLUKEID_DEVICE", "auto")
