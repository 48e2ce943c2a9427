"""Synthetic humpback-fluke photos in the exact layout of the Kaggle "Humpback Whale Identification" data.

Every individual whale has a persistent identity (fluke outline with notch, nicks and scallops; a
black/white underside pattern with blotches, spots and rake-mark scars) and every photo of it is a new
view: pose, scale, placement, lighting, blur, noise, JPEG quality, colour or grayscale, ocean, sky,
foam and dripping water.  The label structure follows the real competition (ids per number of photos,
new_whale share, test composition, duplicates, aliases), scaled by ``scale``.

Written to ``out_dir``::

    train.csv               Image,Id                  (as Kaggle)
    train/*.jpg, test/*.jpg
    sample_submission.csv   Image,Id                  (new_whale + the four most frequent ids)
    solution.csv            Image,Id                  true label of every test image (new_whale if unseen)
    boxes.csv               Image,x0,y0,x1,y1         true fluke box of every image (pixels, x1/y1 exclusive)
    duplicates.csv          Image,group               images of true duplicate groups (size >= 2)
    aliases.csv             Id,alias_of               ids that are the same whale as another id
    annotations/boxes.csv   Image,x0,y0,x1,y1         hand-annotation stand-in for ~15% of train images
    individuals.csv         Image,individual          hidden true individual of every image
    images.csv              Image,split,width,height,mode,gray,quality,source
    summary.json            the dict returned by generate()

Deterministic per seed whatever the number of workers: every random draw comes from a
``numpy.random.SeedSequence(seed, spawn_key=...)`` keyed by plan / individual / image index.
"""

from __future__ import annotations

import io
import json
import math
import multiprocessing as mp
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageChops, ImageDraw, ImageFilter

__all__ = ["generate", "contact_sheet", "KAGGLE_IMAGES_PER_ID"]

# ----------------------------------------------------------------------------------------------
# Reference figures of the real data (see /work/shared/data/README.md)
# ----------------------------------------------------------------------------------------------

#: (k, number of known ids with exactly k train images) in the real Kaggle data.
# fmt: off
KAGGLE_IMAGES_PER_ID: tuple[tuple[int, int], ...] = (
    (1, 2073), (2, 1285), (3, 568), (4, 273), (5, 172), (6, 136), (7, 87), (8, 75), (9, 62),
    (10, 46), (11, 39), (12, 26), (13, 14), (14, 16), (15, 19), (16, 16), (17, 17), (18, 6),
    (19, 8), (20, 7), (21, 7), (22, 5), (23, 4), (24, 7), (25, 2), (27, 1), (29, 2), (30, 3),
    (31, 3), (32, 1), (33, 1), (34, 2), (35, 1), (36, 1), (37, 3), (40, 3), (45, 2), (47, 1),
    (48, 1), (49, 1), (50, 1), (51, 1), (54, 1), (57, 1), (61, 1), (62, 1), (65, 1), (73, 1),
)
# fmt: on
REAL_TRAIN = 25_360
REAL_TEST = 7_960
REAL_KNOWN_IDS = 5_004
REAL_NEW_WHALE = 9_664
REAL_KNOWN_IMAGES = REAL_TRAIN - REAL_NEW_WHALE  # 15,696

TEST_NEW_SHARE = 0.33  # share of test images showing whales never seen in train
TRAIN_DUP_SHARE = 0.02  # share of train images that are duplicates of another train image
CROSS_DUP_SHARE = 0.017  # share of test images that are duplicates of a train image
ALIAS_SHARE = 0.018  # share of known ids that are a second id of an already known whale
ANNOTATED_SHARE = 0.15  # share of train images with a hand-annotated box

from core.constants import NEW_WHALE  # noqa: E402

# ----------------------------------------------------------------------------------------------
# Seeds
# ----------------------------------------------------------------------------------------------

_PLAN, _IDENT, _PHOTO = 0, 1, 2


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=tuple(int(k) for k in key)))


# ----------------------------------------------------------------------------------------------
# Plan: who is in which photo
# ----------------------------------------------------------------------------------------------


def _unique_hex(rng: np.random.Generator, n: int, digits: int, taken: set[str]) -> list[str]:
    out: list[str] = []
    hi = 16**digits
    while len(out) < n:
        for v in rng.integers(0, hi, size=max(16, 2 * (n - len(out))), dtype=np.int64):
            s = f"{int(v):0{digits}x}"
            if s not in taken:
                taken.add(s)
                out.append(s)
                if len(out) == n:
                    break
    return out


def _sample_k_values(n_ids: int, rng: np.random.Generator) -> np.ndarray:
    """Systematic sample of ``n_ids`` per-id photo counts from the real distribution.

    The real ids are sorted by k and every ``5004 / n_ids``-th one is taken (random offset), so the
    shape of the distribution -- including its long tail -- is kept at any scale, and scale 1.0
    reproduces the real table exactly.
    """
    ks = np.repeat([k for k, _ in KAGGLE_IMAGES_PER_ID], [c for _, c in KAGGLE_IMAGES_PER_ID])
    step = len(ks) / n_ids
    idx = np.floor(rng.uniform(0.0, step) + step * np.arange(n_ids)).astype(np.int64)
    return ks[np.clip(idx, 0, len(ks) - 1)].copy()


