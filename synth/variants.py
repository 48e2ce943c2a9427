"""Harder data sets: look-alike individuals, washed-out flukes and hard photos (options of ``generate``).

Three shares in [0, 1], all 0 by default (see the ``synth`` package docstring for what each one makes):
``lookalikes`` (of the known individuals), ``washout`` (of all individuals), ``hard_photos`` (of the
original photos; a duplicate is as hard as its source).  ``PRESETS`` name three mixes.  Who is varied is
drawn from ``VARIANT_PLAN`` streams, how an individual or a photo is varied from its ``VARIANT_IDENTITY``
or ``VARIANT_PHOTO`` stream, so a data set made with every share at 0 gets exactly the draws it always had,
and the photos a variant does not touch are byte-identical to those of the standard set of the same seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from PIL import Image, ImageFilter

from core.constants import NEW_WHALE
from synth.draws import VARIANT_PLAN, smooth_noise, stream

if TYPE_CHECKING:
    from synth.individuals import Identity
    from synth.plan import Plan

# ---- look-alikes: how far a look-alike is from its twin
#: share of the twin's marks (spots, rings, whole rakes) a look-alike has elsewhere: that many (at least
#: one) are removed and the same number of the same kinds re-drawn at new places
LOOKALIKE_MARK_SHARE = 0.25
#: weight, relative to the field's own spread, of the look-alike's smooth noise added to its twin's
#: black/white field before it is thresholded: the borders of the black and white areas move a little
LOOKALIKE_LAYOUT_JITTER = 0.25
LOOKALIKE_JITTER_GRID = (5, 8)

# ---- washed-out flukes
#: share of the fluke that is white, by kind (before the marks and the trailing-edge margin)
WASHOUT_WHITE_FRAC = {"white": (0.975, 0.995), "black": (0.005, 0.025)}
#: share of its marks a washed-out fluke keeps
WASHOUT_MARK_KEEP = 0.3
#: widest black trailing-edge margin of a washed-out fluke (fluke units; a standard one: up to 0.07)
WASHOUT_MARGIN_MAX = 0.012

# ---- hard photos
HARD_KINDS = ("small", "blurred", "backlit", "dorsal")
SMALL_WIDTH_FRAC = (0.07, 0.16)  # fluke width / frame width (a standard photo: 0.10 .. 0.80, median ~0.6)
SMALL_LOWRES_P = 0.5  # share of small photos also stored at low resolution ...
SMALL_LOWRES_WIDTH = (240, 420)  # ... this wide in pixels
BLUR_SIGMA = (3.0, 6.5)  # Gaussian blur, pixels per 1000 px of width (a standard photo: 0.3 .. 1.6)
MOTION_LENGTH = (0.02, 0.045)  # motion blur, share of the width
DORSAL_TONE = (0.07, 0.17)  # gray of the dorsal surface
DORSAL_PATTERN = (0.0, 0.08)  # contrast of the underside pattern faintly showing through
DORSAL_SHEEN = 0.3  # wet highlights and sheeting water on the dorsal side, relative to a standard photo's

OPTIONS = ("lookalikes", "washout", "hard_photos")
PRESETS: dict[str, dict[str, float]] = {
    "standard": {"lookalikes": 0.0, "washout": 0.0, "hard_photos": 0.0},
    "lookalike": {"lookalikes": 0.3, "washout": 0.1, "hard_photos": 0.0},
    "harsh": {"lookalikes": 0.1, "washout": 0.15, "hard_photos": 0.3},
}


def check_share(option: str, value: float) -> float:
    """``value`` as a float if it is a share in [0, 1], else ValueError naming ``option``."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{option} must be a share between 0 and 1, got {value!r}") from None
    if not 0.0 <= v <= 1.0:  # also refuses nan
        raise ValueError(f"{option} must be a share between 0 and 1, got {value!r}")
    return v


@dataclass(frozen=True)
class Variants:
    """The options of a harder data set; ``name`` is the preset they came from."""

    lookalikes: float = 0.0
    washout: float = 0.0
    hard_photos: float = 0.0
    name: str = "standard"

    def __post_init__(self) -> None:
        for option in OPTIONS:
            object.__setattr__(self, option, check_share(option, getattr(self, option)))

    @property
    def active(self) -> bool:
        """Whether any option is non-zero."""
        return any(getattr(self, o) > 0 for o in OPTIONS)


