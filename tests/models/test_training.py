"""The training loop: real varied batches, gradients everywhere, no update on zero loss, exact resume."""

import numpy as np
import pandas as pd
import pytest
import torch

from core.constants import NEW_WHALE
from models.augment import augment
from models.batches import TensorBatches, make_loader, training_items
from models.checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint
from models.embedding import build_embedding_model
from models.epoch import train_step
from models.epoch_validation import rank_and_score
from models.losses import build_losses
from models.optimizer import parameter_groups
from models.retrieval import (
    choose_threshold,
    exact_index,
    individual_candidates,
    most_frequent_labels,
    search,
    sweep_thresholds,
    threshold_sweep,
)
from models.sampler import NEGATIVE, PKBatchSampler
from models.training import TrainingConfig, TrainingData, prepare_training_data, train_embedding

TINY = dict(
    backbone="tiny_resnet",
    embedding_dim=8,
    head_hidden=16,
    individuals_per_batch=4,
    photos_per_individual=2,
    negatives_per_batch=2,
    eval_batch_size=16,
)


def _data(individuals: int = 10, seed: int = 0, shape: tuple[int, int] = (16, 32)) -> TrainingData:
    """Each individual a random pattern, its photos noisy copies; plus some new_whale photos."""
    rng = np.random.default_rng(seed)
    patterns = rng.integers(0, 256, (individuals, 1, *shape))
    images, labels = [], []
    for i in range(individuals):
        for _ in range(1 + i % 3):
            images.append(np.clip(patterns[i] + rng.integers(-20, 20, patterns[i].shape), 0, 255))
            labels.append(f"w{i}")
    for _ in range(6):
        images.append(rng.integers(0, 256, (1, *shape)))
        labels.append(NEW_WHALE)
    tensors = np.stack(images).astype(np.uint8)
    val = np.array(
        [i for i, label in enumerate(labels) if label in ("w2", "w5", "w8")][:3] + [len(labels) - 1]
    )
    train = np.setdiff1d(np.arange(len(labels)), val)
    return TrainingData(tensors, train, [labels[i] for i in train], val, [labels[i] for i in val])


def _setup(config: TrainingConfig, data: TrainingData):
    torch.manual_seed(0)
    items = training_items(data.train_labels, data.train_rows, config)
    model = build_embedding_model(config.embedding_spec(in_channels=1))
    loss_fn = build_losses(config, len(items.class_names), model.embedding_dim)
    optimizer = torch.optim.AdamW(parameter_groups(model, loss_fn, config), weight_decay=config.weight_decay)
    return items, model, loss_fn, optimizer


def _snapshot(*modules) -> dict[str, torch.Tensor]:
    return {
        f"{i}.{name}": t.detach().clone() for i, m in enumerate(modules) for name, t in m.state_dict().items()
    }


def test_loader_batches_hold_k_photos_of_p_individuals_and_differ_between_steps():
    data = _data()
    config = TrainingConfig(**TINY)
    items = training_items(data.train_labels, data.train_rows, config)
    sampler = PKBatchSampler(items.classes, 4, 2, 2, seed=0)
    batches = list(make_loader(data.tensors, items, sampler, torch.device("cpu")))
    assert len(batches) >= 2
    for images, classes in batches:
        assert images.dtype == torch.uint8 and images.shape == (10, 1, 16, 32)
        known = classes[classes != NEGATIVE]
        values, counts = known.unique(return_counts=True)
        assert len(values) == 4 and (counts == 2).all()
        assert int((classes == NEGATIVE).sum()) == 2
        for image, cls in zip(images, classes):  # every photo is one of its individual's own
            if int(cls) == NEGATIVE:
                continue
            own = [
                r
                for r, label in zip(data.train_rows, data.train_labels)
                if label == items.class_names[int(cls)]
            ]
            assert any(torch.equal(image, torch.from_numpy(data.tensors[r])) for r in own)
    assert not torch.equal(batches[0][0], batches[1][0])


