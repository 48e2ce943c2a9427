"""The embedding network: shapes, L2 norm, head options, pretrained loading, the artifact round trip."""

import urllib.error

import numpy as np
import pytest
import torch

from models.embedding import (
    EmbeddingSpec,
    build_embedding_model,
    embed_images,
    load_embedding_model,
    parameter_count,
    weights_to_bytes,
)

TINY = dict(backbone="tiny_resnet", embedding_dim=8, head_hidden=16)


def _images(n: int = 6, channels: int = 1, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, channels, 32, 64), dtype=np.uint8)


@pytest.mark.parametrize("norm_order", ["after", "before", "both", "none"])
@pytest.mark.parametrize("head_depth", [1, 2])
def test_output_is_l2_normalised_with_the_configured_dimension(norm_order, head_depth):
    torch.manual_seed(0)
    model = build_embedding_model(EmbeddingSpec(**TINY, norm_order=norm_order, head_depth=head_depth)).eval()
    out = model(torch.from_numpy(_images()))
    assert out.shape == (6, 8)
    assert torch.allclose(out.norm(dim=1), torch.ones(6), atol=1e-5)
    assert out.std(dim=0).sum() > 0  # different photos, different embeddings


def test_hidden_norm_puts_batch_norm_before_or_after_the_relu_of_each_hidden_layer():
    """The notebook's "batch norm after relu" (configs/experiments.yaml): linear -> BN -> ReLU by default, linear
    -> ReLU -> BN with `after_relu`; the same parameters either way, and an unknown order is refused."""
    kinds = {}
    for order in ("before_relu", "after_relu"):
        model = build_embedding_model(EmbeddingSpec(**TINY, head_depth=3, hidden_norm=order))
        kinds[order] = [type(layer).__name__ for layer in model.head]
        assert model(torch.from_numpy(_images())).shape == (6, 8)
    hidden = ["Linear", "BatchNorm1d", "ReLU"]
    assert kinds["before_relu"] == [*hidden, *hidden, "Linear", "BatchNorm1d"]
    hidden = ["Linear", "ReLU", "BatchNorm1d"]
    assert kinds["after_relu"] == [*hidden, *hidden, "Linear", "BatchNorm1d"]
    default = build_embedding_model(EmbeddingSpec(**TINY, head_depth=2))
    assert [type(layer).__name__ for layer in default.head][:3] == ["Linear", "BatchNorm1d", "ReLU"]
    with pytest.raises(ValueError, match="hidden_norm"):
        build_embedding_model(EmbeddingSpec(**TINY, hidden_norm="sideways"))


def test_uint8_and_float_input_agree():
    model = build_embedding_model(EmbeddingSpec(**TINY)).eval()
    images = torch.from_numpy(_images())
    assert torch.allclose(model(images), model(images.float() / 255), atol=1e-6)


def test_torchvision_backbone_takes_grayscale_input():
    spec = EmbeddingSpec(backbone="resnet18", in_channels=1, embedding_dim=16)
    model = build_embedding_model(spec).eval()
    assert model.backbone.features[0].in_channels == 1
    assert model(torch.from_numpy(_images(2))).shape == (2, 16)
    assert parameter_count(model) > 11_000_000


def test_pretrained_weights_from_a_local_file_are_loaded_and_summed_to_grey(tmp_path):
    from torchvision.models import resnet18

    source = resnet18()
    path = tmp_path / "resnet18.pth"
    torch.save(source.state_dict(), path)
    model = build_embedding_model(EmbeddingSpec(backbone="resnet18", pretrained=str(path)))
    features = model.backbone.features
    assert torch.allclose(features[0].weight, source.conv1.weight.sum(dim=1, keepdim=True))
    assert torch.equal(features[4][0].conv1.weight, source.layer1[0].conv1.weight)


def test_pretrained_by_name_offline_and_not_cached_fails_clearly(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(RuntimeError, match="not in the torch cache.*Offline"):
        build_embedding_model(EmbeddingSpec(backbone="resnet18", pretrained="IMAGENET1K_V1"))
    with pytest.raises(FileNotFoundError):
        build_embedding_model(EmbeddingSpec(backbone="resnet18", pretrained=str(tmp_path / "missing.pth")))


def _artifact(model, flip_as_new_class: bool = False) -> dict:
    return {
        "weights": weights_to_bytes(model),
        "config": {"model": model.spec.to_dict(), "training": {"flip_as_new_class": flip_as_new_class}},
    }


def test_load_embedding_model_and_embed_images_round_trip(tmp_path):
    torch.manual_seed(1)
    model = build_embedding_model(EmbeddingSpec(**TINY))
    model.train()
    model(torch.from_numpy(_images(8)))  # move the BatchNorm statistics away from their initial values
    model.eval()
    images = _images(5, seed=2)
    path = tmp_path / "tensors.npy"
    np.save(path, images)
    memmap = np.load(path, mmap_mode="r")  # read-only, as the IO manager loads it

    loaded = load_embedding_model(_artifact(model), "cpu")
    assert not loaded.training
    embedded = embed_images(loaded, memmap, "cpu", batch_size=2)
    assert embedded.dtype == np.float32 and embedded.shape == (5, 8)
    expected = model(torch.from_numpy(images)).detach().numpy()
    np.testing.assert_allclose(embedded, expected, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(embedded, axis=1), 1.0, atol=1e-5)
    assert embed_images(loaded, memmap[:0], "cpu").shape == (0, 8)
    # Rows of the store, read one batch at a time (the training fold of a full-size store is never gathered whole)
    rows = np.array([4, 0, 0, 3])
    by_rows = embed_images(loaded, memmap, "cpu", batch_size=3, rows=rows)
    np.testing.assert_allclose(by_rows, embedded[rows], atol=1e-5)
    assert embed_images(loaded, memmap, "cpu", rows=rows[:0]).shape == (0, 8)


def test_flip_tta_averages_or_concatenates_by_training_mode():
    torch.manual_seed(2)
    model = build_embedding_model(EmbeddingSpec(**TINY)).eval()
    images = _images(4, seed=3)
    plain = embed_images(model, images, "cpu")
    mirrored = embed_images(model, images[..., ::-1], "cpu")

    averaged = embed_images(load_embedding_model(_artifact(model), "cpu"), images, "cpu", flip=True)
    expected = (plain + mirrored) / np.linalg.norm(plain + mirrored, axis=1, keepdims=True)
    np.testing.assert_allclose(averaged, expected, atol=1e-5)

    concatenated = embed_images(load_embedding_model(_artifact(model, True), "cpu"), images, "cpu", flip=True)
    assert concatenated.shape == (4, 16)
    np.testing.assert_allclose(
        concatenated @ concatenated.T, (plain @ plain.T + mirrored @ mirrored.T) / 2, atol=1e-5
    )
