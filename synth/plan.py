"""The plan of a data set: how many photos, which whale is in which photo, which photo duplicates which.

The counts follow the real competition data (ids per number of photos, new_whale share, test composition,
duplicates, aliases), scaled by ``scale``; the plan is a pure function of (scale, seed) and draws from the
one ``PLAN`` stream.
"""

from __future__ import annotations

from typing import TypedDict

import numpy as np

from core.constants import NEW_WHALE
from synth.draws import PLAN, stream

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


class Plan(TypedDict):
    """What ``build_plan`` decides.

    ``images``: one dict per image, train first then test, with ``split`` ("train"/"test"), ``label``
    (a ``w_...`` id or new_whale), ``ind`` (hidden individual), ``src`` (index of the image it duplicates,
    -1 for an original photo) and ``name`` (file name).  ``aliases``: (alias id, id it is an alias of);
    ``annotated``: indices of the train images with a hand-annotated box.
    """

    images: list[dict]
    ids: list[str]
    aliases: list[tuple[str, str]]
    annotated: list[int]
    n_individuals: int
    n_train: int


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


def build_plan(scale: float, seed: int) -> Plan:
    """Decide every image: split, label, hidden individual, duplicate source.  Pure function of (scale, seed)."""
    if not scale > 0:
        raise ValueError("scale must be > 0")
    rng = stream(seed, PLAN)

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
