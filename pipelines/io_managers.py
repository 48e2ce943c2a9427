"""The one IO manager: every asset's output lands under the storage folder, written atomically and sealed.

- a `pandas.DataFrame` becomes `<storage>/<asset>.parquet` (pyarrow);
- a `dict` of named parts becomes a folder `<storage>/<asset>/` holding one file per part:
  DataFrame -> `.parquet`, numpy array -> `.npy` (loaded back memory-mapped), bytes -> `.bin`,
  anything else JSON-serialisable -> `.json`.
The folder is built beside the old one and swapped in, so a killed run leaves the previous artifact whole.

Beside each artifact, `<storage>/<asset>.sha256` (`sha256sum` format, paths relative to the storage folder, so
`cd storage && sha256sum -c fluke_tensors.sha256` checks it by hand) holds the sha256 of every file. The new
digests are recorded before the artifact is swapped in and alone after it, so the sidecar vouches for whatever a
kill leaves. Loading checks each file first: bytes that no longer match (truncated, overwritten, edited) fail
with the path and "rematerialize <asset>", rather than flowing downstream. An artifact stored before digests is
checked for readability only, and sealed as it is on its first load.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from dagster import ConfigurableIOManager, InputContext, OutputContext

from core.files import (
    atomic_dir,
    atomic_path,
    file_sha256,
    pid_lock,
    read_digests,
    write_digests,
    write_json,
    write_npy,
    write_parquet,
)

_SUFFIXES = (".parquet", ".npy", ".bin", ".json")
logger = logging.getLogger("flukeid.io")
# Digests already checked in this process, by (path, size, mtime, ctime, inode): a multi-GB tensor store read by
# several assets of one run is hashed once; any write to the file changes its ctime, which no one can set back.
_VERIFIED: dict[tuple, str] = {}


class DamagedArtifact(RuntimeError):
    """A stored artifact whose bytes do not match the digests recorded when it was stored."""


def partition_parts(partition_key: str) -> list[str]:
    """The folders of one partition under its asset's: a multi-partition key's dimensions last first
    (experiment_run's `<seed>|<experiment>.<variant>` -> `<experiment>.<variant>/<seed>`), a plain key as it is.
    A part that is not a plain file name is refused rather than written outside the asset's folder, and so is a
    last part with a dot (the artifact's files are named by replacing its suffix)."""
    parts = list(reversed(partition_key.split("|")))
    for part in parts:
        if not part or part in (".", "..") or "/" in part or "\\" in part:
            raise ValueError(f"partition key {partition_key!r}: {part!r} cannot name a folder")
    if "." in parts[-1]:
        raise ValueError(f"partition key {partition_key!r}: its last folder {parts[-1]!r} may not hold a dot")
    return parts


class ArtifactIOManager(ConfigurableIOManager):
    """Stores under `<storage>/<asset>`; a partitioned asset's partition under `<storage>/<asset>/<partition>`.
    An unpartitioned asset reading a partitioned one gets a dict, partition key -> value, of the partitions
    stored (those never materialized are left out, so a comparison reads what there is)."""

    storage_dir: str = "storage"

    def _asset_base(self, context: InputContext | OutputContext) -> Path:
        return Path(self.storage_dir).expanduser().resolve().joinpath(*context.asset_key.path)

    def _base(self, context: InputContext | OutputContext) -> Path:
        base = self._asset_base(context)
        if context.has_asset_partitions:
            return base.joinpath(*partition_parts(context.asset_partition_key))
        return base

    def handle_output(self, context: OutputContext, obj: object) -> None:
        base = self._base(context)
        if isinstance(obj, pd.DataFrame):
            store_table(obj, base)
            context.add_output_metadata({"path": str(base.with_suffix(".parquet"))})
        elif isinstance(obj, dict):
            store_parts(obj, base)
            context.add_output_metadata({"path": str(base)})
        elif obj is None:
            return
        else:
            raise TypeError(
                f"{context.asset_key.to_user_string()}: the artifact IO manager stores DataFrames and dicts of "
                f"named parts, not {type(obj).__name__}"
            )

    def load_input(self, context: InputContext) -> object:
        name = context.asset_key.to_user_string()
        if context.has_asset_partitions and not context.has_partition_key:
            base, stored = self._asset_base(context), {}
            for key in context.asset_partition_keys:
                path = base.joinpath(*partition_parts(key))
                if path.with_suffix(".parquet").exists() or path.is_dir():
                    stored[key] = load_artifact(path, f"{name} partition {key}")
            return stored
        return load_artifact(self._base(context), name)


def digest_path(base: Path) -> Path:
    """`<storage>/<asset>.sha256`, beside the artifact (`<asset>.parquet` or the folder `<asset>/`)."""
    return base.with_name(f"{base.name}.sha256")


def _relative(path: Path, base: Path) -> str:
    return str(path.relative_to(base.parent))


def _record(base: Path, new: dict[str, str], keep_current: bool) -> None:
    """Write the sidecar: the new digests, and with `keep_current` those of the artifact still in place too (so
    whichever one a kill leaves is vouched for)."""
    current = read_digests(digest_path(base)) if keep_current else {}
    merged = {
        name: [digest, *[d for d in current.get(name, []) if d != digest][:1]] for name, digest in new.items()
    }
    merged.update({name: digests[:1] for name, digests in current.items() if name not in new})
    write_digests(digest_path(base), merged)


def _remember(files: list[Path], digests: dict[str, str], base: Path) -> None:
    for path in files:
        _VERIFIED[_stamp(path)] = digests[_relative(path, base)]


def _lock(base: Path):
    """One store or check of an artifact at a time: a load never checks a file against a sidecar mid-update."""
    return pid_lock(base.with_name(f".{base.name}.sha256.lock"), log=logger.info)


def store_table(table: pd.DataFrame, base: Path) -> None:
    """`<base>.parquet`, sealed: its digest recorded beside the current one before the swap, alone after it."""
    target = base.with_suffix(".parquet")
    with _lock(base):
        with atomic_path(target) as tmp:
            table.to_parquet(tmp, index=False)
            new = {target.name: file_sha256(tmp)}
            _record(base, new, keep_current=True)
        _record(base, new, keep_current=False)
        _remember([target], new, base)


def store_parts(parts: dict, base: Path) -> None:
    """The folder `<base>/`, one file per part, swapped in whole and sealed like `store_table`."""
    with _lock(base):
        with atomic_dir(base) as tmp:
            for name, part in parts.items():
                write_part(tmp / name, part)
            files = sorted(p for p in tmp.iterdir() if p.is_file())
            new = {f"{base.name}/{p.name}": file_sha256(p) for p in files}
            _record(base, new, keep_current=True)
        _record(base, new, keep_current=False)
        _remember([base / p.name for p in files], new, base)


def _stamp(path: Path) -> tuple:
    stat = path.stat()
    return (str(path), stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino)


def verify_artifact(base: Path, asset: str) -> bool:
    """Check every file of the artifact at `base` against `<asset>.sha256`. Raises `DamagedArtifact` (naming
    the file and "rematerialize <asset>") on a mismatch; returns False when there is nothing to check against
    (stored before digests), True when every file matched."""
    files = _files(base)
    if not digest_path(base).exists():
        return False
    recorded = read_digests(digest_path(base))
    for path in files:
        name = _relative(path, base)
        stamp = _stamp(path)
        digest = _VERIFIED.get(stamp) or file_sha256(path)
        if digest not in recorded.get(name, []):
            raise DamagedArtifact(
                f"stored artifact {asset} is damaged: {path} does not match its digest in {digest_path(base)} "
                f"(truncated, overwritten or edited since it was stored): rematerialize {asset}"
            )
        _VERIFIED[stamp] = digest
    return True


def _files(base: Path) -> list[Path]:
    table = base.with_suffix(".parquet")
    if table.exists():
        return [table]
    return sorted(p for p in base.iterdir() if p.is_file() and p.suffix in _SUFFIXES)


def load_artifact(base: Path, asset: str) -> object:
    """The stored value of `asset` at `base`, checked against its digests first."""
    if not base.with_suffix(".parquet").exists() and not base.is_dir():
        raise FileNotFoundError(f"no stored artifact for {asset} under {base}: materialize it first")
    with _lock(base):
        return _checked_load(base, asset)


def _checked_load(base: Path, asset: str) -> object:
    sealed = verify_artifact(base, asset)
    try:
        if base.with_suffix(".parquet").exists():
            value = pd.read_parquet(base.with_suffix(".parquet"))
        else:
            value = read_parts(base)
    except (OSError, ValueError, EOFError) as error:  # unreadable though no digest says so (never sealed)
        raise DamagedArtifact(
            f"stored artifact {asset} under {base} cannot be read ({type(error).__name__}: {error}): "
            f"rematerialize {asset}"
        ) from error
    if not sealed:  # stored before digests, and it reads: vouched for as it is from now on
        logger.info(f"{asset}: stored before digests; sealed as it is in {digest_path(base)}")
        write_digests(digest_path(base), {_relative(p, base): [file_sha256(p)] for p in _files(base)})
    return value


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