def _build_plan(scale: float, seed: int) -> dict:
    """Decide every image: split, label, hidden individual, duplicate source.  Pure function of (scale, seed)."""
    if not scale > 0:
        raise ValueError("scale must be > 0")
    rng = _rng(seed, _PLAN)

    n_ids = max(6, int(round(REAL_KNOWN_IDS * scale)))
    ks = _sample_k_values(n_ids, rng)
    # tiny samples: the one draw from the long tail can dominate the total; keep the number of known
    # photos within 10% of scale * 15,696 by trimming the largest ids (never triggers at scale 1.0)
    target = REAL_KNOWN_IMAGES * n_ids / REAL_KNOWN_IDS
    while ks.sum() > 1.1 * target and ks.max() > 2:
        ks[int(np.argmax(ks))] -= 1
    rng.shuffle(ks)
    need = min(4, n_ids) - int((ks >= 2).sum())  # a few ids with >= 2 photos, whatever the scale
    for i in np.flatnonzero(ks == 1)[: max(0, need)]:
        ks[i] = 2

    taken_ids: set[str] = set()
    ids = ["w_" + h for h in _unique_hex(rng, n_ids, 7, taken_ids)]

    # aliases: a second id for an already known whale (same hidden individual)
    n_alias = max(1, int(round(ALIAS_SHARE * n_ids)))
    pick = rng.permutation(n_ids)[: 2 * n_alias]
    alias_pairs: list[tuple[int, int]] = []  # (alias id index, canonical id index)
    for a, b in zip(pick[0::2], pick[1::2]):
        alias, canon = (a, b) if ks[a] <= ks[b] else (b, a)
        alias_pairs.append((int(alias), int(canon)))

    id_ind = np.full(n_ids, -1, dtype=np.int64)
    n_ind = 0
    alias_of = {a: c for a, c in alias_pairs}
    for i in range(n_ids):
        if i not in alias_of:
            id_ind[i] = n_ind
            n_ind += 1
    for a, c in alias_pairs:
        id_ind[a] = id_ind[c]
    canon_label = {int(id_ind[i]): ids[i] for i in range(n_ids) if i not in alias_of}

    # images: dicts with split, label, ind, src (index of the duplicated image or -1)
    imgs: list[dict] = []
    photos_of_id: list[list[int]] = []
    for i in range(n_ids):
        lst = []
        for _ in range(int(ks[i])):
            lst.append(len(imgs))
            imgs.append({"split": "train", "label": ids[i], "ind": int(id_ind[i]), "src": -1})
        photos_of_id.append(lst)
    n_known_imgs = len(imgs)
    n_nw = int(round(n_known_imgs * REAL_NEW_WHALE / REAL_KNOWN_IMAGES))
    for _ in range(n_nw):
        imgs.append({"split": "train", "label": NEW_WHALE, "ind": n_ind, "src": -1})
        n_ind += 1
    n_train = len(imgs)

    is_source = np.zeros(n_train, dtype=bool)

    def make_dup(dup: int, src: int) -> None:
        imgs[dup]["src"] = src
        is_source[src] = True

    # duplicates inside train: first the alias ones (how aliases are found), then same-id ones
    n_dup_target = max(2, int(round(TRAIN_DUP_SHARE * n_train)))
    n_dup = 0
    for j, (a, c) in enumerate(alias_pairs):
        if j % 2 == 0:
            make_dup(photos_of_id[a][-1], photos_of_id[c][0])
            n_dup += 1
    multi = [i for i in range(n_ids) if ks[i] >= 2]
    tries = 0
    while n_dup < n_dup_target and multi and tries < 50 * n_dup_target:
        tries += 1
        w = np.array([ks[i] - 1 for i in multi], dtype=float)
        i = multi[int(rng.choice(len(multi), p=w / w.sum()))]
        originals = [p for p in photos_of_id[i] if imgs[p]["src"] < 0]
        free = [p for p in originals if not is_source[p]]
        if len(originals) < 2 or not free:
            continue
        dup = free[int(rng.integers(len(free)))]
        cands = [p for p in originals if p != dup]
        fresh = [p for p in cands if not is_source[p]]
        pool = cands if (rng.random() < 0.15 or not fresh) else fresh
        make_dup(dup, pool[int(rng.integers(len(pool)))])
        n_dup += 1

    # test set
    n_test = max(8, int(round(n_train * REAL_TEST / REAL_TRAIN)))
    n_cross = max(2, int(round(CROSS_DUP_SHARE * n_test)))
    n_new = int(round(TEST_NEW_SHARE * n_test))
    n_known_test = n_test - n_new - n_cross
    ind_count = np.bincount(id_ind, weights=ks, minlength=n_ind)[: max(id_ind) + 1]
    known_inds = np.arange(len(ind_count))
    w = ind_count**0.8
    for ind in rng.choice(known_inds, size=n_known_test, p=w / w.sum()):
        imgs.append({"split": "test", "label": canon_label[int(ind)], "ind": int(ind), "src": -1})
    train_known_orig = [p for p in range(n_known_imgs) if imgs[p]["src"] < 0]
    for src in rng.choice(train_known_orig, size=min(n_cross, len(train_known_orig)), replace=False):
        src = int(src)
        imgs.append({"split": "test", "label": imgs[src]["label"], "ind": imgs[src]["ind"], "src": src})
        is_source[src] = True
    left = n_new
    while left > 0:
        k = 2 if (left >= 2 and rng.random() < 0.15) else 1
        for _ in range(k):
            imgs.append({"split": "test", "label": NEW_WHALE, "ind": n_ind, "src": -1})
        n_ind += 1
        left -= k

    taken_names: set[str] = set()
    for im, h in zip(imgs, _unique_hex(rng, len(imgs), 8, taken_names)):
        im["name"] = h + ".jpg"

    n_ann = min(n_train, max(5, int(round(ANNOTATED_SHARE * n_train))))
    annotated = sorted(int(i) for i in rng.choice(n_train, size=n_ann, replace=False))

    return {
        "images": imgs,
        "ids": ids,
        "aliases": [(ids[a], ids[c]) for a, c in alias_pairs],
        "annotated": annotated,
        "n_individuals": n_ind,
        "n_train": n_train,
    }


# ----------------------------------------------------------------------------------------------
# Identity: canonical fluke (outline + underside pattern)
# ----------------------------------------------------------------------------------------------

CW, CH = 600, 520  # canonical texture size
S = 280.0  # half span in canonical pixels
X0, Y0 = CW / 2.0, 165.0  # canonical origin: centre of the notch, y points up

_ROWS = np.arange(CH, dtype=np.float32)
_COLS = np.arange(CW, dtype=np.float32)
_YG = ((Y0 - _ROWS) / S)[:, None] * np.ones((1, CW), np.float32)  # fluke coords of every texel
_XG = ((_COLS - X0) / S)[None, :] * np.ones((CH, 1), np.float32)


def _noise(rng: np.random.Generator, shape: tuple[int, int], grid: tuple[int, int]) -> np.ndarray:
    """Smooth Gaussian-ish noise: a random ``grid`` upsampled bicubically to ``shape``, unit std."""
    g = rng.standard_normal(grid).astype(np.float32)
    a = np.asarray(Image.fromarray(g, mode="F").resize((shape[1], shape[0]), Image.BICUBIC))
    s = float(a.std())
    return (a - float(a.mean())) / (s if s > 1e-6 else 1.0)


def _sig(x: np.ndarray) -> np.ndarray:
    return 0.5 + 0.5 * np.tanh(0.5 * x)


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


