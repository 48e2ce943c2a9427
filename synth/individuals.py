"""Each whale's persistent identity: its fluke outline and the black/white pattern of its underside.

The outline has a per-whale shape, notch, nicks, scallops and sometimes a missing tip or a bite; the pattern
is a black/white field with blotches, spots, rings and rake-mark scars.  Both live in a canonical texture
(``CW`` x ``CH`` pixels, fluke coordinates ``XG``/``YG``: origin at the notch, y up, half span 1) that
every photo of the whale warps into place.  All draws come from the whale's ``IDENTITY`` stream; a look-alike
(``synth.variants``) starts from its twin's and re-draws a few marks from a ``VARIANT_IDENTITY`` stream.
"""

from __future__ import annotations

import math
from typing import NamedTuple, TypedDict

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from synth.draws import IDENTITY, VARIANT_IDENTITY, sigmoid, smooth_noise, stream
from synth.variants import (
    LOOKALIKE_JITTER_GRID,
    LOOKALIKE_LAYOUT_JITTER,
    LOOKALIKE_MARK_SHARE,
    WASHOUT_MARGIN_MAX,
    WASHOUT_MARK_KEEP,
    WASHOUT_WHITE_FRAC,
    Look,
)

CW, CH = 600, 520  # canonical texture size
S = 280.0  # half span in canonical pixels
X0, Y0 = CW / 2.0, 165.0  # canonical origin: centre of the notch, y points up

ROWS = np.arange(CH, dtype=np.float32)
COLS = np.arange(CW, dtype=np.float32)
YG = ((Y0 - ROWS) / S)[:, None] * np.ones((1, CW), np.float32)  # fluke coords of every texel
XG = ((COLS - X0) / S)[None, :] * np.ones((CH, 1), np.float32)


class Identity(TypedDict):
    """A whale's canonical fluke: ``val`` gray pattern (CH x CW, in [0, 1], defined everywhere), ``alpha``
    silhouette (CH x CW, in [0, 1]), ``chord`` and ``stalk`` (fluke units: depth of the lobes below the
    notch, length of the peduncle)."""

    val: np.ndarray
    alpha: np.ndarray
    chord: float
    stalk: float


#: one mark: (kind, shapes), kind "dark", "light" or "rake"; a shape is ("ellipse", box), ("ring", box,
#: width) or ("line", points, fill, width), in canonical pixels
Mark = tuple[str, list[tuple]]


