"""The embedding network: a torchvision backbone, GeM pooling and a projection head to an L2-normalised vector.

Follow one photo: a uint8 crop (C x H x W, C = 1 for grayscale) goes in, `FlukeEmbedder.forward` scales it to
[0, 1] and standardises it inside the model (so callers never normalise), the backbone turns it into a feature map,
GeM pools it, the head projects it to `embedding_dim` numbers, and the output is divided by its length so that the
inner product of two embeddings is their cosine similarity.

Everything needed to rebuild the network lives in `EmbeddingSpec` (stored as json beside the weights), so the
identification stage calls `load_embedding_model(artifact, device)` and `embed_images(model, tensors, device)`.
"""

from __future__ import annotations

import io
import urllib.error
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import get_model, get_model_weights
from torchvision.models.resnet import BasicBlock, conv1x1

# Backbones built here rather than by torchvision's registry: residual nets of BasicBlocks with fewer channels,
# small enough to train from scratch on two CPU cores in minutes. Values: (stage widths, blocks per stage).
SLIM_RESNETS = {
    "slim_resnet8": ((32, 64, 128, 256), (1, 1, 1, 1)),
    "slim_resnet14": ((32, 64, 128, 256), (2, 2, 1, 1)),
    "slim_resnet18": ((32, 64, 128, 256), (2, 2, 2, 2)),
    "tiny_resnet": ((8, 16, 16, 32), (1, 1, 1, 1)),  # tests and CI: a few thousand parameters
}
NORM_ORDERS = ("after", "before", "both", "none")
HIDDEN_NORMS = ("before_relu", "after_relu")  # where a hidden head layer's BatchNorm1d sits (`hidden_norm`)


@dataclass
class EmbeddingSpec:
    """What the network is; enough to rebuild it without downloading anything.

    norm_order places BatchNorm1d in the head: `after` the last projection (pooled -> linear -> BN -> L2),
    `before` it (pooled -> BN -> linear -> L2, the "BNNeck" order), `both`, or `none`. hidden_norm orders each
    hidden layer (head_depth >= 2): `before_relu` (linear -> BN -> ReLU) or `after_relu` (linear -> ReLU -> BN).
    """

    backbone: str = "slim_resnet14"
    in_channels: int = 1
    embedding_dim: int = 256
    head_depth: int = 1  # linear layers in the head; hidden ones are linear -> BN -> ReLU (see hidden_norm)
    head_hidden: int = 512
    norm_order: str = "after"
    hidden_norm: str = "before_relu"
    pooling: str = "gem"  # gem | avg
    gem_p: float = 3.0
    dropout: float = 0.0
    # Average-pool the input by this factor first: a 128 x 256 crop seen at 64 x 128 costs a quarter of the compute.
    input_downscale: int = 1
    # Pixel statistics used to standardise uint8 input inside the model (per channel, in [0, 1] units).
    mean: float = 0.5
    std: float = 0.25
    pretrained: str = ""  # "" | torchvision weights name ("DEFAULT", "IMAGENET1K_V1") | path to a state dict

    @classmethod
    def from_dict(cls, values: dict) -> EmbeddingSpec:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    def to_dict(self) -> dict:
        return asdict(self)