def _make_identity(seed: int, ind: int) -> dict:
    """Canonical fluke of one whale: gray pattern value (everywhere) and alpha (silhouette)."""
    rng = _rng(seed, _IDENT, ind)
    poly, geo = _outline(rng)
    big = Image.new("L", (CW * 2, CH * 2), 0)
    ImageDraw.Draw(big).polygon([(2 * x, 2 * y) for x, y in poly], fill=255)
    alpha_img = big.resize((CW, CH), Image.BOX)
    alpha = np.asarray(alpha_img, dtype=np.float32) / 255.0
    inside = alpha > 0.5
    X, Y = _XG, _YG
    chord = geo["chord"]

    def norm(a: np.ndarray) -> np.ndarray:
        v = a[inside]
        return (a - v.mean()) / (v.std() + 1e-6)

    # ---- large-scale black/white field
    n1 = _noise(rng, (CH, CW), (int(rng.integers(4, 7)), int(rng.integers(6, 10))))
    n1s = norm(0.5 * (n1 + n1[:, ::-1]))
    n2 = norm(_noise(rng, (CH, CW), (int(rng.integers(8, 13)), int(rng.integers(12, 20)))))
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
        + rng.uniform(0.1, 0.35) * _noise(rng, (CH, CW), (26, 36))
    )
    r = rng.random()
    if r < 0.2:
        white_frac = rng.uniform(0.72, 0.93)
    elif r < 0.4:
        white_frac = rng.uniform(0.07, 0.22)
    else:
        white_frac = rng.uniform(0.22, 0.72)
    thr = float(np.quantile(field[inside], 1 - white_frac))
    white = _sig((field - thr) / rng.uniform(0.03, 0.08))

    # ---- trailing-edge black margin
    if rng.random() < 0.6:
        top = np.argmax(inside, axis=0).astype(np.float32)
        dist = (_ROWS[:, None] - top[None, :]) / S
        marg = rng.uniform(0.015, 0.07)
        white *= 1 - _sig((marg - dist) / 0.006)

    # ---- spots, rings, rake marks (drawn at 2x, then filtered down)
    dark_spots = Image.new("L", (CW, CH), 0)
    light_marks = Image.new("L", (CW, CH), 0)
    flip = Image.new("L", (CW, CH), 0)
    dd, dl, df = ImageDraw.Draw(dark_spots), ImageDraw.Draw(light_marks), ImageDraw.Draw(flip)
    ys_in, xs_in = np.nonzero(inside)

    def rand_in() -> tuple[float, float]:
        j = int(rng.integers(len(xs_in)))
        return float(xs_in[j]), float(ys_in[j])

    n_dark = int(rng.poisson(rng.choice([0.0, 6.0, 16.0], p=[0.35, 0.35, 0.3])))
    for _ in range(n_dark):
        cx, cy = rand_in()
        rr = S * rng.uniform(0.012, 0.045)
        asp = rng.uniform(0.6, 1.4)
        dd.ellipse([cx - rr * asp, cy - rr / asp, cx + rr * asp, cy + rr / asp], fill=255)
    n_light = int(rng.poisson(rng.choice([0.0, 4.0, 10.0], p=[0.45, 0.35, 0.2])))
    for _ in range(n_light):
        cx, cy = rand_in()
        rr = S * rng.uniform(0.010, 0.03)
        if rng.random() < 0.5:
            dl.ellipse([cx - rr, cy - rr, cx + rr, cy + rr], fill=255)
        else:
            dl.ellipse([cx - rr, cy - rr, cx + rr, cy + rr], outline=255, width=max(2, int(rr * 0.35)))
    n_rake = int(rng.choice([0, 1, 2, 3], p=[0.35, 0.35, 0.2, 0.1]))
    for _ in range(n_rake):
        cx, cy = rand_in()
        ang = rng.uniform(0, np.pi)
        ln = S * rng.uniform(0.15, 0.45)
        gap = S * rng.uniform(0.025, 0.05)
        wd = max(2, int(S * rng.uniform(0.008, 0.016)))
        bend = rng.uniform(-0.15, 0.15)
        dx, dy = math.cos(ang), math.sin(ang)
        for j in range(int(rng.integers(2, 5))):
            off = (j - 1.5) * gap * rng.uniform(0.8, 1.2)
            ox, oy = -dy * off, dx * off
            t0, t1 = -0.5 + rng.uniform(0, 0.2), 0.5 - rng.uniform(0, 0.2)
            seg = []
            for t in np.linspace(t0, t1, 10):
                b = bend * ln * (t * t - 0.25) + rng.normal(0, 0.004 * S)
                seg.append((cx + ox + dx * ln * t - dy * b, cy + oy + dy * ln * t + dx * b))
            df.line(seg, fill=int(rng.uniform(150, 255)), width=max(1, wd + int(rng.integers(-1, 2))))
    dark = np.asarray(dark_spots.filter(ImageFilter.GaussianBlur(1.0)), dtype=np.float32) / 255.0
    light = np.asarray(light_marks.filter(ImageFilter.GaussianBlur(1.0)), dtype=np.float32) / 255.0
    fl = np.asarray(flip.filter(ImageFilter.GaussianBlur(0.8)), dtype=np.float32) / 255.0
    white = white * (1 - dark) + (1 - white) * light * 0.9 + white * dark * 0.0
    white = white * (1 - fl) + (1 - white) * fl * 0.85

    # ---- tones
    bv = rng.uniform(0.05, 0.16)
    wv = rng.uniform(0.78, 0.95)
    val = bv + (wv - bv) * white
    if rng.random() < 0.4:  # greyish wash over part of the white
        wash = _sig((_noise(rng, (CH, CW), (6, 9)) - rng.uniform(0.0, 1.0)) / 0.25)
        val = val * (1 - 0.45 * wash * white) + 0.45 * wash * white * rng.uniform(0.35, 0.55)
    val += 0.035 * _noise(rng, (CH, CW), (52, 60)) + 0.02 * _noise(rng, (CH, CW), (130, 150))
    # peduncle: darker grey
    stalk_w = np.clip((-chord + 0.02 - Y) / 0.12, 0, 1) * rng.uniform(0.5, 1.0)
    val = val * (1 - stalk_w) + stalk_w * (bv + rng.uniform(0.03, 0.15))
    # rounded edges look a bit darker
    soft = np.asarray(alpha_img.filter(ImageFilter.GaussianBlur(5)), dtype=np.float32) / 255.0
    val *= 0.82 + 0.18 * np.sqrt(np.clip((soft - 0.5) * 2.5, 0, 1))
    return {
        "val": np.clip(val, 0, 1).astype(np.float32),
        "alpha": alpha,
        "chord": chord,
        "stalk": geo["stalk"],
    }