def resolve(
    variant: str = "standard",
    *,
    lookalikes: float | None = None,
    washout: float | None = None,
    hard_photos: float | None = None,
) -> Variants:
    """The options of preset ``variant``, each overridden by the explicit value given (None: the preset's)."""
    if variant not in PRESETS:
        raise ValueError(f"variant must be one of {', '.join(PRESETS)}, got {variant!r}")
    given = {"lookalikes": lookalikes, "washout": washout, "hard_photos": hard_photos}
    values = {o: PRESETS[variant][o] if given[o] is None else given[o] for o in OPTIONS}
    return Variants(**values, name=variant)


class Look(NamedTuple):
    """How an individual departs from its own identity: ``twin`` (the individual it is a near copy of, -1:
    none) and ``washout`` ("white", "black" or "": not washed out)."""

    twin: int = -1
    washout: str = ""


class VariantPlan(NamedTuple):
    """Who is varied: ``looks`` (individual -> Look, only the varied ones) and ``conditions`` (image index ->
    hard-photo kind, only the hard photos and their duplicates)."""

    options: Variants
    looks: dict[int, Look]
    conditions: dict[int, str]


def _count(share: float, n: int) -> int:
    """How many of ``n`` a share takes: at least one when the share is above 0."""
    return 0 if share <= 0 or n == 0 else min(n, max(1, int(round(share * n))))


def plan_variants(plan: Plan, options: Variants, seed: int) -> VariantPlan:
    """Choose the look-alikes and their twins, the washed-out individuals and the hard photos.

    Each choice has its own ``VARIANT_PLAN`` stream and takes the first ones of a random order, so a larger
    share varies a superset and one option does not move the others.
    """
    imgs = plan["images"]
    known = sorted({im["ind"] for im in imgs if im["label"] != NEW_WHALE})
    looks: dict[int, Look] = {}

    rng = stream(seed, VARIANT_PLAN, 0)
    order = [int(i) for i in rng.permutation(known)]
    n_look = min(_count(options.lookalikes, len(known)), len(known) - 1)
    copies, originals = order[:n_look], order[n_look:]
    twins = rng.choice(originals, size=n_look, replace=n_look > len(originals)) if n_look else []

    rng = stream(seed, VARIANT_PLAN, 1)
    cands = [i for i in range(plan["n_individuals"]) if i not in set(copies)]
    order = [int(i) for i in rng.permutation(cands)]
    white = rng.random(len(order)) < 0.5
    n_wash = _count(options.washout, plan["n_individuals"])
    washed = {ind: ("white" if w else "black") for ind, w in zip(order[:n_wash], white[:n_wash])}
    for ind, kind in washed.items():
        looks[ind] = Look(-1, kind)
    for ind, twin in zip(copies, twins):
        looks[ind] = Look(int(twin), washed.get(int(twin), ""))  # a washed-out twin's copy is washed out too

    rng = stream(seed, VARIANT_PLAN, 2)
    photos = [i for i, im in enumerate(imgs) if im["src"] < 0]
    order = [int(i) for i in rng.permutation(photos)]
    offset = int(rng.integers(len(HARD_KINDS)))
    n_hard = _count(options.hard_photos, len(photos))
    conditions = {i: HARD_KINDS[(j + offset) % len(HARD_KINDS)] for j, i in enumerate(order[:n_hard])}
    for i, im in enumerate(imgs):  # a duplicate is as hard as the photo it copies
        src = im["src"]
        while src >= 0 and imgs[src]["src"] >= 0:
            src = imgs[src]["src"]
        if src >= 0 and src in conditions:
            conditions[i] = conditions[src]
    return VariantPlan(options, looks, conditions)


# ----------------------------------------------------------------------------------------------
# Hard photos: each helper draws from the photo's VARIANT_PHOTO stream (``rng``)
# ----------------------------------------------------------------------------------------------


def dorsal_view(ident: Identity, rng: np.random.Generator) -> Identity:
    """The whale seen from the other side: its outline mirrored, a uniform dark surface, a faint pattern."""
    val = ident["val"][:, ::-1]
    v = rng.uniform(*DORSAL_TONE) + rng.uniform(*DORSAL_PATTERN) * (val - float(val.mean()))
    v = v + 0.025 * smooth_noise(rng, val.shape, (6, 8)) + 0.015 * smooth_noise(rng, val.shape, (60, 70))
    return {
        **ident,
        "val": np.clip(v, 0, 1).astype(np.float32),
        "alpha": np.ascontiguousarray(ident["alpha"][:, ::-1]),
    }


