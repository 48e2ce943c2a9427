"""Seeded random streams and the smooth noise every texture is built from.

Every random draw of the generator comes from ``stream(seed, KIND, index)``: a
``numpy.random.SeedSequence(seed, spawn_key=(KIND, index))``, so an image or a whale gets the same draws
whatever the number of workers and whatever was drawn before it.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

# stream kinds: the plan (one stream), one stream per individual, one per image
PLAN, IDENTITY, PHOTO = 0, 1, 2
# the harder variants (``synth.variants``) draw only from streams of their own, so a data set made
# without them gets exactly the draws it always had: who is varied (one plan), how an individual is
# varied (per individual), how a hard photo is made (per image)
VARIANT_PLAN, VARIANT_IDENTITY, VARIANT_PHOTO = 3, 4, 5


def stream(seed: int, *key: int) -> np.random.Generator:
    """The generator of one stream: `stream(seed, PHOTO, image_index)`."""
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=tuple(int(k) for k in key)))


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], grid: tuple[int, int]) -> np.ndarray:
    """Smooth Gaussian-ish noise: a random ``grid`` upsampled bicubically to ``shape``, unit std."""
    g = rng.standard_normal(grid).astype(np.float32)
    a = np.asarray(Image.fromarray(g, mode="F").resize((shape[1], shape[0]), Image.BICUBIC))
    s = float(a.std())
    return (a - float(a.mean())) / (s if s > 1e-6 else 1.0)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function (a soft 0-1 step), written with tanh."""
    return 0.5 + 0.5 * np.tanh(0.5 * x)