def _outline(rng: np.random.Generator) -> tuple[list[tuple[float, float]], dict]:
    """Polygon (canonical px) of a fluke with per-whale shape, notch, nicks and scallops."""
    chord = rng.uniform(0.30, 0.46)
    root = rng.uniform(0.10, 0.17)
    stalk = rng.uniform(0.30, 0.50)
    flare = rng.uniform(1.15, 1.6)
    notch_d = rng.uniform(0.04, 0.13)
    notch_w = rng.uniform(0.025, 0.06)
    h0 = rng.uniform(0.0, 0.28)
    pt0 = rng.uniform(1.0, 2.2)
    as0 = rng.uniform(-0.07, 0.07)
    q0 = rng.uniform(1.0, 1.7)
    lb0 = rng.uniform(-0.05, 0.06)
    sc_a = rng.uniform(0.006, 0.022) if rng.random() < 0.6 else 0.0
    sc_f = rng.uniform(4, 12)
    serr = rng.uniform(0.0, 0.004)
    fil_d, fil_w = rng.uniform(0.04, 0.12), rng.uniform(0.04, 0.10)
    xs = np.linspace(0.0, 1.0, 260)
    sides = []
    for _sgn in (-1, 1):
        h = h0 + rng.normal(0, 0.025)
        pt = pt0 * math.exp(rng.normal(0, 0.08))
        a_s = as0 + rng.normal(0, 0.015)
        q = q0 * math.exp(rng.normal(0, 0.06))
        lb = lb0 + rng.normal(0, 0.01)
        span = 1.0 + rng.normal(0, 0.02)
        x = xs * span
        yt = h * xs**pt + a_s * np.sin(np.pi * xs) - notch_d * np.exp(-((x / notch_w) ** 2))
        if sc_a > 0:
            yt -= sc_a * np.abs(np.sin(np.pi * sc_f * xs + rng.uniform(0, np.pi))) ** 0.6 * (xs > 2 * notch_w)
        nser = int(rng.integers(40, 110))
        yt += serr * np.interp(xs * nser, np.arange(nser + 1), rng.standard_normal(nser + 1))
        for _ in range(int(rng.poisson(1.6))):  # nicks
            p, d, wd = rng.uniform(0.12, 0.95), rng.uniform(0.02, 0.08), rng.uniform(0.012, 0.04)
            sh = rng.choice([0.5, 1.0, 2.0])
            yt -= d * np.clip(1 - np.abs(xs - p) / wd, 0, 1) ** sh
        if rng.random() < 0.15:  # a big bite out of the trailing edge
            p, d, wd = rng.uniform(0.3, 0.85), rng.uniform(0.08, 0.17), rng.uniform(0.05, 0.11)
            yt -= d * np.sqrt(np.clip(1 - ((xs - p) / wd) ** 2, 0, 1))
        u = np.clip((x - root) / (span - root), 0, 1)
        yl = -chord + (h + a_s * 0 + chord) * u**q - lb * np.sin(np.pi * u) * (1 - u) * 2
        yl = yl - fil_d * np.exp(-np.clip(x - root, 0, None) / fil_w)  # fillet into the peduncle
        yl = np.where(x >= root, yl, -chord - fil_d)
        yt = np.maximum(yt, yl + 0.012 * (1 - xs**8))
        cut = 1.0 if rng.random() > 0.07 else rng.uniform(0.84, 0.94)  # missing tip
        keep = xs <= cut
        sides.append((x[keep], yt[keep], yl[keep]))
    pts: list[tuple[float, float]] = []

    def P(x: float, y: float) -> tuple[float, float]:
        return (X0 + x * S, Y0 - y * S)

    ts = np.linspace(0, 1, 24)
    # left: stalk bottom -> up -> leading edge out to tip -> trailing edge back to notch
    lx, lyt, lyl = sides[0]
    for t in ts[::-1]:
        pts.append(P(-root * (1 + (flare - 1) * t**1.5), -chord - fil_d - stalk * t))
    m = lx >= root
    for x, y in zip(lx[m], lyl[m]):
        pts.append(P(-x, y))
    for x, y in zip(lx[::-1], lyt[::-1]):
        pts.append(P(-x, y))
    rx, ryt, ryl = sides[1]
    for x, y in zip(rx, ryt):
        pts.append(P(x, y))
    m = rx >= root
    for x, y in zip(rx[m][::-1], ryl[m][::-1]):
        pts.append(P(x, y))
    for t in ts:
        pts.append(P(root * (1 + (flare - 1) * t**1.5), -chord - fil_d - stalk * t))
    return pts, {"chord": chord + fil_d, "root": root, "stalk": stalk}


class _Draws(NamedTuple):
    """A whale's identity before its marks are painted and its tones laid: what ``make_identity`` draws."""

    alpha_img: Image.Image
    geo: dict
    white: np.ndarray  # the black/white field, without the marks
    marks: list[Mark]
    rng: np.random.Generator  # the identity stream, where the tones are drawn next


def _draws(seed: int, ind: int, look: Look | None) -> _Draws:
    """The outline, black/white field and marks of a whale; a look-alike starts from its twin's draws."""
    look = look or Look()
    base = ind if look.twin < 0 else look.twin
    rng = stream(seed, IDENTITY, base)
    poly, geo = _outline(rng)
    # drawn at 2x and box-filtered down: an anti-aliased silhouette
    big = Image.new("L", (CW * 2, CH * 2), 0)
    ImageDraw.Draw(big).polygon([(2 * x, 2 * y) for x, y in poly], fill=255)
    alpha_img = big.resize((CW, CH), Image.BOX)
    inside = np.asarray(alpha_img, dtype=np.float32) / 255.0 > 0.5
    # variant draws come from streams of their own: the washout one is the twin's for a look-alike
    wash = stream(seed, VARIANT_IDENTITY, base, 0) if look.washout else None
    own = stream(seed, VARIANT_IDENTITY, ind, 1) if look.twin >= 0 else None
    white = _black_and_white(
        rng,
        inside,
        jitter=None if own is None else smooth_noise(own, (CH, CW), LOOKALIKE_JITTER_GRID),
        white_frac=None if wash is None else float(wash.uniform(*WASHOUT_WHITE_FRAC[look.washout])),
    )
    marks = _draw_marks(rng, inside)
    if wash is not None:  # a washed-out fluke keeps few marks
        marks = [m for m, keep in zip(marks, wash.random(len(marks)) < WASHOUT_MARK_KEEP) if keep]
    if own is not None:
        marks = _redraw_some(own, inside, marks)
    return _Draws(alpha_img, geo, white, marks, rng)