def test_flipped_photos_become_classes_of_their_own_and_arrive_mirrored():
    data = _data()
    config = TrainingConfig(**TINY, flip_as_new_class=True)
    items = training_items(data.train_labels, data.train_rows, config)
    individuals = len({label for label in data.train_labels if label != NEW_WHALE})
    assert len(items.class_names) == 2 * individuals
    assert (items.classes[items.mirrored] != NEGATIVE).sum() == (
        items.classes[~items.mirrored] != NEGATIVE
    ).sum()
    mirrored_item = int(np.flatnonzero(items.mirrored & (items.classes != NEGATIVE))[0])
    images, classes = TensorBatches(data.tensors, items).__getitems__([mirrored_item])
    assert torch.equal(images[0], torch.from_numpy(data.tensors[items.rows[mirrored_item]][..., ::-1].copy()))
    assert int(classes[0]) >= individuals


def test_one_step_changes_every_trainable_parameter_group():
    # Photos large enough that the last feature map is more than 1 x 1 (16 x 32 photos end as 1 x 1): over one
    # cell GeM's mean is the value itself, so its exponent p gets no gradient but rounding noise.
    data = _data(shape=(128, 256))
    config = TrainingConfig(**TINY, head_depth=2)
    items, model, loss_fn, optimizer = _setup(config, data)
    sampler = PKBatchSampler(items.classes, 4, 2, 2, seed=0)
    images, classes = next(iter(make_loader(data.tensors, items, sampler, torch.device("cpu"))))
    before = {
        name: p.detach().clone() for name, p in [*model.named_parameters(), *loss_fn.named_parameters()]
    }
    stats = train_step(
        model,
        loss_fn,
        optimizer,
        None,
        images,
        classes,
        torch.Generator().manual_seed(0),
        config,
        check_gradients=True,
    )
    assert stats["stepped"] and stats["loss"] > 0 and stats["margin_loss"] > 0
    assert stats["layers_without_gradient"] == 0  # the gradient reached every parameter tensor
    assert {g["name"] for g in optimizer.param_groups} == {"backbone", "head", "loss"}
    after = dict([*model.named_parameters(), *loss_fn.named_parameters()])
    unchanged = [name for name in before if torch.equal(before[name], after[name])]
    assert unchanged == []


def test_a_zero_loss_step_changes_nothing():
    data = _data()
    # One photo per individual and no margin loss: the batch holds no positive pair, so the triplet loss is 0.
    config = TrainingConfig(**{**TINY, "photos_per_individual": 1}, margin_loss="none", weight_decay=0.1)
    items, model, loss_fn, optimizer = _setup(config, data)
    sampler = PKBatchSampler(items.classes, 4, 1, 2, seed=0)
    images, classes = next(iter(make_loader(data.tensors, items, sampler, torch.device("cpu"))))
    before = _snapshot(model, loss_fn)
    stats = train_step(
        model, loss_fn, optimizer, None, images, classes, torch.Generator().manual_seed(0), config
    )
    assert stats["loss"] == 0.0 and not stats["stepped"]
    after = _snapshot(model, loss_fn)
    assert all(torch.equal(before[name], after[name]) for name in before)  # BatchNorm statistics included
    assert optimizer.state_dict()["state"] == {}


def test_a_killed_run_resumes_from_its_checkpoint_to_the_same_result(tmp_path):
    data = _data()
    config = TrainingConfig(**TINY, epochs=2, seed=5, hard_reweight=0.5, validate_every=1)
    uninterrupted = train_embedding(
        data, config, "cpu", checkpoint_dir=tmp_path / "a", run_key="k", log=lambda s: None
    )

    class Killed(Exception):
        pass

    def kill_in_epoch_two(epoch, step, stats):
        if epoch == 1 and step == 1:
            raise Killed

    with pytest.raises(Killed):
        train_embedding(
            data,
            config,
            "cpu",
            checkpoint_dir=tmp_path / "b",
            run_key="k",
            on_step=kill_in_epoch_two,
            log=lambda s: None,
        )
    state = load_checkpoint(tmp_path / "b" / CHECKPOINT_NAME)  # tensors and plain values only
    assert state is not None and state["epoch"] == 0 and state["run_key"] == "k"
    resumed = train_embedding(
        data, config, "cpu", checkpoint_dir=tmp_path / "b", run_key="k", log=lambda s: None
    )
    assert resumed.resumed_from_epoch == 1 and uninterrupted.resumed_from_epoch == 0
    expected, got = uninterrupted.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(expected[name], got[name]) for name in expected)
    columns = ["loss", "margin_loss", "triplet_loss", "val_map5"]
    pd.testing.assert_frame_equal(uninterrupted.history[columns], resumed.history[columns])
    assert len(resumed.history) == 2 and resumed.history["val_map5"].notna().all()
    # a checkpoint of another run (other config or data) is not resumed
    other = train_embedding(
        data, config, "cpu", checkpoint_dir=tmp_path / "b", run_key="other", log=lambda s: None
    )
    assert other.resumed_from_epoch == 0


