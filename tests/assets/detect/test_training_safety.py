"""fluke_detector's training is safe to run twice at once, reuses only sound weights, and never lets ultralytics
unpickle a weights file nobody vouched for. The trainer is replaced by a fake here (seconds, not minutes)."""

import dataclasses
import hashlib
import os
import pickle
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from assets.detect import training as tr
from core.caches import memoized_artifact
from models import detector as det

TINY = tr.DetectorSettings(epochs=3, imgsz=160, batch=8)


class _WritesMarkerWhenUnpickled:
    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def fake_training(monkeypatch):
    """Replaces the ultralytics training: records each call's folder, sleeps a little, returns fixed weights."""
    calls: list[Path] = []

    def train(boxes, data_root, work_dir, config_dir, settings, device="cpu", given=None):
        calls.append(Path(work_dir))
        assert Path(work_dir).is_dir()
        time.sleep(0.5)
        weights = b"trained-weights" * 1000
        return weights, {"trained": True, "source": "trained", "version": det.weights_version(weights)}

    monkeypatch.setattr(tr, "train_fluke_detector", train)
    return calls


def _fit(tiny_dataset, manifest, work, settings=TINY):
    annotations = tiny_dataset / "annotations" / "boxes.csv"
    return tr.fit_fluke_detector(annotations, manifest, tiny_dataset, work, work / "cfg", settings)


def test_two_concurrent_trainings_of_one_key_train_once(fake_training, manifest, tiny_dataset, tmp_path):
    work, runs = tmp_path / "work", []
    threads = [
        threading.Thread(target=lambda: runs.append(_fit(tiny_dataset, manifest, work))) for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(fake_training) == 1, "one training"
    assert sorted(run.reused for run in runs) == [False, True], "the other waited and reused it"
    assert runs[0].weights == runs[1].weights and runs[0].info == runs[1].info
    (folder,) = fake_training
    assert folder.parent == work / "runs" and folder.name.startswith(
        f"{folder.name.split('.')[0]}.{os.getpid()}."
    )
    assert not folder.exists(), "the run's own folder goes when it ends"


def test_memoized_weights_with_4_kib_zeroed_are_discarded_and_retrained(
    fake_training, manifest, tiny_dataset, tmp_path
):
    work = tmp_path / "work"
    first = _fit(tiny_dataset, manifest, work)
    assert _fit(tiny_dataset, manifest, work).reused and len(fake_training) == 1
    (stored,) = (work / "trained").glob("*.bin")
    data = bytearray(stored.read_bytes())
    data[:4096] = bytes(4096)
    stored.write_bytes(bytes(data))
    again = _fit(tiny_dataset, manifest, work)
    assert not again.reused and len(fake_training) == 2 and again.weights == first.weights
    assert list((work / "trained").glob("*.bin.corrupt-*")), "the damaged file is kept aside"


def test_run_folders_of_dead_trainings_are_removed(fake_training, manifest, tiny_dataset, tmp_path):
    work = tmp_path / "work"
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    dead = work / "runs" / f"0123456789abcdef.{proc.pid}.abc123"
    alive = work / "runs" / f"0123456789abcdef.{os.getpid()}.def456"  # a concurrent training's
    for folder in (dead, alive):
        (folder / "runs" / "train").mkdir(parents=True)
    _fit(tiny_dataset, manifest, work)
    assert not dead.exists() and alive.exists()


def _planted(tmp_path) -> tuple[Path, Path]:
    marker, planted = tmp_path / "marker", tmp_path / "planted.pt"
    planted.write_bytes(pickle.dumps({"model": _WritesMarkerWhenUnpickled(marker)}))
    return planted, marker


def test_given_weights_without_their_digest_are_refused_before_loading(manifest, tiny_dataset, tmp_path):
    planted, marker = _planted(tmp_path)
    work = tmp_path / "work"
    for settings in (
        tr.DetectorSettings(weights_path=str(planted)),
        tr.DetectorSettings(weights_path=str(planted), weights_sha256="ab" * 32),
    ):
        with pytest.raises(det.UntrustedWeights, match=str(planted)):
            _fit(tiny_dataset, manifest, work, settings)
        with pytest.raises(det.UntrustedWeights):
            tr.train_fluke_detector(
                tr_boxes(tiny_dataset, manifest), tiny_dataset, work, work / "cfg", settings
            )
    assert not marker.exists(), "nothing unpickled it"
    assert not (work / "trained").exists() or not list((work / "trained").glob("*.json")), "nothing memoized"


def test_given_weights_load_with_their_digest_or_when_this_project_trained_them(tmp_path):
    planted, marker = _planted(tmp_path)
    digest = hashlib.sha256(planted.read_bytes()).hexdigest()
    vouched = tr.DetectorSettings(weights_path=str(planted), weights_sha256=digest)
    assert tr.given_weights(vouched, None) == planted.read_bytes()
    trained = tmp_path / "trained"
    unvouched = tr.DetectorSettings(weights_path=str(planted))
    with pytest.raises(det.UntrustedWeights):
        tr.given_weights(unvouched, trained)
    memoized_artifact(trained, "given", lambda: (planted.read_bytes(), {"source": "weights_path"}))
    with pytest.raises(det.UntrustedWeights):  # a copy of given weights is not the project's own training
        tr.given_weights(unvouched, trained)
    memoized_artifact(
        trained, "k", lambda: (planted.read_bytes(), {"source": "trained"})
    )  # as if trained here
    assert tr.given_weights(unvouched, trained) == planted.read_bytes()
    assert not marker.exists()


def test_the_digest_setting_leaves_earlier_training_keys_alone(manifest):
    empty = tr.prepare_annotations(None, manifest, 0.2, 0)
    key = tr.training_key(TINY, empty, manifest)
    assert key == tr.stable_digest(
        tr.CODE_VERSION,
        {
            name: value
            for name, value in tr.asdict(TINY).items()
            if name not in ("weights_sha256", "max_minutes")
        },
        empty.drop(columns=["path"], errors="ignore").astype(str).values.tolist(),
        tr.annotated_content(empty, manifest),
    )
    assert tr.training_key(TINY, empty, manifest, "ab" * 32) != key
    # a time budget, once set, is keyed: a cut training is never reused without it, nor one without it with it
    assert tr.training_key(dataclasses.replace(TINY, max_minutes=5.0), empty, manifest) != key


def tr_boxes(tiny_dataset, manifest):
    annotations = tr.read_annotations(tiny_dataset / "annotations" / "boxes.csv")
    return tr.prepare_annotations(annotations, manifest, TINY.val_share, TINY.seed)
