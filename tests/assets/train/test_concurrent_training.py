"""Two runs wanting the same embedding training at once: one trains, the other waits for its lock and then finds
the finished checkpoint, and both hand on byte-identical weights."""

import threading

import torch

from assets.train.run import artifact_version, train_embedding_artifact
from models.training import TrainingConfig
from tests.assets.train.test_run import TINY, _store


def test_two_concurrent_trainings_of_one_run_key_train_once(tmp_path):
    tensors, index, manifest = _store()
    fluke_tensors = {"tensors": tensors, "index": index}
    config = TrainingConfig(**TINY)
    results, errors, said = [], [], []

    def train():
        try:
            results.append(
                train_embedding_artifact(
                    fluke_tensors, manifest, config, torch.device("cpu"), tmp_path, said.append
                )
            )
        except Exception as error:  # noqa: BLE001
            errors.append(error)

    threads = [threading.Thread(target=train) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    (first, first_summary), (second, second_summary) = results
    assert sorted([first_summary["resumed_from_epoch"], second_summary["resumed_from_epoch"]]) == [0, 2]
    assert first["weights"] == second["weights"], "byte-identical weights"
    assert artifact_version(first) == artifact_version(second)
    key = first_summary["run_key"]
    assert (tmp_path / key / "last.pt").exists() and not (tmp_path / f"{key}.lock").exists()