def test_augment_keeps_shape_and_range_and_is_seeded():
    images = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (3, 1, 16, 32), dtype=np.uint8))
    a = augment(images, torch.Generator().manual_seed(1))
    b = augment(images, torch.Generator().manual_seed(1))
    c = augment(images, torch.Generator().manual_seed(2))
    assert a.shape == images.shape and a.dtype == torch.float32
    assert float(a.min()) >= 0 and float(a.max()) <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.allclose(a, images.float() / 255, atol=0.01)
    assert torch.equal(augment(images, torch.Generator(), strength=0), images.float() / 255)


def test_rank_and_score_perfect_embeddings_and_unseen_individuals_as_new_whale():
    gallery = np.eye(4, dtype=np.float32)
    labels = ["a", "b", "c", NEW_WHALE]
    queries = np.array([[1, 0, 0, 0], [0, 0.9, 0.1, 0], [0, 0, 0, 1]], dtype=np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    validation = rank_and_score(gallery, labels, queries, ["a", "b", "zz"])
    assert validation.truths == ["a", "b", NEW_WHALE]  # zz is not in the gallery
    assert validation.map5 == pytest.approx(1.0)


def test_validation_tunes_the_threshold_with_the_retrieval_sweep():
    # The training-time figure is the validation report's measure: 101-point sweep, then choose_threshold.
    rng = np.random.default_rng(3)
    gallery = rng.normal(size=(30, 6)).astype(np.float32)
    gallery /= np.linalg.norm(gallery, axis=1, keepdims=True)
    labels = [f"w{i % 8}" for i in range(26)] + [NEW_WHALE] * 4
    queries = gallery[:12] + rng.normal(scale=0.4, size=(12, 6)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    query_labels = labels[:10] + ["unseen", NEW_WHALE]
    validation = rank_and_score(gallery, labels, queries, query_labels)
    known = [label for label in labels if label != NEW_WHALE]
    candidates = individual_candidates(*search(exact_index(gallery[:26]), queries, 50), known)
    sweep = threshold_sweep(
        candidates, validation.truths, sweep_thresholds(candidates, 101), most_frequent_labels(known)
    )
    assert validation.threshold == choose_threshold(sweep)
    assert validation.map5 == pytest.approx(sweep["map5"].max())
    assert validation.query_ap.mean() == pytest.approx(validation.map5)


def test_a_checkpoint_that_needs_unpickling_is_refused_and_the_run_starts_afresh(tmp_path):
    data = _data()
    config = TrainingConfig(**TINY, epochs=1, max_steps_per_epoch=1)
    UNPICKLED.clear()
    path = tmp_path / CHECKPOINT_NAME
    save_checkpoint(path, {"run_key": "k", "epoch": 0, "payload": _RunsCodeWhenUnpickled()})
    assert load_checkpoint(path) is None and UNPICKLED == []
    logged: list[str] = []
    result = train_embedding(data, config, "cpu", checkpoint_dir=tmp_path, run_key="k", log=logged.append)
    assert result.resumed_from_epoch == 0 and UNPICKLED == []
    assert any("ignoring" in line for line in logged)
    assert load_checkpoint(path)["epoch"] == 0  # replaced by a plain checkpoint of this run
    # the refused kind of file really would have run code under a full unpickling
    save_checkpoint(path, {"payload": _RunsCodeWhenUnpickled()})
    torch.load(path, weights_only=False)
    assert UNPICKLED == ["ran"]


UNPICKLED: list[str] = []


def _record_unpickling() -> str:
    UNPICKLED.append("ran")
    return "ran"


class _RunsCodeWhenUnpickled:
    def __reduce__(self):
        return (_record_unpickling, ())


def test_prepare_training_data_joins_manifest_to_tensor_rows():
    index = pd.DataFrame(
        {
            "row": [0, 1, 2, 3],
            "image": ["t.jpg", "a.jpg", "b.jpg", "c.jpg"],
            "split": ["test", "train", "train", "train"],
        }
    )
    manifest = pd.DataFrame(
        {
            "image": ["c.jpg", "a.jpg", "b.jpg"],
            "label": ["x", "x", NEW_WHALE],
            "fold": ["train", "val", "train"],
            "individual_photos": [2, 2, 0],
        }
    )
    data = prepare_training_data(np.zeros((4, 1, 2, 2), np.uint8), index, manifest)
    assert list(data.train_rows) == [2, 3] and data.train_labels == [NEW_WHALE, "x"]
    assert list(data.val_rows) == [1] and data.val_labels == ["x"]
    with pytest.raises(ValueError, match="no tensor row"):
        prepare_training_data(np.zeros((4, 1, 2, 2), np.uint8), index.iloc[:2], manifest)


def test_cpu_threads_apply_during_training_and_are_restored_after():
    threads_before = torch.get_num_threads()
    seen: list[int] = []
    config = TrainingConfig(**TINY, epochs=1, max_steps_per_epoch=1, cpu_threads=1)
    train_embedding(
        _data(), config, "cpu", on_step=lambda *_: seen.append(torch.get_num_threads()), log=lambda _: None
    )
    assert seen == [1]
    assert torch.get_num_threads() == threads_before


def _poorly_ranked_data() -> TrainingData:
    """`_data()` with one photo of w2, w5 and w8 held out and replaced by noise: validation ranks them poorly, so
    hard-individual reweighting has something to reweight."""
    base = _data()
    rows = np.concatenate([base.train_rows, base.val_rows])
    labels = np.array([*base.train_labels, *base.val_labels])[np.argsort(rows)]
    val = np.array([np.flatnonzero(labels == f"w{i}")[0] for i in (2, 5, 8)])
    train = np.setdiff1d(np.arange(len(labels)), val)
    tensors = base.tensors.copy()
    tensors[val] = np.random.default_rng(1).integers(0, 256, tensors[val].shape)
    return TrainingData(tensors, train, labels[train].tolist(), val, labels[val].tolist())


def test_a_time_budget_stops_after_an_epoch_is_found_again_and_carried_on_as_an_uncut_run(tmp_path):
    import time

    data = _poorly_ranked_data()
    # hard_reweight on and validation only at the end: the budget's extra validation must not reweight.
    uncut_config = TrainingConfig(**TINY, epochs=4, seed=3, hard_reweight=0.5, validate_every=10)
    config = TrainingConfig(**{**uncut_config.to_dict(), "max_minutes": 0.01})  # 0.6 s

    def slow_first_step(epoch, step, stats):
        if epoch == 0 and step == 0:
            time.sleep(0.7)  # the first epoch alone outlasts the budget, whatever the machine

    cut = train_embedding(
        data, config, "cpu", checkpoint_dir=tmp_path, run_key="k", on_step=slow_first_step, log=lambda _: None
    )
    assert cut.stopped_by_budget and len(cut.history) == 1 < config.epochs
    assert cut.history["val_map5"].notna().iloc[-1]  # the last epoch the budget allowed is validated
    assert cut.training_minutes > 0

    def fail(*_):
        pytest.fail("a rerun with the same budget trained again")

    again = train_embedding(data, config, "cpu", checkpoint_dir=tmp_path, run_key="k", on_step=fail)
    assert again.stopped_by_budget and again.resumed_from_epoch == 1 and len(again.history) == 1
    before, after = cut.model.state_dict(), again.model.state_dict()
    assert all(torch.equal(before[name], after[name]) for name in before)

    # No budget: the cut run is carried on, and ends where a run never cut ends.
    carried = train_embedding(
        data, uncut_config, "cpu", checkpoint_dir=tmp_path, run_key="k", log=lambda _: None
    )
    never_cut = train_embedding(data, uncut_config, "cpu", checkpoint_dir=tmp_path / "b", run_key="k")
    assert carried.resumed_from_epoch == 1 and not carried.stopped_by_budget
    assert len(carried.history) == uncut_config.epochs
    expected, got = never_cut.model.state_dict(), carried.model.state_dict()
    assert all(torch.equal(expected[name], got[name]) for name in expected)
