"""Pid locks, the temporary files of killed writes, and sealed files."""

import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from core.files import (
    STALE_TMP_SECONDS,
    atomic_dir,
    atomic_path,
    check_seal,
    clean_stale_temporaries,
    pid_alive,
    pid_lock,
    read_digests,
    seal_path,
    sealed_write,
    write_bytes,
)


def dead_pid() -> int:
    """The pid of a process that has exited."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert not pid_alive(proc.pid)
    return proc.pid


HOLD_LOCK = textwrap.dedent(
    """
    import sys, time
    from core.files import pid_lock
    with pid_lock(sys.argv[1]):
        print("held", flush=True)
        time.sleep(float(sys.argv[2]))
    """
)


def test_a_second_process_waits_for_the_lock_holding_the_first_ones_pid(tmp_path):
    lock = tmp_path / "work.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(lock), "1.5"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert holder.stdout.readline().strip() == "held"
    assert lock.read_text().strip() == str(holder.pid)
    said: list[str] = []
    started = time.monotonic()
    with pid_lock(lock, log=said.append):
        waited = time.monotonic() - started
        assert lock.read_text().strip() == str(os.getpid())
    holder.wait(timeout=30)
    assert waited > 0.5 and any(str(holder.pid) in line for line in said)
    assert not lock.exists(), "released and removed"


def test_a_stale_lock_of_a_dead_pid_is_taken_over(tmp_path):
    lock = tmp_path / "work.lock"
    pid = dead_pid()
    lock.write_text(f"{pid}\n")  # what a holder killed mid-work leaves
    said: list[str] = []
    started = time.monotonic()
    with pid_lock(lock, log=said.append):
        assert time.monotonic() - started < 1.0
    assert any(f"from pid {pid}" in line for line in said)


def test_threads_of_one_process_exclude_each_other(tmp_path):
    inside, overlaps = [], []

    def work():
        with pid_lock(tmp_path / "work.lock"):
            if inside:
                overlaps.append(1)
            inside.append(1)
            time.sleep(0.05)
            inside.pop()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert overlaps == []


def test_temporaries_of_killed_writes_are_cleaned_at_the_next_write(tmp_path):
    target = tmp_path / "submission.csv"
    dead, old = dead_pid(), time.time() - 2 * STALE_TMP_SECONDS
    killed = tmp_path / f".submission.csv.{dead}-abcd1234.tmp"  # a kill mid-write, new-style name
    concurrent = (
        tmp_path / f".submission.csv.{os.getpid()}-efgh5678.tmp"
    )  # a live writer's: kept, however old
    legacy_old = tmp_path / ".submission.csv.x1y2z3w4.tmp"  # written before pids were in the name
    legacy_young = tmp_path / ".submission.csv.q1q2q3q4.tmp"
    other = tmp_path / f".submission.csv.gz.{dead}-abcd1234.tmp"  # another target's
    for path in (killed, concurrent, legacy_old, legacy_young, other):
        path.write_bytes(b"")
    for path in (killed, concurrent, legacy_old, other):
        os.utime(path, (old, old))
    write_bytes(b"image,Id\n", target)
    assert target.read_bytes() == b"image,Id\n"
    left = {p.name for p in tmp_path.iterdir()}
    assert killed.name not in left and legacy_old.name not in left
    assert {concurrent.name, legacy_young.name, other.name, "submission.csv"} <= left


def test_a_folder_swapped_out_by_a_killed_write_is_put_back(tmp_path):
    target = tmp_path / "artifact"
    with atomic_dir(target) as tmp:
        (tmp / "part.json").write_text("1")
    aside = tmp_path / f".artifact.old.{dead_pid()}"
    os.replace(target, aside)  # killed between "old out" and "new in"
    assert clean_stale_temporaries(target) == [aside]
    assert (target / "part.json").read_text() == "1"


def test_concurrent_folder_swaps_both_succeed(tmp_path):
    target, errors = tmp_path / "artifact", []

    def store(value: int):
        try:
            for _ in range(10):
                with atomic_dir(target) as tmp:
                    (tmp / "part.json").write_text(str(value))
        except Exception as error:  # noqa: BLE001
            errors.append(error)

    threads = [threading.Thread(target=store, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and (target / "part.json").read_text() in {"0", "1", "2"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["artifact"]


def test_a_sealed_file_vouches_for_its_bytes_whatever_a_kill_leaves(tmp_path):
    target = tmp_path / "last.pt"
    with sealed_write(target) as tmp:
        tmp.write_bytes(b"first")
    assert check_seal(target) == "ok" and len(read_digests(seal_path(target))["last.pt"]) == 1
    with pytest.raises(RuntimeError), sealed_write(target) as tmp:
        tmp.write_bytes(b"second")
        raise RuntimeError("killed")
    assert target.read_bytes() == b"first" and check_seal(target) == "ok"
    target.write_bytes(b"firsT")
    assert "not the one recorded" in check_seal(target)
    assert check_seal(tmp_path / "never-sealed") == "unsealed"


def test_atomic_path_names_its_temporary_file_with_the_writers_pid(tmp_path):
    with atomic_path(tmp_path / "x.parquet") as tmp:
        assert tmp.name.startswith(f".x.parquet.{os.getpid()}-") and tmp.name.endswith(".tmp")
        tmp.write_bytes(b"x")