_IDENT_CACHE: dict[tuple[int, int], dict] = {}


def _identity(seed: int, ind: int) -> dict:
    key = (seed, ind)
    if key not in _IDENT_CACHE:
        if len(_IDENT_CACHE) > 8:
            _IDENT_CACHE.clear()
        _IDENT_CACHE[key] = _make_identity(seed, ind)
    return _IDENT_CACHE[key]


# ----------------------------------------------------------------------------------------------
# One photo
# ----------------------------------------------------------------------------------------------


def _homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """3x3 H with dst ~ H @ src for 4 point pairs."""
    A, b = [], []
    for (x, y), (u, v) in zip(src, dst):
        A.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        A.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        b += [u, v]
    h = np.linalg.solve(np.asarray(A, float), np.asarray(b, float))
    return np.append(h, 1.0).reshape(3, 3)


def _apply_h(H: np.ndarray, x: float, y: float) -> tuple[float, float]:
    p = H @ np.array([x, y, 1.0])
    return p[0] / p[2], p[1] / p[2]


def _ocean(rng: np.random.Generator, W: int, H: int) -> np.ndarray:
    """Float RGB ocean (and sometimes sky) background, HxWx3 in [0, 1]."""
    palettes = [
        (0.05, 0.16, 0.27),
        (0.10, 0.22, 0.30),
        (0.18, 0.27, 0.33),
        (0.06, 0.20, 0.22),
        (0.24, 0.30, 0.34),
        (0.05, 0.11, 0.17),
        (0.12, 0.26, 0.36),
        (0.14, 0.20, 0.24),
    ]
    base = np.array(palettes[int(rng.integers(len(palettes)))]) * rng.uniform(0.75, 1.4)
    base = np.clip(base + rng.normal(0, 0.02, 3), 0.02, 1)
    t = np.linspace(0, 1, H, dtype=np.float32)
    rows = np.clip((t * (1.6 - 0.6 * t)) * (H - 1), 0, H - 1).astype(
        np.int64
    )  # perspective: far waves smaller

    def wave(grid):
        return _noise(rng, (H, W), grid)[rows]

    swell = wave((max(3, H // 80), max(3, W // 170)))
    a1 = wave((max(4, H // 7), max(4, W // 45)))  # wave facets, stretched horizontally
    a2 = wave((max(6, H // 3), max(6, W // 18)))
    r1 = np.clip(1 - np.abs(a1), 0, 1) ** 3  # crests: ridged noise
    r2 = np.clip(1 - np.abs(a2), 0, 1) ** 4
    amp = rng.uniform(0.6, 1.4)
    lum = 1.0 + amp * (0.10 * swell + 0.18 * np.tanh(a1 * 1.5) + 0.25 * (r1 - 0.25) + 0.12 * (r2 - 0.2))
    lum *= (1.0 + rng.uniform(0.1, 0.5) * (1 - t))[:, None]  # brighter towards the horizon
    img = base[None, None, :] * lum[:, :, None]
    if rng.random() < 0.2:  # sun glitter on the crests
        g = np.clip((np.tanh(a1 * 1.5) + r2 - rng.uniform(1.5, 1.8)) * 2.5, 0, 1)
        img += g[:, :, None] * rng.uniform(0.3, 0.7)
    if rng.random() < 0.3:  # sky band and horizon
        yh = rng.uniform(0.05, 0.3) * H
        tilt = math.tan(math.radians(rng.normal(0, 1.5)))
        yy = np.arange(H, dtype=np.float32)[:, None]
        xx = np.arange(W, dtype=np.float32)[None, :]
        hor = yh + (xx - W / 2) * tilt
        sky_a = _sig((hor - yy) / 1.2)
        sky_col = np.array(
            rng.choice([(0.78, 0.82, 0.86), (0.62, 0.72, 0.84), (0.85, 0.85, 0.83), (0.55, 0.6, 0.66)])
        )
        sky_col = sky_col * rng.uniform(0.85, 1.1)
        grad = 1 - 0.25 * np.clip((hor - yy) / max(yh, 1), 0, 1)
        sky = sky_col[None, None, :] * grad[:, :, None]
        if rng.random() < 0.45:  # distant land
            prof = np.cumsum(rng.normal(0, 1, W // 8 + 2))
            prof = (prof - prof.min()) / (np.ptp(prof) + 1e-6)
            land_h = np.interp(np.arange(W), np.linspace(0, W, len(prof)), prof) * rng.uniform(0.01, 0.06) * H
            land = _sig((yy - (hor - land_h[None, :])) / 1.0) * sky_a
            sky = sky * (1 - land[:, :, None]) + land[:, :, None] * (
                np.array([0.22, 0.25, 0.27]) * rng.uniform(0.6, 1.4)
            )
        img = img * (1 - sky_a[:, :, None]) + sky * sky_a[:, :, None]
    return img.astype(np.float32)


def _render_photo(
    seed: int, ind: int, img_index: int
) -> tuple[Image.Image, tuple[int, int, int, int], int, bool]:
    """Render one photo of individual ``ind``.  Returns (image, box, jpeg quality, grayscale)."""
    ident = _identity(seed, ind)
    rng = _rng(seed, _PHOTO, img_index)
    W = int(rng.integers(600, 1051))
    H = int(round(W * rng.uniform(0.6, 0.75)))

    # ---- fluke appearance in canonical space
    val = ident["val"]
    alpha = ident["alpha"].copy()
    chord, stalk = ident["chord"], ident["stalk"]
    r = rng.random()
    if r < 0.08:  # partly submerged: water cuts the lobes
        y_w = -chord + rng.uniform(0.0, 0.15)
    else:
        y_w = -chord - stalk * rng.uniform(0.1, 1.0)
    fade = np.clip((_YG[:, 0] - y_w) / rng.uniform(0.02, 0.08), 0, 1)
    alpha *= fade[:, None]

    gain = rng.uniform(0.7, 1.2)
    phi = rng.uniform(0, 2 * np.pi)
    shade = 1 + rng.uniform(0, 0.35) * (_XG * math.cos(phi) + _YG * math.sin(phi))
    v = val * shade * gain
    v = np.clip(v, 0, 1.2) ** rng.uniform(0.8, 1.25)
    c = rng.uniform(0.75, 1.05)
    v = 0.45 + c * (v - 0.45)
    if rng.random() < 0.06:  # backlit: dark and flat
        v = 0.08 + 0.3 * v
    if rng.random() < 0.35:  # wet highlights
        hl = np.clip((_noise(rng, (CH, CW), (10, 16)) - rng.uniform(1.0, 1.8)) / 0.5, 0, 1)
        v = v + hl * rng.uniform(0.15, 0.4)
    if rng.random() < 0.25:  # water sheeting down the face
        st = np.clip(_noise(rng, (CH, CW), (4, 50)) - 1.0, 0, 1)
        v = v + st * rng.uniform(0.1, 0.25)
    tint = np.array([1.0, 1.0, 1.0]) + np.array([-1.0, 0.0, 1.0]) * rng.normal(0.03, 0.03)
    rgb = np.clip(v[:, :, None] * tint[None, None, :], 0, 1)
    tex = np.dstack([rgb * 255.0, alpha[:, :, None] * 255.0]).round().astype(np.uint8)
    tex_img = Image.fromarray(tex, mode="RGBA")

    ys, xs = np.nonzero(alpha > 0.5)
    bx0, bx1, by0, by1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    ccx, ccy = (bx0 + bx1) / 2.0, (by0 + by1) / 2.0
    hw, hh = (bx1 - bx0) / 2.0, (by1 - by0) / 2.0

    # ---- pose and placement
    wf = 0.10 + 0.70 * rng.beta(2.6, 1.3)
    rot = math.radians(float(np.clip(rng.normal(0, 7), -15, 15)))
    fx, fy = rng.uniform(0.72, 1.0), rng.uniform(0.85, 1.08)
    tilt, yaw = rng.uniform(-0.14, 0.14), rng.uniform(-0.12, 0.12)
    corners = [(-1, -1), (1, -1), (1, 1), (-1, 1)]

    def quad(s):
        out = []
        for u, vv in corners:
            x = u * hw * s * fx * (1 + tilt * vv)
            y = vv * hh * s * fy * (1 + yaw * u)
            out.append((x * math.cos(rot) - y * math.sin(rot), x * math.sin(rot) + y * math.cos(rot)))
        return np.array(out)

    s = wf * W / (2 * hw * fx)
    q = quad(s)
    qw, qh = np.ptp(q[:, 0]), np.ptp(q[:, 1])
    lim = min(0.98 * W / qw, 0.92 * H / qh, 1.0)
    if lim < 1.0:
        s *= lim
        q = quad(s)
        qw, qh = np.ptp(q[:, 0]), np.ptp(q[:, 1])
    over = rng.uniform(0.0, 0.15) if rng.random() < 0.12 else 0.0
    lo_x, hi_x = -q[:, 0].min() - over * qw, W - q[:, 0].max() + over * qw
    lo_y, hi_y = -q[:, 1].min() - over * qh, H - q[:, 1].max() + over * qh
    cx = lo_x + (hi_x - lo_x) * rng.beta(1.6, 1.6) if hi_x > lo_x else W / 2
    cy = lo_y + (hi_y - lo_y) * rng.beta(1.6, 1.6) if hi_y > lo_y else H / 2
    dst = q + np.array([cx, cy])

    # pre-shrink the texture so the perspective warp does not alias
    f = 1.0
    if s < 0.7:
        f = max(s * 1.4, 0.08)
        tex_img = tex_img.resize(
            (max(8, round(CW * f)), max(8, round(CH * f))), Image.BILINEAR, reducing_gap=2.0
        )
    fxr, fyr = tex_img.size[0] / CW, tex_img.size[1] / CH
    src = np.array([(ccx + u * hw, ccy + vv * hh) for u, vv in corners])
    src_s = src * np.array([fxr, fyr])
    Hinv = _homography(dst, src_s)
    Hfwd = _homography(src, dst)  # canonical (full res) -> image
    # warp only into the region the fluke can cover
    reg = np.array([_apply_h(Hfwd, x, y) for x in (bx0 - 4, bx1 + 4) for y in (by0 - 4, by1 + 4)])
    rx0, ry0 = max(0, int(math.floor(reg[:, 0].min()))), max(0, int(math.floor(reg[:, 1].min())))
    rx1, ry1 = min(W, int(math.ceil(reg[:, 0].max())) + 1), min(H, int(math.ceil(reg[:, 1].max())) + 1)
    if rx1 - rx0 < 2 or ry1 - ry0 < 2:
        rx0, ry0, rx1, ry1 = 0, 0, W, H
    Hr = Hinv @ np.array([[1.0, 0.0, rx0], [0.0, 1.0, ry0], [0.0, 0.0, 1.0]])
    coeffs = tuple((Hr / Hr[2, 2]).ravel()[:8])
    fluke = tex_img.transform(
        (rx1 - rx0, ry1 - ry0), Image.PERSPECTIVE, coeffs, resample=Image.BICUBIC, fillcolor=(0, 0, 0, 0)
    )

    # ---- compose
    bg = _ocean(rng, max(16, W // 2), max(16, H // 2))
    bg_img = Image.fromarray((np.clip(bg, 0, 1) * 255).round().astype(np.uint8), mode="RGB")
    bg_img = bg_img.resize((W, H), Image.BILINEAR).convert("RGBA")
    bg_img.alpha_composite(fluke, dest=(rx0, ry0))
    fa = np.zeros((H, W), np.uint8)
    fa[ry0:ry1, rx0:rx1] = np.asarray(fluke.getchannel("A"))

    overlay = Image.new("RGBA", (W, H), (255, 255, 255, 0))
    od = ImageDraw.Draw(overlay)
    scale_px = 2 * hw * s  # fluke width in pixels
    if y_w < -chord - 0.02 and rng.random() < 0.5:  # foam / splash where the peduncle meets the water
        wx, wy = _apply_h(Hfwd, X0, Y0 - y_w * S)
        fw = max(6, int(scale_px * rng.uniform(0.12, 0.35)))
        fh = max(4, int(fw * rng.uniform(0.12, 0.25)))
        pw, ph = 2 * fw, 4 * fh
        yy, xx = np.mgrid[0:ph, 0:pw].astype(np.float32)
        env = 1 - ((xx - pw / 2) / fw) ** 2 - ((yy - ph * 0.6) / fh) ** 2
        nz = _noise(rng, (ph, pw), (max(3, ph // 10), max(3, pw // 10)))
        nz2 = _noise(rng, (ph, pw), (max(3, ph // 4), max(3, pw // 4)))
        fa_patch = np.clip(env * 1.5 + 0.5 * nz + 0.3 * nz2 - 0.2, 0, 1) * rng.uniform(0.5, 0.9)
        col = np.clip(0.78 + 0.08 * nz + 0.06 * nz2, 0, 1)[:, :, None] * np.array([0.96, 0.98, 1.0]) * 255
        patch = Image.fromarray(np.dstack([col, fa_patch[:, :, None] * 255]).astype(np.uint8), mode="RGBA")
        patch = patch.filter(ImageFilter.GaussianBlur(max(0.8, fw / 60)))
        overlay.paste(patch, (int(wx - pw / 2), int(wy - ph * 0.6)), patch)
        for _ in range(int(rng.integers(5, 35))):  # spray
            sx = wx + rng.normal(0, fw * 0.45)
            sy = wy - abs(rng.normal(0, fh * 1.2))
            rr = rng.uniform(0.5, 1.8) * max(1.0, scale_px / 400)
            a = int(rng.uniform(90, 200))
            od.ellipse([sx - rr, sy - rr, sx + rr, sy + rr], fill=(240, 244, 248, a))
    if rng.random() < 0.45 and y_w < -chord:  # water dripping off the lobes and streaming down
        m = fa > 127
        colsany = np.flatnonzero(m.any(axis=0))
        if len(colsany) > 4:
            bottom = H - 1 - np.argmax(m[::-1, :], axis=0)
            top = np.argmax(m, axis=0)
            fl_h = float(bottom[colsany].max() - top[colsany].min())
            heavy = rng.random() < 0.3
            for _ in range(int(rng.integers(3, 25 if heavy else 10))):
                x = float(colsany[int(rng.integers(len(colsany)))])
                from_top = rng.random() < 0.2
                y = float(top[int(x)] if from_top else bottom[int(x)])
                ln = rng.uniform(0.05, 0.6 if heavy else 0.3) * fl_h
                wd = max(1, int(round(rng.uniform(0.3, 1.2) * scale_px / 300)))
                a = int(rng.uniform(40, 110) if from_top else rng.uniform(70, 180))
                seg = [(x, y)]
                for t in np.linspace(0, 1, 8)[1:]:
                    seg.append((x + rng.normal(0, 0.5) + t * t * rng.normal(0, 2), y + ln * t))
                od.line(seg, fill=(225, 232, 240, a), width=wd)
                for _ in range(int(rng.integers(0, 4))):
                    ty = y + ln * rng.uniform(1.0, 1.5)
                    rr = rng.uniform(0.5, 1.5) * max(1.0, scale_px / 400)
                    od.ellipse([x - rr, ty - rr, x + rr, ty + rr], fill=(235, 240, 246, a))
    oa = np.zeros((H, W), np.uint8)
    obox = overlay.getchannel("A").getbbox()
    if obox is not None:
        obox = (max(0, obox[0] - 3), max(0, obox[1] - 3), min(W, obox[2] + 3), min(H, obox[3] + 3))
        ov = overlay.crop(obox).filter(ImageFilter.GaussianBlur(0.6))
        oa[obox[1] : obox[3], obox[0] : obox[2]] = np.asarray(ov.getchannel("A"))
        bg_img.alpha_composite(ov, dest=obox[:2])

    vis = (fa > 127) & (oa < 200)
    if not vis.any():
        vis = fa > 127
    if not vis.any():  # degenerate (should not happen); fall back to the projected quad
        x0, y0 = max(0, int(dst[:, 0].min())), max(0, int(dst[:, 1].min()))
        box = (x0, y0, min(W, max(x0 + 1, int(dst[:, 0].max()))), min(H, max(y0 + 1, int(dst[:, 1].max()))))
    else:
        rr_, cc_ = np.flatnonzero(vis.any(axis=1)), np.flatnonzero(vis.any(axis=0))
        box = (int(cc_[0]), int(rr_[0]), int(cc_[-1]) + 1, int(rr_[-1]) + 1)

    # ---- camera
    im = bg_img.convert("RGB")
    if rng.random() < 0.65:
        im = im.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.6) * W / 1000))
    x = np.arange(256, dtype=np.float64) / 255.0
    wb = 1 + np.array([-1.0, 0.0, 1.0]) * rng.normal(0.01, 0.03) + rng.normal(0, 0.012, 3)  # white balance
    gain = rng.uniform(0.8, 1.2)
    hz = rng.uniform(0.08, 0.3) if rng.random() < 0.2 else 0.0  # haze
    hz_level = rng.uniform(0.5, 0.8)
    gamma = rng.uniform(0.8, 1.25)
    lut = []
    for ch in range(3):
        v = np.clip(x * wb[ch] * gain * (1 - hz) + hz * hz_level, 0, 1) ** gamma
        lut.extend(np.round(v * 255).astype(int).tolist())
    im = im.point(lut)
    if rng.random() < 0.3:  # vignette
        yy = (np.arange(H, dtype=np.float32)[:, None] / H - 0.5) * 2
        xx = (np.arange(W, dtype=np.float32)[None, :] / W - 0.5) * 2
        vig = 1 - rng.uniform(0.1, 0.35) * (xx * xx + yy * yy) / 2
        im = ImageChops.multiply(im, Image.fromarray((vig * 255).astype(np.uint8), mode="L").convert("RGB"))
    sigma = rng.uniform(0.004, 0.03) * 255
    noise = (rng.standard_normal((H, W), dtype=np.float32) * np.float32(sigma)).round().astype(np.int16)
    a = np.asarray(im, dtype=np.int16) + noise[:, :, None]
    out = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), mode="RGB")
    gray = bool(rng.random() < 0.5)
    if gray:  # half of the grayscale photos are single-channel files, half RGB with equal channels
        out = out.convert("L")
        if rng.random() < 0.5:
            out = out.convert("RGB")
    quality = int(rng.integers(60, 96))
    return out, box, quality, gray


def _encode(im: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _make_duplicate(seed: int, img_index: int, src_bytes: bytes, src_box, src_quality: int, src_gray: bool):
    """An exact or near duplicate of a JPEG: same bytes, re-encoded, resized or slightly cropped."""
    rng = _rng(seed, _PHOTO, img_index)
    kind = str(rng.choice(["exact", "requality", "resize", "crop"], p=[0.2, 0.25, 0.25, 0.3]))
    src = Image.open(io.BytesIO(src_bytes))
    src.load()
    W, H = src.size
    if kind == "exact":
        return src_bytes, tuple(src_box), src.size, src.mode, src_quality, kind, src_gray
    x0, y0, x1, y1 = (float(v) for v in src_box)
    im = src
    if kind == "crop":
        cl, cr, ct, cb = (int(round(rng.uniform(0.0, 0.04) * d)) for d in (W, W, H, H))
        cl, ct = min(cl, int(x1) - 1), min(ct, int(y1) - 1)  # never cut the whole fluke away
        cr, cb = min(cr, W - int(x0) - 1), min(cb, H - int(y0) - 1)
        cl, ct, cr, cb = max(cl, 0), max(ct, 0), max(cr, 0), max(cb, 0)
        im = im.crop((cl, ct, W - cr, H - cb))
        x0, x1 = max(0.0, x0 - cl), min(float(W - cr - cl), x1 - cl)
        y0, y1 = max(0.0, y0 - ct), min(float(H - cb - ct), y1 - ct)
    if kind == "resize" or (kind == "crop" and rng.random() < 0.5):
        f = rng.uniform(0.55, 0.92) if kind == "resize" else rng.uniform(0.75, 1.0)
        w0, h0 = im.size
        nw, nh = max(32, int(round(w0 * f))), max(32, int(round(h0 * f)))
        im = im.resize((nw, nh), Image.LANCZOS)
        sx, sy = nw / w0, nh / h0
        x0, x1, y0, y1 = x0 * sx, x1 * sx, y0 * sy, y1 * sy
    gray = src_gray
    if im.mode == "RGB" and rng.random() < 0.15:
        im = im.convert("L")
        gray = True
    q = int(rng.integers(60, 96))
    if kind == "requality" and abs(q - src_quality) < 5:
        q = src_quality - 10 if src_quality >= 70 else src_quality + 10
    w1, h1 = im.size
    bx = (
        int(min(max(math.floor(x0), 0), w1 - 1)),
        int(min(max(math.floor(y0), 0), h1 - 1)),
        0,
        0,
    )
    bx = (
        bx[0],
        bx[1],
        int(min(max(math.ceil(x1), bx[0] + 1), w1)),
        int(min(max(math.ceil(y1), bx[1] + 1), h1)),
    )
    return _encode(im, q), bx, im.size, im.mode, q, kind, gray


def _render_task(task: tuple) -> list[tuple]:
    """Render every image of one individual (originals first, then their duplicates)."""
    seed, ind, items, out_dir = task
    done: dict[int, tuple] = {}
    recs = []
    for idx, name, split, src in sorted(items, key=lambda it: it[3] >= 0):
        if src < 0:
            im, box, q, gray = _render_photo(seed, ind, idx)
            data, size, mode, kind = _encode(im, q), im.size, im.mode, "photo"
        else:
            sb, sbox, sq, sg = done[src]
            data, box, size, mode, q, kind, gray = _make_duplicate(seed, idx, sb, sbox, sq, sg)
        done[idx] = (data, box, q, gray)
        with open(os.path.join(out_dir, split, name), "wb") as fh:
            fh.write(data)
        recs.append((idx, name, split, box, size[0], size[1], mode, q, kind, gray))
    return recs


# ----------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------


def generate(
    out_dir: str | Path,
    scale: float = 0.05,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
) -> dict:
    """Generate a synthetic Kaggle-layout humpback data set with ground truth in ``out_dir``.

    ``scale=1.0`` reproduces the real counts (25,360 train / 7,960 test / 5,004 known ids);
    ``scale=0.05`` gives about 1,300 train images.  Output is identical for a given ``seed``
    whatever ``workers`` is.  Returns a summary dict (also written to ``summary.json``).
    """
    t0 = time.time()
    out = Path(out_dir)
    for sub in ("train", "test"):
        d = out / sub
        if d.exists() and any(d.iterdir()):
            if not (out / "summary.json").exists():
                raise FileExistsError(
                    f"{d} is not empty and {out} is not a synth data set; refusing to overwrite"
                )
    if (out / "summary.json").exists():
        for sub in ("train", "test", "annotations"):
            shutil.rmtree(out / sub, ignore_errors=True)
    for sub in ("train", "test", "annotations"):
        (out / sub).mkdir(parents=True, exist_ok=True)

    plan = _build_plan(scale, seed)
    imgs = plan["images"]
    by_ind: dict[int, list] = {}
    for i, im in enumerate(imgs):
        by_ind.setdefault(im["ind"], []).append((i, im["name"], im["split"], im["src"]))
    tasks = [(int(seed), ind, items, str(out)) for ind, items in by_ind.items()]
    tasks.sort(key=lambda t: (-len(t[2]), t[1]))  # big individuals first: better load balance

    workers = (os.cpu_count() or 1) if workers is None else max(1, int(workers))
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(imgs), desc="synth", unit="img")
    recs: list[tuple] = []
    try:
        if workers == 1:
            for t in tasks:
                r = _render_task(t)
                recs.extend(r)
                if bar is not None:
                    bar.update(len(r))
        else:
            ctx = mp.get_context("spawn")
            with ctx.Pool(workers) as pool:
                for r in pool.imap_unordered(_render_task, tasks, chunksize=1):
                    recs.extend(r)
                    if bar is not None:
                        bar.update(len(r))
    finally:
        if bar is not None:
            bar.close()
    _IDENT_CACHE.clear()
    recs.sort(key=lambda r: r[0])

    # ---- CSVs
    names = [im["name"] for im in imgs]
    train_idx = [i for i, im in enumerate(imgs) if im["split"] == "train"]
    test_idx = [i for i, im in enumerate(imgs) if im["split"] == "test"]
    train = pd.DataFrame(
        {"Image": [names[i] for i in train_idx], "Id": [imgs[i]["label"] for i in train_idx]}
    )
    train = train.sort_values("Image").reset_index(drop=True)
    train.to_csv(out / "train.csv", index=False)
    sol = pd.DataFrame({"Image": [names[i] for i in test_idx], "Id": [imgs[i]["label"] for i in test_idx]})
    sol = sol.sort_values("Image").reset_index(drop=True)
    sol.to_csv(out / "solution.csv", index=False)
    top = train.loc[train.Id != NEW_WHALE, "Id"].value_counts()
    top = sorted(top.index, key=lambda k: (-int(top[k]), k))[:4]
    sub_label = " ".join([NEW_WHALE, *top])
    pd.DataFrame({"Image": sol.Image, "Id": sub_label}).to_csv(out / "sample_submission.csv", index=False)

    boxes = (
        pd.DataFrame([(r[1], *r[3]) for r in recs], columns=["Image", "x0", "y0", "x1", "y1"])
        .sort_values("Image")
        .reset_index(drop=True)
    )
    boxes.to_csv(out / "boxes.csv", index=False)
    ann_names = {names[i] for i in plan["annotated"]}
    boxes[boxes.Image.isin(ann_names)].to_csv(out / "annotations" / "boxes.csv", index=False)
    pd.DataFrame(
        [(r[1], r[2], r[4], r[5], r[6], int(r[9]), r[7], r[8]) for r in recs],
        columns=["Image", "split", "width", "height", "mode", "gray", "quality", "source"],
    ).sort_values("Image").to_csv(out / "images.csv", index=False)
    pd.DataFrame({"Image": names, "individual": [f"ind_{im['ind']:05d}" for im in imgs]}).sort_values(
        "Image"
    ).to_csv(out / "individuals.csv", index=False)

    # duplicate groups: connected components of (image, source)
    root = {}
    for i, im in enumerate(imgs):
        if im["src"] >= 0:
            root[i] = im["src"]
    groups: dict[int, list[int]] = {}
    for i, s in root.items():
        groups.setdefault(s, [s]).append(i)
    dup_rows = []
    for g, (_s, members) in enumerate(sorted(groups.items(), key=lambda kv: names[kv[0]])):
        for m in sorted(members, key=lambda j: names[j]):
            dup_rows.append((names[m], g))
    pd.DataFrame(dup_rows, columns=["Image", "group"]).to_csv(out / "duplicates.csv", index=False)
    pd.DataFrame(plan["aliases"], columns=["Id", "alias_of"]).sort_values("Id").to_csv(
        out / "aliases.csv", index=False
    )

    n_train, n_test = len(train_idx), len(test_idx)
    nw_train = int((train.Id == NEW_WHALE).sum())
    kc = train.loc[train.Id != NEW_WHALE, "Id"].value_counts()
    n_cross = sum(1 for i in test_idx if imgs[i]["src"] >= 0)
    summary = {
        "out_dir": str(out),
        "scale": float(scale),
        "seed": int(seed),
        "workers": int(workers),
        "train_images": n_train,
        "test_images": n_test,
        "known_ids": int(len(kc)),
        "individuals": int(plan["n_individuals"]),
        "new_whale_train": nw_train,
        "new_whale_share": round(nw_train / n_train, 4),
        "test_new_whale": int((sol.Id == NEW_WHALE).sum()),
        "test_new_whale_share": round(float((sol.Id == NEW_WHALE).mean()), 4),
        "ids_with_2plus": int((kc >= 2).sum()),
        "max_images_per_id": int(kc.max()),
        "duplicate_groups": len(groups),
        "duplicate_images": len(dup_rows),
        "train_duplicates": sum(1 for i in train_idx if imgs[i]["src"] >= 0),
        "cross_duplicates": n_cross,
        "aliases": len(plan["aliases"]),
        "annotated": len(ann_names),
        "grayscale_share": round(float(np.mean([r[9] for r in recs])), 4),
        "single_channel_share": round(float(np.mean([r[6] == "L" for r in recs])), 4),
        "seconds": round(time.time() - t0, 1),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def contact_sheet(data_dir: str | Path, out_png: str | Path, n_individuals: int = 6, seed: int = 0) -> Path:
    """PNG contact sheet: ``n_individuals`` whales, two different photos each (full photo + fluke crop).

    Needs ``train.csv``, ``individuals.csv``, ``boxes.csv`` and ``duplicates.csv`` of a synth data set.
    """
    data = Path(data_dir)
    out_png = Path(out_png)
    train = pd.read_csv(data / "train.csv")
    inds = pd.read_csv(data / "individuals.csv")
    boxes = pd.read_csv(data / "boxes.csv").set_index("Image")
    dups = pd.read_csv(data / "duplicates.csv")
    dup_names = set(dups.Image)
    df = train.merge(inds, on="Image")
    df = df[(df.Id != NEW_WHALE) & ~df.Image.isin(dup_names)]
    counts = df.groupby("individual").Image.count()
    cands = sorted(counts[counts >= 2].index)
    rng = np.random.default_rng(seed)
    chosen = [
        cands[i] for i in sorted(rng.choice(len(cands), size=min(n_individuals, len(cands)), replace=False))
    ]

    tw, th = 220, 150  # full-photo thumbnail
    cw, ch = 200, 100  # fluke crop
    pad, lab = 6, 14
    row_h = th + lab + pad
    Wsheet = 2 * (tw + pad) + 2 * (cw + pad) + pad
    sheet = Image.new("RGB", (Wsheet, pad + row_h * len(chosen)), (245, 245, 245))
    dr = ImageDraw.Draw(sheet)
    for r, ind in enumerate(chosen):
        sub = df[df.individual == ind].sort_values("Image")
        pair = sub.Image.tolist()
        pick = rng.choice(len(pair), size=2, replace=False)
        y = pad + r * row_h
        label = str(sub.Id.iloc[0])
        for j, p in enumerate(sorted(int(i) for i in pick)):
            name = pair[p]
            im = Image.open(data / "train" / name).convert("RGB")
            b = boxes.loc[name]
            box = (int(b.x0), int(b.y0), int(b.x1), int(b.y1))
            thumb = im.copy()
            ImageDraw.Draw(thumb).rectangle(box, outline=(255, 60, 60), width=max(2, im.size[0] // 250))
            thumb.thumbnail((tw, th))
            x = pad + j * (tw + pad)
            sheet.paste(thumb, (x, y + lab))
            dr.text((x, y), f"{label}  {name}", fill=(0, 0, 0))
            crop = im.crop(box).convert("L").resize((cw, ch), Image.BILINEAR)
            xc = pad + 2 * (tw + pad) + j * (cw + pad)
            sheet.paste(crop.convert("RGB"), (xc, y + lab))
            if j == 0:
                dr.text((xc, y), f"fluke crops of {ind}", fill=(0, 0, 0))
    out_png.parent.mkdir(parents=True, exist_ok=True)
    q = sheet.quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    q.save(out_png, optimize=True)
    if out_png.stat().st_size > 400_000:
        q = sheet.resize((sheet.size[0] * 3 // 4, sheet.size[1] * 3 // 4), Image.LANCZOS).quantize(colors=128)
        q.save(out_png, optimize=True)
    return out_png
