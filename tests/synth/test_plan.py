"""The label structure (synth/plan.py): counts per id follow the real data; ids, aliases, new whales and the
hidden individuals are consistent in the written tables."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd

from core.constants import NEW_WHALE
from synth import plan


def _csv(root: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(root / name)


def test_label_distribution_shape(data):
    train = _csv(data, "train.csv")
    share = (train.Id == NEW_WHALE).mean()
    assert 0.33 <= share <= 0.43
    k = train.Id[train.Id != NEW_WHALE].value_counts()
    per_k = k.value_counts()
    assert per_k.idxmax() == 1  # singletons are the most common
    assert (k >= 2).sum() >= 4
    assert k.max() <= 73
    sol = _csv(data, "solution.csv")
    assert 0.25 <= len(sol) / len(train) <= 0.4
    assert 0.25 <= (sol.Id == NEW_WHALE).mean() <= 0.40


def test_plan_follows_real_distribution():
    # scale 1.0 reproduces the real table exactly
    built = plan.build_plan(1.0, seed=3)
    imgs = built["images"]
    train = [im for im in imgs if im["split"] == "train"]
    test = [im for im in imgs if im["split"] == "test"]
    assert len(train) == plan.REAL_TRAIN and len(test) == plan.REAL_TEST
    assert sum(im["label"] == NEW_WHALE for im in train) == plan.REAL_NEW_WHALE
    per_id = Counter(im["label"] for im in train if im["label"] != NEW_WHALE)
    assert len(per_id) == plan.REAL_KNOWN_IDS
    assert sorted(Counter(per_id.values()).items()) == list(plan.KAGGLE_IMAGES_PER_ID)
    assert 80 <= len(built["aliases"]) <= 100
    assert 120 <= sum(im["src"] >= 0 for im in test) <= 150
    # scale 0.05: ~1,300 train images, same shape
    for seed in range(3):
        built = plan.build_plan(0.05, seed)
        train = [im for im in built["images"] if im["split"] == "train"]
        assert 1150 <= len(train) <= 1450
        per_id = Counter(im["label"] for im in train if im["label"] != NEW_WHALE)
        assert Counter(per_id.values()).most_common(1)[0][0] == 1
        assert abs(sum(im["label"] == NEW_WHALE for im in train) / len(train) - 0.381) < 0.01


def test_solution_and_individuals(data):
    train, sol = _csv(data, "train.csv"), _csv(data, "solution.csv")
    ind = _csv(data, "individuals.csv").set_index("Image").individual
    assert set(ind.index) == set(train.Image) | set(sol.Image)
    aliases = _csv(data, "aliases.csv")
    canonical = dict(zip(aliases.Id, aliases.alias_of))

    train_ind = train.assign(ind=train.Image.map(ind))
    known = train_ind[train_ind.Id != NEW_WHALE]
    # one individual per id; an individual has two ids only if they are aliases
    assert (known.groupby("Id").ind.nunique() == 1).all()
    ids_per_ind = known.groupby("ind").Id.apply(lambda s: sorted(set(s)))
    for ids in ids_per_ind:
        assert len(ids) == 1 or (
            len(ids) == 2 and (canonical.get(ids[0]) == ids[1] or canonical.get(ids[1]) == ids[0])
        )
    # each train new_whale photo shows a whale seen once in train and never under a known id
    nw = train_ind[train_ind.Id == NEW_WHALE]
    assert nw.ind.is_unique and not set(nw.ind) & set(known.ind)

    test_ind = sol.assign(ind=sol.Image.map(ind))
    seen = set(train_ind.ind)
    new = test_ind[test_ind.Id == NEW_WHALE]
    assert not set(new.ind) & seen  # truly never seen in train
    ind_of_id = known.groupby("Id").ind.first()
    for _, row in test_ind[test_ind.Id != NEW_WHALE].iterrows():
        assert ind_of_id[row.Id] == row.ind
    assert len(new) >= 1 and (test_ind.Id != NEW_WHALE).sum() >= 1


def test_aliases(data):
    train = _csv(data, "train.csv")
    aliases = _csv(data, "aliases.csv")
    ind = _csv(data, "individuals.csv").set_index("Image").individual
    assert len(aliases) >= 1
    ids = set(train.Id)
    for a, c in zip(aliases.Id, aliases.alias_of):
        assert a in ids and c in ids and a != c
        ia = set(ind[train.Image[train.Id == a]])
        ic = set(ind[train.Image[train.Id == c]])
        assert ia == ic and len(ia) == 1  # really the same whale
