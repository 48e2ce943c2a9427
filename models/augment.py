"""Tensor augmentation on the training device, after the model's downscale (so it runs at the reduced size)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

BLUR_MIX = 0.3  # largest share of the blurred photo mixed in (strength 1)
NOISE_STD = 0.015  # pixel noise, [0, 1] units (strength 1)


def augment(images: torch.Tensor, generator: torch.Generator, strength: float = 1.0) -> torch.Tensor:
    """A batch (uint8, or float in [0, 1]) -> float in [0, 1], on the batch's device: rotated, scaled (more along
    one axis than the other, as a tilted fluke is foreshortened), sheared and shifted; blurred; contrast-, gamma-
    and brightness-jittered; noised. Never mirrored: a mirrored fluke is another whale."""
    x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
    if strength <= 0:
        return x
    n, device = x.shape[0], x.device

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(n, device=device, generator=generator)

    # geometry: one affine warp per photo
    angle = uniform(-10, 10) * strength * math.pi / 180
    scale_x = 1 + uniform(-0.15, 0.15) * strength
    scale_y = scale_x * (1 + uniform(-0.15, 0.15) * strength)
    shear = uniform(-0.1, 0.1) * strength
    shift_x, shift_y = uniform(-0.08, 0.08) * strength, uniform(-0.08, 0.08) * strength
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack(
        [
            torch.stack([cos / scale_x, (-sin + shear) / scale_x, shift_x], dim=1),
            torch.stack([sin / scale_y, cos / scale_y, shift_y], dim=1),
        ],
        dim=1,
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    # blur: a random mix of the photo and its 3 x 3 box-blurred self. At the reduced size a full 3 x 3 blur
    # erases the small spots that tell individuals apart (docs/training.md), so the mix stays light.
    blurred = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
    mix = (uniform(0, BLUR_MIX) * min(1.0, strength)).view(-1, 1, 1, 1)
    x = x + mix * (blurred - x)
    # photometry
    gamma = torch.exp(uniform(-0.3, 0.3) * strength).view(-1, 1, 1, 1)
    x = x.clamp(1e-4, 1).pow(gamma)
    contrast = 1 + uniform(-0.3, 0.3) * strength
    brightness = uniform(-0.1, 0.1) * strength
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * contrast.view(-1, 1, 1, 1) + mean + brightness.view(-1, 1, 1, 1)
    noise = torch.randn(x.shape, device=device, generator=generator) * (NOISE_STD * strength)
    return (x + noise).clamp_(0, 1)
