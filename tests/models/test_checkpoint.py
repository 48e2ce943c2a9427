"""The training checkpoint is sealed and loaded weights-only: a damaged `last.pt` is named, moved aside and the run
starts afresh (instead of failing every retry), and a planted pickle never runs."""

import logging

import numpy as np
import pytest
import torch

from core.files import seal_path
from models.checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint
from models.training import TrainingConfig, train_embedding
from tests.models.test_training import TINY, _data


class _WritesMarkerWhenUnpickled:
    """Unpickling this calls open(marker, "w"): a stand-in for a shell command in a planted checkpoint."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _damage(path, how):
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "zero_bytes":
        path.write_bytes(b"")
    else:
        path.write_bytes(np.random.default_rng(1).integers(0, 256, len(data), dtype=np.uint8).tobytes())


@pytest.mark.parametrize("how", ["truncated", "zero_bytes", "same_size_garbage"])
def test_a_damaged_checkpoint_is_named_moved_aside_and_the_run_starts_afresh(tmp_path, how):
    data = _data()
    config = TrainingConfig(**TINY, epochs=1, max_steps_per_epoch=1)
    train_embedding(data, config, "cpu", checkpoint_dir=tmp_path, run_key="k", log=lambda _: None)
    path = tmp_path / CHECKPOINT_NAME
    assert load_checkpoint(path)["epoch"] == 0 and seal_path(path).exists()
    _damage(path, how)
    logged: list[str] = []
    result = train_embedding(data, config, "cpu", checkpoint_dir=tmp_path, run_key="k", log=logged.append)
    assert result.resumed_from_epoch == 0
    assert any(str(path) in line and "damaged" in line for line in logged), logged
    assert list(tmp_path.glob(f"{CHECKPOINT_NAME}.corrupt-*")), "kept aside, not deleted"
    assert load_checkpoint(path)["epoch"] == 0, "and a sound checkpoint written again"


def test_a_planted_pickle_checkpoint_never_runs(tmp_path, caplog):
    marker = tmp_path / "marker"
    path = tmp_path / CHECKPOINT_NAME
    torch.save({"run_key": "k", "epoch": 0, "payload": _WritesMarkerWhenUnpickled(marker)}, path)  # no seal
    with caplog.at_level(logging.WARNING, logger="flukeid"):
        assert load_checkpoint(path) is None
    assert not marker.exists()
    data = _data()
    config = TrainingConfig(**TINY, epochs=1, max_steps_per_epoch=1)
    torch.save({"run_key": "k", "epoch": 0, "payload": _WritesMarkerWhenUnpickled(marker)}, path)
    result = train_embedding(data, config, "cpu", checkpoint_dir=tmp_path, run_key="k", log=lambda _: None)
    assert result.resumed_from_epoch == 0 and not marker.exists()
    torch.load(_planted(tmp_path, marker), weights_only=False)
    assert marker.exists(), "the refused kind of file really runs code under a full unpickling"


def _planted(tmp_path, marker):
    planted = tmp_path / "planted.pt"
    torch.save({"payload": _WritesMarkerWhenUnpickled(marker)}, planted)
    return planted


def test_a_checkpoint_written_before_seals_is_accepted_and_sealed(tmp_path):
    path = tmp_path / CHECKPOINT_NAME
    torch.save({"run_key": "k", "epoch": 3, "weights": torch.ones(2)}, path)  # as the earlier code wrote it
    assert load_checkpoint(path)["epoch"] == 3
    assert seal_path(path).exists()
    save_checkpoint(path, {"run_key": "k", "epoch": 4})
    assert load_checkpoint(path)["epoch"] == 4