class GeM(nn.Module):
    """Generalised mean pooling: p = 1 is average pooling, large p approaches max pooling; p is learned."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6):
        super().__init__()
        self.p = nn.Parameter(torch.tensor(float(p)))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = x.float().clamp(min=self.eps).pow(self.p).mean(dim=(-2, -1))
        return pooled.pow(1.0 / self.p)


class SlimResNet(nn.Module):
    """A ResNet of torchvision BasicBlocks with configurable widths; returns the last feature map."""

    def __init__(self, widths: tuple[int, ...], blocks: tuple[int, ...], in_channels: int):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], kernel_size=5, stride=2, padding=2, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        )
        stages, channels = [], widths[0]
        for index, (width, count) in enumerate(zip(widths, blocks)):
            stride = 1 if index == 0 else 2
            downsample = None
            if stride != 1 or channels != width:
                downsample = nn.Sequential(conv1x1(channels, width, stride), nn.BatchNorm2d(width))
            layers = [BasicBlock(channels, width, stride, downsample)]
            layers += [BasicBlock(width, width) for _ in range(count - 1)]
            stages.append(nn.Sequential(*layers))
            channels = width
        self.stages = nn.Sequential(*stages)
        self.out_channels = channels
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))


class TorchvisionTrunk(nn.Module):
    """A torchvision classification network without its classifier: returns the last feature map."""

    def __init__(self, name: str, in_channels: int, pretrained: str):
        super().__init__()
        network = get_model(name, weights=None)
        if pretrained:
            network.load_state_dict(_pretrained_state(name, pretrained), strict=False)
        if hasattr(network, "fc"):  # ResNet family
            _adapt_first_conv(network, "conv1", in_channels)
            network.fc = nn.Identity()
            self.features = nn.Sequential(
                *[m for n, m in network.named_children() if n not in ("avgpool", "fc")]
            )
            self.out_channels = _out_channels(self.features, in_channels)
        elif hasattr(network, "features"):  # MobileNet, EfficientNet, ConvNeXt, ...
            _adapt_first_conv(network.features, None, in_channels)
            self.features = network.features
            self.out_channels = _out_channels(self.features, in_channels)
        else:
            raise ValueError(f"backbone {name!r}: no `fc` or `features` to cut the classifier from")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def _out_channels(features: nn.Module, in_channels: int) -> int:
    with torch.no_grad():
        was_training = features.training
        features.eval()
        channels = features(torch.zeros(1, in_channels, 64, 64)).shape[1]
        features.train(was_training)
    return int(channels)


def _adapt_first_conv(parent: nn.Module, attribute: str | None, in_channels: int) -> None:
    """Give the first convolution `in_channels` inputs; pretrained RGB filters are summed into a grey one."""
    if attribute is None:
        owner, name, conv = None, None, None
        for module in parent.modules():
            for child_name, child in module.named_children():
                if isinstance(child, nn.Conv2d):
                    owner, name, conv = module, child_name, child
                    break
            if conv is not None:
                break
    else:
        owner, name, conv = parent, attribute, getattr(parent, attribute)
    if conv is None or conv.in_channels == in_channels:
        return
    replacement = nn.Conv2d(
        in_channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        bias=conv.bias is not None,
    )
    with torch.no_grad():
        mean_filter = conv.weight.sum(dim=1, keepdim=True) / in_channels
        replacement.weight.copy_(mean_filter.expand(-1, in_channels, -1, -1))
        if conv.bias is not None:
            replacement.bias.copy_(conv.bias)
    setattr(owner, name, replacement)


def _pretrained_state(name: str, pretrained: str) -> dict:
    """State dict of pretrained weights: a local file, or a torchvision weights name from the torch hub cache.

    No network at run time is the norm here: when the weights are not cached and cannot be fetched the error
    says where to put the file.
    """
    path = Path(pretrained).expanduser()
    if path.suffix in (".pt", ".pth") or path.exists():
        if not path.exists():
            raise FileNotFoundError(f"pretrained weights file {path} not found")
        state = torch.load(path, map_location="cpu", weights_only=True)
        return state.get("state_dict", state) if isinstance(state, dict) else state
    try:
        weights = get_model_weights(name)[pretrained]
    except KeyError as error:
        raise ValueError(f"{name} has no pretrained weights named {pretrained!r}") from error
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    try:
        # weights_only: a file planted in the hub cache is never unpickled.
        return weights.get_state_dict(progress=False, weights_only=True)
    except (urllib.error.URLError, OSError, RuntimeError) as error:
        raise RuntimeError(
            f"pretrained weights {name}/{pretrained} are not in the torch cache ({cached}) and could not be "
            f"downloaded ({type(error).__name__}: {error}). Offline: copy {Path(weights.url).name} there, or set "
            f"the pretrained field to the path of a local state dict, or leave it empty to train from scratch."
        ) from error


class FlukeEmbedder(nn.Module):
    """uint8 (or float in [0, 1]) N x C x H x W -> float N x embedding_dim, L2-normalised."""

    def __init__(self, spec: EmbeddingSpec):
        super().__init__()
        if spec.norm_order not in NORM_ORDERS:
            raise ValueError(f"norm_order must be one of {NORM_ORDERS}, got {spec.norm_order!r}")
        if spec.hidden_norm not in HIDDEN_NORMS:
            raise ValueError(f"hidden_norm must be one of {HIDDEN_NORMS}, got {spec.hidden_norm!r}")
        self.spec = spec
        if spec.backbone in SLIM_RESNETS:
            widths, blocks = SLIM_RESNETS[spec.backbone]
            if spec.pretrained:
                raise ValueError(f"{spec.backbone} is built here and has no pretrained weights")
            self.backbone = SlimResNet(widths, blocks, spec.in_channels)
        else:
            self.backbone = TorchvisionTrunk(spec.backbone, spec.in_channels, spec.pretrained)
        self.pool = GeM(spec.gem_p) if spec.pooling == "gem" else nn.AdaptiveAvgPool2d(1)
        self.head = _projection_head(self.backbone.out_channels, spec)
        # head_depth 0 keeps the pooled features as they are: the embedding is then the backbone's width.
        self.embedding_dim = spec.embedding_dim if spec.head_depth > 0 else self.backbone.out_channels
        self.register_buffer("pixel_mean", torch.tensor(spec.mean), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(spec.std), persistent=False)

    def downscale(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 pixels scaled to [0, 1] (float input is taken as already in [0, 1]), then average-pooled by
        `input_downscale`. Training calls it before augmenting, so augmentation runs at the reduced size."""
        if images.dtype == torch.uint8:
            images = images.float() / 255.0
        if self.spec.input_downscale > 1:
            images = F.avg_pool2d(images, self.spec.input_downscale)
        return images

    def forward(self, images: torch.Tensor, downscaled: bool = False) -> torch.Tensor:
        """`downscaled=True`: `images` already went through `downscale` (float in [0, 1], reduced size)."""
        if not downscaled:
            images = self.downscale(images)
        features = self.backbone((images - self.pixel_mean) / self.pixel_std)
        pooled = self.pool(features).flatten(1).float()
        return F.normalize(self.head(pooled), dim=1)


