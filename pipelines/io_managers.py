"""The one IO manager: every asset's output lands under the storage folder, written atomically.

- a `pandas.DataFrame` becomes `<storage>/<asset>.parquet` (pyarrow);
- a `dict` of named parts becomes a folder `<storage>/<asset>/` holding one file per part:
  DataFrame -> `.parquet`, numpy array -> `.npy` (loaded back memory-mapped), bytes -> `.bin`,
  anything else JSON-serialisable -> `.json`.
The folder is built beside the old one and swapped in, so a killed run leaves the previous artifact whole.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from dagster import ConfigurableIOManager, InputContext, OutputContext

from core.files import atomic_dir, write_json, write_npy, write_parquet

_SUFFIXES = (".parquet", ".npy", ".bin", ".json")


class ArtifactIOManager(ConfigurableIOManager):
    storage_dir: str = "storage"

    def _base(self, context: InputContext | OutputContext) -> Path:
        return Path(self.storage_dir).expanduser().resolve().joinpath(*context.asset_key.path)

    def handle_output(self, context: OutputContext, obj: object) -> None:
        base = self._base(context)
        if isinstance(obj, pd.DataFrame):
            write_parquet(obj, base.with_suffix(".parquet"))
            context.add_output_metadata({"path": str(base.with_suffix(".parquet"))})
        elif isinstance(obj, dict):
            with atomic_dir(base) as tmp:
                for name, part in obj.items():
                    write_part(tmp / name, part)
            context.add_output_metadata({"path": str(base)})
        elif obj is None:
            return
        else:
            raise TypeError(
                f"{context.asset_key.to_user_string()}: the artifact IO manager stores DataFrames and dicts of "
                f"named parts, not {type(obj).__name__}"
            )

    def load_input(self, context: InputContext) -> object:
        base = self._base(context)
        if base.with_suffix(".parquet").exists():
            return pd.read_parquet(base.with_suffix(".parquet"))
        if base.is_dir():
            return read_parts(base)
        raise FileNotFoundError(
            f"no stored artifact for {context.asset_key.to_user_string()} under {base}: materialize it first"
        )


def write_part(stem: Path, part: object) -> None:
    if isinstance(part, pd.DataFrame):
        write_parquet(part, stem.with_suffix(".parquet"))
    elif isinstance(part, np.ndarray):
        write_npy(part, stem.with_suffix(".npy"))
    elif isinstance(part, bytes):
        stem.with_suffix(".bin").write_bytes(part)
    else:
        write_json(part, stem.with_suffix(".json"))


def read_parts(folder: Path) -> dict[str, object]:
    parts: dict[str, object] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix == ".parquet":
            parts[path.stem] = pd.read_parquet(path)
        elif path.suffix == ".npy":
            parts[path.stem] = np.load(path, mmap_mode="r", allow_pickle=False)
        elif path.suffix == ".bin":
            parts[path.stem] = path.read_bytes()
        elif path.suffix == ".json":
            parts[path.stem] = json.loads(path.read_text())
    return parts