def make_identity(seed: int, ind: int, look: Look | None = None) -> Identity:
    """Canonical fluke of one whale: gray pattern value (everywhere) and alpha (silhouette).

    ``look`` (``synth.variants.Look``): a near copy of another individual and/or a washed-out fluke.
    """
    d = _draws(seed, ind, look)
    alpha = np.asarray(d.alpha_img, dtype=np.float32) / 255.0
    white = _paint_marks(d.marks, d.white)
    val = _tones(d.rng, white, d.geo["chord"], d.alpha_img)
    return {
        "val": np.clip(val, 0, 1).astype(np.float32),
        "alpha": alpha,
        "chord": d.geo["chord"],
        "stalk": d.geo["stalk"],
    }


def identity_marks(seed: int, ind: int, look: Look | None = None) -> list[Mark]:
    """The marks of a whale (spots, rings, rakes), as ``make_identity`` paints them."""
    return _draws(seed, ind, look).marks


def _redraw_some(rng: np.random.Generator, inside: np.ndarray, marks: list[Mark]) -> list[Mark]:
    """A look-alike's marks: its twin's with ``LOOKALIKE_MARK_SHARE`` of them (at least one) re-drawn
    elsewhere, each as a new mark of the same kind (a whale without marks gets one dark spot)."""
    n = len(marks)
    k = min(n, max(1, int(round(LOOKALIKE_MARK_SHARE * n))))
    drop = {int(i) for i in rng.choice(n, size=k, replace=False)} if n else set()
    kinds = [marks[i][0] for i in sorted(drop)] or ["dark"]
    counts = (kinds.count("dark"), kinds.count("light"), kinds.count("rake"))
    return [m for i, m in enumerate(marks) if i not in drop] + _draw_marks(rng, inside, counts)