def _projection_head(in_features: int, spec: EmbeddingSpec) -> nn.Sequential:
    layers: list[nn.Module] = []
    if spec.norm_order in ("before", "both"):
        layers.append(nn.BatchNorm1d(in_features))
    if spec.dropout > 0:
        layers.append(nn.Dropout(spec.dropout))
    width = in_features
    for _ in range(max(0, spec.head_depth - 1)):
        norm, relu = nn.BatchNorm1d(spec.head_hidden), nn.ReLU(inplace=True)
        order = (relu, norm) if spec.hidden_norm == "after_relu" else (norm, relu)
        layers += [nn.Linear(width, spec.head_hidden), *order]
        width = spec.head_hidden
    if spec.head_depth > 0:
        layers.append(nn.Linear(width, spec.embedding_dim))
        width = spec.embedding_dim
    if spec.norm_order in ("after", "both"):
        layers.append(nn.BatchNorm1d(width))
    return nn.Sequential(*layers)


def build_embedding_model(spec: EmbeddingSpec) -> FlukeEmbedder:
    return FlukeEmbedder(spec)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# ---------------------------------------------------------------------------------------------------------------
# the API the identification stage calls


def weights_to_bytes(model: nn.Module) -> bytes:
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buffer)
    return buffer.getvalue()


def load_embedding_model(artifact: dict, device) -> torch.nn.Module:
    """Rebuild the trained network from the `embedding_model` artifact (`weights` bytes, `config` dict).

    Returns it in eval mode on `device` (channels-last on CUDA). Never downloads: pretrained weights are
    already inside `weights`.
    """
    device = torch.device(device)
    spec_values = dict(artifact["config"]["model"])
    spec_values["pretrained"] = ""
    model = build_embedding_model(EmbeddingSpec.from_dict(spec_values))
    state = torch.load(io.BytesIO(artifact["weights"]), map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    model.flip_as_new_class = bool(artifact["config"].get("training", {}).get("flip_as_new_class", False))
    model = model.to(device).eval()
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model


@torch.no_grad()
def embed_images(
    model,
    tensors: np.ndarray,
    device,
    batch_size: int = 128,
    flip: bool = False,
    rows: np.ndarray | None = None,
) -> np.ndarray:
    """Embeddings of uint8 N x C x H x W crops (a read-only memmap is fine), or of the `rows` of them, read one
    batch at a time: float32 N x D, L2-normalised.

    `flip=True` is test-time augmentation with the horizontally mirrored crop. For a model trained without the
    flipped-as-new-class trick the two embeddings are averaged (D columns). For a model trained with it a
    mirrored fluke is another pattern, so averaging would mix two identities: instead the two embeddings are
    concatenated and scaled by 1/sqrt(2) (2 x D columns), whose inner product is the mean of the
    original-original and mirrored-mirrored cosine similarities, the top Kaggle solution's test-time rule.
    """
    device = torch.device(device)
    was_training = model.training
    model.eval()
    cuda = device.type == "cuda"
    concat = flip and bool(getattr(model, "flip_as_new_class", False))
    outputs = []
    count = len(tensors) if rows is None else len(rows)
    for start in range(0, count, batch_size):
        chosen = (
            slice(start, start + batch_size) if rows is None else np.asarray(rows[start : start + batch_size])
        )
        batch = torch.from_numpy(np.array(tensors[chosen], dtype=np.uint8, copy=True))
        batch = batch.to(device, non_blocking=cuda)
        if cuda:
            batch = batch.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            embedding = model(batch).float()
            if flip:
                mirrored = model(batch.flip(-1)).float()
                if concat:
                    embedding = torch.cat([embedding, mirrored], dim=1) / np.sqrt(2.0)
                else:
                    embedding = F.normalize(embedding + mirrored, dim=1)
        outputs.append(embedding.cpu().numpy().astype(np.float32))
    model.train(was_training)
    if not outputs:
        width = model.embedding_dim * (2 if concat else 1)
        return np.zeros((0, width), dtype=np.float32)
    return np.concatenate(outputs)