def small_width(rng: np.random.Generator) -> float:
    """The fluke's width as a share of a small photo's width."""
    return float(rng.uniform(*SMALL_WIDTH_FRAC))


def low_resolution(
    rng: np.random.Generator, im: Image.Image, box: tuple[int, int, int, int]
) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """Half of the small photos are stored at a low resolution: the photo and its box scaled down."""
    if rng.random() >= SMALL_LOWRES_P:
        return im, box
    W, H = im.size
    w = int(rng.integers(SMALL_LOWRES_WIDTH[0], SMALL_LOWRES_WIDTH[1] + 1))
    h = max(16, int(round(H * w / W)))
    out = im.resize((w, h), Image.LANCZOS)
    fx, fy = w / W, h / H
    x0, y0 = min(w - 1, math.floor(box[0] * fx)), min(h - 1, math.floor(box[1] * fy))
    x1, y1 = max(x0 + 1, min(w, math.ceil(box[2] * fx))), max(y0 + 1, min(h, math.ceil(box[3] * fy)))
    return out, (x0, y0, x1, y1)


def strong_blur(rng: np.random.Generator, im: Image.Image) -> Image.Image:
    """Out of focus (a wide Gaussian) or shaken (motion blur along a random direction)."""
    W = im.size[0]
    if rng.random() < 0.5:
        return im.filter(ImageFilter.GaussianBlur(rng.uniform(*BLUR_SIGMA) * W / 1000))
    length = rng.uniform(*MOTION_LENGTH) * W
    ang = rng.uniform(0, np.pi)
    a = np.asarray(im, dtype=np.float32)
    n = max(3, int(round(length)))
    pad = n + 1
    p = np.pad(a, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    acc = np.zeros_like(a)
    Hh, Ww = a.shape[:2]
    for t in np.linspace(-0.5, 0.5, n):
        dx, dy = int(round(t * length * math.cos(ang))), int(round(t * length * math.sin(ang)))
        acc += p[pad + dy : pad + dy + Hh, pad + dx : pad + dx + Ww]
    out = Image.fromarray(np.clip(acc / n, 0, 255).round().astype(np.uint8), mode=im.mode)
    return out.filter(ImageFilter.GaussianBlur(0.8 * W / 1000))


def backlit_fluke(rng: np.random.Generator, tex: Image.Image) -> Image.Image:
    """The fluke against the light: dark, its pattern flattened to a low contrast."""
    a = np.asarray(tex, dtype=np.float32)
    rgb = a[..., :3] / 255.0
    v = rng.uniform(0.04, 0.11) + rng.uniform(0.08, 0.2) * rgb
    v = v * (1 + np.array([-0.04, 0.0, 0.06]) * rng.uniform(0.5, 1.5))
    out = np.dstack([np.clip(v, 0, 1) * 255.0, a[..., 3:]]).round().astype(np.uint8)
    return Image.fromarray(out, mode="RGBA")


def bright_background(rng: np.random.Generator, bg: np.ndarray) -> np.ndarray:
    """Ocean and sky washed bright by the sun behind the whale, with a glare spot (HxWx3 floats)."""
    H, W = bg.shape[:2]
    cols = [(0.88, 0.9, 0.92), (0.96, 0.92, 0.84), (0.82, 0.88, 0.95), (0.9, 0.9, 0.88)]
    col = np.array(cols[int(rng.integers(len(cols)))]) * rng.uniform(0.9, 1.05)
    m = rng.uniform(0.45, 0.8)
    sx, sy, r = rng.uniform(0.1, 0.9) * W, rng.uniform(-0.2, 0.3) * H, rng.uniform(0.3, 0.7) * W
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    glow = np.exp(-((xx - sx) ** 2 + (yy - sy) ** 2) / (r * r))
    out = bg * (1 - m) + m * col[None, None, :] + rng.uniform(0.2, 0.5) * glow[:, :, None]
    return np.clip(out, 0, 1).astype(np.float32)


def veiling_glare(rng: np.random.Generator, im: Image.Image) -> Image.Image:
    """Stray light over the whole frame: every contrast, the fluke's against the sky included, lowered."""
    level = tuple(int(round(255 * rng.uniform(0.85, 1.0))) for _ in range(3))
    return Image.blend(im, Image.new(im.mode, im.size, (*level, 255)[: len(im.mode)]), rng.uniform(0.12, 0.3))
