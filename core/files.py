"""Atomic file writes, file digests, sealed files and pid locks.

A write goes to a temporary file beside its target and is renamed over it, so a killed run leaves the last
good artifact in place. Folders are swapped the same way (new folder in, old folder out). The temporary files of
a killed write (`.<name>.<pid>-<random>.tmp`) are removed at the next write of the same target, once their
writer is gone.

A sealed file has a sidecar `<name>.sha256` in `sha256sum` format (`sha256sum -c` reads it): the digest is
written before the file is swapped in, so a reader never meets a file the sidecar does not vouch for. A pid lock
(`pid_lock`) lets one process at a time do a piece of work; the others wait for it, and the lock of a process that
died is free again (the kernel drops a dead holder's `flock`).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import io
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

logger = logging.getLogger("flukeid.files")
# A temporary file whose writer's pid is unknown (written before pids were in the name) is left this long.
STALE_TMP_SECONDS = 60.0


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this machine (one we may not signal counts as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _tmp_writer(name: str, target_name: str) -> tuple[str | None, int | None]:
    """What a file beside `target_name` is: ('tmp' | 'old' | None, its writer's pid or None when unknown)."""
    prefix = f".{target_name}."
    if not name.startswith(prefix):
        return None, None
    rest = name[len(prefix) :]
    old = re.fullmatch(r"old\.(\d+)(?:-[A-Za-z0-9_]{8}\.tmp)?", rest)  # a folder swapped out, not yet removed
    if old:
        return "old", int(old.group(1))
    if not rest.endswith(".tmp"):
        return None, None
    middle = rest[: -len(".tmp")]
    mine = re.fullmatch(r"(\d+)-[A-Za-z0-9_]{8}(?:\.[^/]*)?", middle)
    if mine:
        return "tmp", int(mine.group(1))
    if re.fullmatch(r"[A-Za-z0-9_]{8}(?:\.[^/]*)?", middle):  # the form before pids were in the name
        return "tmp", None
    return None, None


def clean_stale_temporaries(target: Path, now: float | None = None) -> list[Path]:
    """Remove the temporary files and folders that killed writes of `target` left beside it.

    Only leftovers whose writer is gone: the pid in the name is dead, or (for names without a pid) nothing
    touched them for `STALE_TMP_SECONDS`. A concurrent writer's file is never removed. A folder swapped out by a
    write killed before the new one was swapped in is put back when `target` is missing (nothing is lost).
    Returns what was removed or restored."""
    target = Path(target)
    now = time.time() if now is None else now
    cleaned: list[Path] = []
    try:
        candidates = list(target.parent.glob(f".{glob_escape(target.name)}.*"))
    except OSError:
        return cleaned
    for path in candidates:
        kind, pid = _tmp_writer(path.name, target.name)
        if kind is None:
            continue
        try:
            age = now - path.lstat().st_mtime
        except FileNotFoundError:
            continue
        if pid_alive(pid) if pid is not None else age < STALE_TMP_SECONDS:
            continue
        try:
            if kind == "old" and path.is_dir() and not target.exists():
                os.replace(path, target)
                logger.warning(f"restored {target} from {path.name}, left by a killed write")
            elif path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        except FileNotFoundError:
            continue
        cleaned.append(path)
    if cleaned:
        logger.info(f"removed {len(cleaned)} temporary file(s) of killed writes of {target}")
    return cleaned


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def _tmp_prefix(target: Path) -> str:
    return f".{target.name}.{os.getpid()}-"


@contextmanager
def atomic_path(target: Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to `target`; rename it onto `target` only if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(target)
    fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(target), suffix=suffix + ".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_parquet(df: pd.DataFrame, target: Path) -> None:
    with atomic_path(target) as tmp:
        df.to_parquet(tmp, index=False)


def write_npy(array: np.ndarray, target: Path) -> None:
    # np.save(path) would append ".npy" to the temporary name: write through a handle instead.
    with atomic_path(target) as tmp, open(tmp, "wb") as handle:
        np.save(handle, np.ascontiguousarray(array), allow_pickle=False)


def write_bytes(data: bytes, target: Path) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_json(obj: object, target: Path) -> None:
    write_bytes(json.dumps(obj, indent=2, sort_keys=True, default=str).encode(), target)


@contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """Yield a fresh temporary folder; swap it in for `target` only if the block succeeds.

    The swap (old folder out, new folder in) holds a lock, so two runs storing the same folder at once each
    swap whole and neither fails."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(target)
    tmp = Path(tempfile.mkdtemp(prefix=_tmp_prefix(target), suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        with pid_lock(target.with_name(f".{target.name}.lock"), log=logger.info):
            old = None
            if target.exists():
                old = Path(
                    tempfile.mkdtemp(
                        prefix=f".{target.name}.old.{os.getpid()}-", suffix=".tmp", dir=target.parent
                    )
                )
                os.replace(target, old)
            os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def to_npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------------------------
# Sealed files: a `<name>.sha256` sidecar vouches for the file's bytes.


def seal_path(target: Path) -> Path:
    target = Path(target)
    return target.with_name(f"{target.name}.sha256")


def read_digests(sidecar: Path) -> dict[str, list[str]]:
    """`{file name: [accepted sha256, ...]}` from a `sha256sum`-format file (empty when missing or unreadable)."""
    found: dict[str, list[str]] = {}
    try:
        text = Path(sidecar).read_text()
    except (OSError, UnicodeDecodeError):
        return found
    for line in text.splitlines():
        match = re.fullmatch(r"([0-9a-f]{64}) [ *](.+)", line.strip())
        if match:
            found.setdefault(match.group(2), []).append(match.group(1))
    return found


def write_digests(sidecar: Path, digests: dict[str, list[str]]) -> None:
    lines = [f"{digest}  {name}\n" for name, accepted in digests.items() for digest in accepted]
    write_bytes("".join(lines).encode(), sidecar)


def seal_file(target: Path, digest: str | None = None) -> str:
    """Write the sidecar of `target` as it is now; returns its digest."""
    target = Path(target)
    digest = digest or file_sha256(target)
    write_digests(seal_path(target), {target.name: [digest]})
    return digest


def check_seal(target: Path) -> str:
    """'ok' (the sidecar vouches for the bytes), 'unsealed' (no sidecar: written before seals), or why not."""
    target = Path(target)
    if not seal_path(target).exists():
        return "unsealed"
    accepted = read_digests(seal_path(target)).get(target.name)
    if not accepted:
        return f"its digest file {seal_path(target)} is unreadable"
    actual = file_sha256(target)
    if actual not in accepted:
        return f"its sha256 {actual[:16]}... is not the one recorded in {seal_path(target).name}"
    return "ok"


@contextmanager
def sealed_write(target: Path) -> Iterator[Path]:
    """Like `atomic_path`, and the file is sealed: the new digest is recorded (beside the current one) before
    the rename, and alone after it, so a kill at any point leaves a file its sidecar vouches for."""
    target = Path(target)
    with atomic_path(target) as tmp:
        yield tmp
        digest = file_sha256(tmp)
        current = read_digests(seal_path(target)).get(target.name, [])
        write_digests(seal_path(target), {target.name: [digest, *current[:1]]})
    seal_file(target, digest)


def quarantine(path: Path, reason: str, log: Callable[[str], None] | None = None) -> Path | None:
    """Move a damaged file aside as `<name>.corrupt-<time>` (nothing is lost, nothing reuses it) and log why;
    its sidecar goes with it. Returns where it went (None when it was already gone)."""
    path = Path(path)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    aside = path.with_name(f"{path.name}.corrupt-{stamp}-{os.getpid()}")
    try:
        os.replace(path, aside)
    except FileNotFoundError:
        return None
    if seal_path(path).exists():
        os.replace(seal_path(path), aside.with_name(aside.name + ".sha256"))
    (log or logger.warning)(f"damaged file {path}: {reason}; moved aside to {aside.name}, recomputing")
    return aside


# ---------------------------------------------------------------------------------------------------------------
# Locks


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 64, 0).decode(errors="replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


@contextmanager
def pid_lock(path: Path, log: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the lock file `path` (it holds the holder's pid) for the block; wait while another holds it.

    The lock is an `flock` on the file, so the kernel frees it when its holder dies: a stale lock (the file of a
    killed holder, its pid dead) is simply taken over. Threads of one process exclude each other too."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    log = log or logger.info
    announced = False
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.EACCES):
                os.close(fd)
                raise
            if not announced:
                log(f"waiting for {path}: held by pid {_read_pid(fd)}")
                announced = True
            fcntl.flock(fd, fcntl.LOCK_EX)
        try:  # the holder unlinks the file on release: a lock on an unlinked file is no lock
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        stale = _read_pid(fd)  # a holder that released unlinked the file: a pid left here died holding it
        if stale is not None:
            log(f"took over {path} from pid {stale}, which died holding it")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        try:
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                os.unlink(path)
        except FileNotFoundError:
            pass
        fcntl.flock(
            fd, fcntl.LOCK_UN
        )  # explicit: a forked child (a data loader worker) may share the descriptor
        os.close(fd)