def _normalized(a: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """``a`` shifted and scaled to zero mean, unit std over the fluke."""
    v = a[inside]
    return (a - v.mean()) / (v.std() + 1e-6)


def _black_and_white(
    rng: np.random.Generator,
    inside: np.ndarray,
    jitter: np.ndarray | None = None,
    white_frac: float | None = None,
) -> np.ndarray:
    """The whale's large-scale black/white field (0 black .. 1 white), with its trailing-edge margin.

    ``jitter`` (unit noise): added to the field, ``LOOKALIKE_LAYOUT_JITTER`` times its spread, before the
    threshold; ``white_frac``: the white share instead of the drawn one (washed-out flukes).  Either one
    leaves the draws as they are.
    """
    forced = white_frac
    X, Y = XG, YG

    def norm(a: np.ndarray) -> np.ndarray:
        return _normalized(a, inside)

    n1 = smooth_noise(rng, (CH, CW), (int(rng.integers(4, 7)), int(rng.integers(6, 10))))
    n1s = norm(0.5 * (n1 + n1[:, ::-1]))
    n2 = norm(smooth_noise(rng, (CH, CW), (int(rng.integers(8, 13)), int(rng.integers(12, 20)))))
    radial = norm(-np.sqrt((X / 0.9) ** 2 + ((Y + 0.12) / 0.45) ** 2))
    tips = norm(-np.abs(X))
    updown = norm(Y)
    th = np.arctan2(Y + 0.45, X)  # streaks radiating from below the notch
    nth = int(rng.integers(10, 26))
    th_noise = rng.standard_normal(nth + 1)
    streak = norm(
        np.interp((th / np.pi) * nth, np.arange(nth + 1), th_noise).astype(np.float32)
        * np.clip(Y + 0.7, 0, 1)
    )
    w_sym = rng.uniform(0.2, 0.85)
    field = (
        1.0 * (w_sym * n1s + (1 - w_sym) * norm(n1))
        + rng.uniform(0.2, 0.7) * n2
        + rng.normal(0.5, 0.6) * radial
        + rng.normal(0.2, 0.4) * tips
        + rng.normal(0.0, 0.4) * updown
        + (rng.uniform(0.4, 1.2) if rng.random() < 0.5 else 0.0) * streak
        + rng.uniform(0.1, 0.35) * smooth_noise(rng, (CH, CW), (26, 36))
    )
    if jitter is not None:
        field = field + LOOKALIKE_LAYOUT_JITTER * float(field[inside].std()) * jitter
    r = rng.random()
    if r < 0.2:
        white_frac = rng.uniform(0.72, 0.93)
    elif r < 0.4:
        white_frac = rng.uniform(0.07, 0.22)
    else:
        white_frac = rng.uniform(0.22, 0.72)
    if forced is not None:
        white_frac = forced
    thr = float(np.quantile(field[inside], 1 - white_frac))
    white = sigmoid((field - thr) / rng.uniform(0.03, 0.08))

    # ---- trailing-edge black margin
    if rng.random() < 0.6:
        top = np.argmax(inside, axis=0).astype(np.float32)
        dist = (ROWS[:, None] - top[None, :]) / S
        marg = rng.uniform(0.015, 0.07)
        if forced is not None:  # a washed-out fluke keeps at most a thin margin
            marg = min(marg, WASHOUT_MARGIN_MAX)
        white *= 1 - sigmoid((marg - dist) / 0.006)
    return white


def _draw_marks(
    rng: np.random.Generator, inside: np.ndarray, counts: tuple[int, int, int] | None = None
) -> list[Mark]:
    """Dark spots, light spots and rings, and rake-mark scars, drawn at random places on the fluke.

    ``counts``: how many (dark, light, rake) marks, instead of drawing how many.
    """
    ys_in, xs_in = np.nonzero(inside)

    def rand_in() -> tuple[float, float]:
        j = int(rng.integers(len(xs_in)))
        return float(xs_in[j]), float(ys_in[j])

    marks: list[Mark] = []
    if counts is None:
        n_dark = int(rng.poisson(rng.choice([0.0, 6.0, 16.0], p=[0.35, 0.35, 0.3])))
    else:
        n_dark = counts[0]
    for _ in range(n_dark):
        cx, cy = rand_in()
        rr = S * rng.uniform(0.012, 0.045)
        asp = rng.uniform(0.6, 1.4)
        marks.append(("dark", [("ellipse", [cx - rr * asp, cy - rr / asp, cx + rr * asp, cy + rr / asp])]))
    if counts is None:
        n_light = int(rng.poisson(rng.choice([0.0, 4.0, 10.0], p=[0.45, 0.35, 0.2])))
    else:
        n_light = counts[1]
    for _ in range(n_light):
        cx, cy = rand_in()
        rr = S * rng.uniform(0.010, 0.03)
        if rng.random() < 0.5:
            marks.append(("light", [("ellipse", [cx - rr, cy - rr, cx + rr, cy + rr])]))
        else:
            marks.append(("light", [("ring", [cx - rr, cy - rr, cx + rr, cy + rr], max(2, int(rr * 0.35)))]))
    n_rake = int(rng.choice([0, 1, 2, 3], p=[0.35, 0.35, 0.2, 0.1])) if counts is None else counts[2]
    for _ in range(n_rake):
        cx, cy = rand_in()
        ang = rng.uniform(0, np.pi)
        ln = S * rng.uniform(0.15, 0.45)
        gap = S * rng.uniform(0.025, 0.05)
        wd = max(2, int(S * rng.uniform(0.008, 0.016)))
        bend = rng.uniform(-0.15, 0.15)
        dx, dy = math.cos(ang), math.sin(ang)
        tines = []
        for j in range(int(rng.integers(2, 5))):
            off = (j - 1.5) * gap * rng.uniform(0.8, 1.2)
            ox, oy = -dy * off, dx * off
            t0, t1 = -0.5 + rng.uniform(0, 0.2), 0.5 - rng.uniform(0, 0.2)
            seg = []
            for t in np.linspace(t0, t1, 10):
                b = bend * ln * (t * t - 0.25) + rng.normal(0, 0.004 * S)
                seg.append((cx + ox + dx * ln * t - dy * b, cy + oy + dy * ln * t + dx * b))
            fill = int(rng.uniform(150, 255))
            tines.append(("line", seg, fill, max(1, wd + int(rng.integers(-1, 2)))))
        marks.append(("rake", tines))
    return marks


def _paint_marks(marks: list[Mark], white: np.ndarray) -> np.ndarray:
    """``white`` with its marks: dark spots, light spots and rings, and rake scars that flip the colour."""
    dark_spots = Image.new("L", (CW, CH), 0)
    light_marks = Image.new("L", (CW, CH), 0)
    flip = Image.new("L", (CW, CH), 0)
    dd, dl, df = ImageDraw.Draw(dark_spots), ImageDraw.Draw(light_marks), ImageDraw.Draw(flip)
    for kind, shapes in marks:
        for shape in shapes:
            if kind == "dark":
                dd.ellipse(shape[1], fill=255)
            elif shape[0] == "ellipse":
                dl.ellipse(shape[1], fill=255)
            elif shape[0] == "ring":
                dl.ellipse(shape[1], outline=255, width=shape[2])
            else:
                df.line(shape[1], fill=shape[2], width=shape[3])
    dark = np.asarray(dark_spots.filter(ImageFilter.GaussianBlur(1.0)), dtype=np.float32) / 255.0
    light = np.asarray(light_marks.filter(ImageFilter.GaussianBlur(1.0)), dtype=np.float32) / 255.0
    fl = np.asarray(flip.filter(ImageFilter.GaussianBlur(0.8)), dtype=np.float32) / 255.0
    white = white * (1 - dark) + (1 - white) * light * 0.9 + white * dark * 0.0
    white = white * (1 - fl) + (1 - white) * fl * 0.85
    return white


def _tones(rng: np.random.Generator, white: np.ndarray, chord: float, alpha_img: Image.Image) -> np.ndarray:
    """Gray value of every texel: black and white tones, wash, fine texture, darker peduncle and edges."""
    Y = YG
    bv = rng.uniform(0.05, 0.16)
    wv = rng.uniform(0.78, 0.95)
    val = bv + (wv - bv) * white
    if rng.random() < 0.4:  # greyish wash over part of the white
        wash = sigmoid((smooth_noise(rng, (CH, CW), (6, 9)) - rng.uniform(0.0, 1.0)) / 0.25)
        val = val * (1 - 0.45 * wash * white) + 0.45 * wash * white * rng.uniform(0.35, 0.55)
    val += 0.035 * smooth_noise(rng, (CH, CW), (52, 60)) + 0.02 * smooth_noise(rng, (CH, CW), (130, 150))
    # peduncle: darker grey
    stalk_w = np.clip((-chord + 0.02 - Y) / 0.12, 0, 1) * rng.uniform(0.5, 1.0)
    val = val * (1 - stalk_w) + stalk_w * (bv + rng.uniform(0.03, 0.15))
    # rounded edges look a bit darker
    soft = np.asarray(alpha_img.filter(ImageFilter.GaussianBlur(5)), dtype=np.float32) / 255.0
    val *= 0.82 + 0.18 * np.sqrt(np.clip((soft - 0.5) * 2.5, 0, 1))
    return val


# a worker renders all photos of one individual in a row: a few identities kept is enough
_IDENTITY_CACHE: dict[tuple[int, int, Look | None], Identity] = {}


def identity(seed: int, ind: int, look: Look | None = None) -> Identity:
    """``make_identity(seed, ind, look)``, cached."""
    key = (seed, ind, look)
    if key not in _IDENTITY_CACHE:
        if len(_IDENTITY_CACHE) > 8:
            _IDENTITY_CACHE.clear()
        _IDENTITY_CACHE[key] = make_identity(seed, ind, look)
    return _IDENTITY_CACHE[key]


def clear_identity_cache() -> None:
    """Free the cached identities (their textures are large)."""
    _IDENTITY_CACHE.clear()
