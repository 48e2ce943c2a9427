"""Duplicates (synth/duplicates.py, grouped in duplicates.csv): groups of one whale that look alike, inside
train and across train and test, and far closer to each other than unrelated photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image


def _csv(root: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(root / name)


def _thumb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("L").resize((48, 32), Image.BILINEAR), dtype=np.float32)


def test_duplicate_groups_are_duplicates(data):
    dups = _csv(data, "duplicates.csv")
    meta = _csv(data, "images.csv").set_index("Image")
    ind = _csv(data, "individuals.csv").set_index("Image").individual
    train = _csv(data, "train.csv")
    sizes = dups.group.value_counts()
    assert (sizes >= 2).all() and len(sizes) >= 3
    n_train_dup = sum(
        meta.loc[n, "source"] != "photo" and meta.loc[n, "split"] == "train" for n in dups.Image
    )
    n_test_dup = sum(meta.loc[n, "source"] != "photo" and meta.loc[n, "split"] == "test" for n in dups.Image)
    assert n_train_dup >= 2 and n_test_dup >= 2
    assert n_train_dup / len(train) <= 0.06
    splits = dups.assign(split=meta.loc[dups.Image, "split"].to_numpy()).groupby("group").split.nunique()
    assert (splits == 2).any()  # some train photos reappear in test

    within = []
    for _, members in dups.groupby("group"):
        names = list(members.Image)
        assert ind[names].nunique() == 1
        thumbs = [_thumb(data / meta.loc[n, "split"] / n) for n in names]
        for t in thumbs[1:]:
            within.append(np.abs(t - thumbs[0]).mean())
    # unrelated photos are far apart at the same size
    rng = np.random.default_rng(0)
    others = list(meta.index.difference(dups.Image))
    pairs = rng.choice(len(others), size=(20, 2), replace=False)
    between = [
        np.abs(
            _thumb(data / meta.loc[others[i], "split"] / others[i])
            - _thumb(data / meta.loc[others[j], "split"] / others[j])
        ).mean()
        for i, j in pairs
    ]
    assert max(within) < 12.0
    assert max(within) < np.median(between)
