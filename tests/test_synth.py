"""Tests of the synthetic Kaggle-layout generator (pipelines/synth.py).

Structure tests read the session's `tiny_dataset` (conftest: scale 0.006); determinism generates three
very small sets (scale 0.0005, about 45 photos each) and compares them byte for byte.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pipelines import synth

NAME_RE = re.compile(r"^[0-9a-f]{8}\.jpg$")
ID_RE = re.compile(r"^w_[0-9a-f]{7}$")
CSVS = [
    "train.csv",
    "solution.csv",
    "sample_submission.csv",
    "boxes.csv",
    "duplicates.csv",
    "aliases.csv",
    "individuals.csv",
    "images.csv",
    "annotations/boxes.csv",
]
DET_SCALE = 0.0005


@pytest.fixture(scope="module")
def data(tiny_dataset) -> Path:
    return Path(tiny_dataset)


def _csv(root: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(root / name)


def _files(root: Path) -> dict[str, bytes]:
    return {
        f"{split}/{p.name}": p.read_bytes()
        for split in ("train", "test")
        for p in sorted((root / split).iterdir())
    }


# ---------------------------------------------------------------------------------------- layout


def test_layout_and_columns(data):
    expected_columns = {
        "train.csv": ["Image", "Id"],
        "solution.csv": ["Image", "Id"],
        "sample_submission.csv": ["Image", "Id"],
        "boxes.csv": ["Image", "x0", "y0", "x1", "y1"],
        "annotations/boxes.csv": ["Image", "x0", "y0", "x1", "y1"],
        "duplicates.csv": ["Image", "group"],
        "aliases.csv": ["Id", "alias_of"],
        "individuals.csv": ["Image", "individual"],
    }
    for name, cols in expected_columns.items():
        assert list(_csv(data, name).columns) == cols, name

    train, sol, sub = _csv(data, "train.csv"), _csv(data, "solution.csv"), _csv(data, "sample_submission.csv")
    train_files = sorted(p.name for p in (data / "train").iterdir())
    test_files = sorted(p.name for p in (data / "test").iterdir())
    assert sorted(train.Image) == train_files
    assert sorted(sol.Image) == test_files == sorted(sub.Image)
    assert not set(train_files) & set(test_files)
    assert all(NAME_RE.match(n) for n in train_files + test_files)
    assert train.Image.is_unique and sol.Image.is_unique
    assert all(i == synth.NEW_WHALE or ID_RE.match(i) for i in train.Id)

    known = set(train.Id) - {synth.NEW_WHALE}
    for labels in sub.Id:
        parts = labels.split()
        assert len(parts) == 5 and parts[0] == synth.NEW_WHALE
        assert set(parts[1:]) <= known and len(set(parts)) == 5


def test_images_decode_with_recorded_size_and_mode(data):
    meta = _csv(data, "images.csv").set_index("Image")
    assert len(meta) == len(_csv(data, "boxes.csv"))
    for name, row in meta.iterrows():
        with Image.open(data / row.split / name) as im:
            assert im.format == "JPEG"
            assert im.size == (row.width, row.height)
            assert im.mode == row["mode"]
    originals = meta[meta.source == "photo"]
    assert originals.width.between(600, 1050).all()
    assert (originals.height / originals.width).between(0.59, 0.76).all()
    assert originals.quality.between(60, 95).all()
    # a real mix of colour, single-channel grayscale and RGB-with-equal-channels grayscale
    assert 0.25 <= meta.gray.mean() <= 0.75
    assert (meta["mode"] == "L").any() and ((meta["mode"] == "RGB") & (meta.gray == 1)).any()
    name = meta[(meta["mode"] == "RGB") & (meta.gray == 1)].index[0]
    a = np.asarray(Image.open(data / meta.loc[name, "split"] / name), dtype=np.int16)
    assert np.abs(a[..., 0] - a[..., 1]).max() <= 6 and np.abs(a[..., 1] - a[..., 2]).max() <= 6
    name = meta[meta.gray == 0].index[0]
    a = np.asarray(Image.open(data / meta.loc[name, "split"] / name), dtype=np.int16)
    assert np.abs(a[..., 0] - a[..., 2]).mean() > 5  # colour photos are not gray


def test_summary_matches_files(data):
    s = json.loads((data / "summary.json").read_text())
    train, sol = _csv(data, "train.csv"), _csv(data, "solution.csv")
    assert s["train_images"] == len(train)
    assert s["test_images"] == len(sol)
    assert s["new_whale_train"] == int((train.Id == synth.NEW_WHALE).sum())
    assert s["known_ids"] == train.Id[train.Id != synth.NEW_WHALE].nunique()
    assert s["duplicate_images"] == len(_csv(data, "duplicates.csv"))
    assert s["aliases"] == len(_csv(data, "aliases.csv"))
    assert s["annotated"] == len(_csv(data, "annotations/boxes.csv"))
    assert s["individuals"] == _csv(data, "individuals.csv").individual.nunique()


# ---------------------------------------------------------------------------------------- labels


def test_label_distribution_shape(data):
    train = _csv(data, "train.csv")
    share = (train.Id == synth.NEW_WHALE).mean()
    assert 0.33 <= share <= 0.43
    k = train.Id[train.Id != synth.NEW_WHALE].value_counts()
    per_k = k.value_counts()
    assert per_k.idxmax() == 1  # singletons are the most common
    assert (k >= 2).sum() >= 4
    assert k.max() <= 73
    sol = _csv(data, "solution.csv")
    assert 0.25 <= len(sol) / len(train) <= 0.4
    assert 0.25 <= (sol.Id == synth.NEW_WHALE).mean() <= 0.40


def test_plan_follows_real_distribution():
    # scale 1.0 reproduces the real table exactly
    plan = synth._build_plan(1.0, seed=3)
    imgs = plan["images"]
    train = [im for im in imgs if im["split"] == "train"]
    test = [im for im in imgs if im["split"] == "test"]
    assert len(train) == synth.REAL_TRAIN and len(test) == synth.REAL_TEST
    assert sum(im["label"] == synth.NEW_WHALE for im in train) == synth.REAL_NEW_WHALE
    per_id = Counter(im["label"] for im in train if im["label"] != synth.NEW_WHALE)
    assert len(per_id) == synth.REAL_KNOWN_IDS
    assert sorted(Counter(per_id.values()).items()) == list(synth.KAGGLE_IMAGES_PER_ID)
    assert 80 <= len(plan["aliases"]) <= 100
    assert 120 <= sum(im["src"] >= 0 for im in test) <= 150
    # scale 0.05: ~1,300 train images, same shape
    for seed in range(3):
        plan = synth._build_plan(0.05, seed)
        train = [im for im in plan["images"] if im["split"] == "train"]
        assert 1150 <= len(train) <= 1450
        per_id = Counter(im["label"] for im in train if im["label"] != synth.NEW_WHALE)
        assert Counter(per_id.values()).most_common(1)[0][0] == 1
        assert abs(sum(im["label"] == synth.NEW_WHALE for im in train) / len(train) - 0.381) < 0.01


def test_solution_and_individuals(data):
    train, sol = _csv(data, "train.csv"), _csv(data, "solution.csv")
    ind = _csv(data, "individuals.csv").set_index("Image").individual
    assert set(ind.index) == set(train.Image) | set(sol.Image)
    aliases = _csv(data, "aliases.csv")
    canonical = dict(zip(aliases.Id, aliases.alias_of))

    train_ind = train.assign(ind=train.Image.map(ind))
    known = train_ind[train_ind.Id != synth.NEW_WHALE]
    # one individual per id; an individual has two ids only if they are aliases
    assert (known.groupby("Id").ind.nunique() == 1).all()
    ids_per_ind = known.groupby("ind").Id.apply(lambda s: sorted(set(s)))
    for ids in ids_per_ind:
        assert len(ids) == 1 or (
            len(ids) == 2 and (canonical.get(ids[0]) == ids[1] or canonical.get(ids[1]) == ids[0])
        )
    # each train new_whale photo shows a whale seen once in train and never under a known id
    nw = train_ind[train_ind.Id == synth.NEW_WHALE]
    assert nw.ind.is_unique and not set(nw.ind) & set(known.ind)

    test_ind = sol.assign(ind=sol.Image.map(ind))
    seen = set(train_ind.ind)
    new = test_ind[test_ind.Id == synth.NEW_WHALE]
    assert not set(new.ind) & seen  # truly never seen in train
    ind_of_id = known.groupby("Id").ind.first()
    for _, row in test_ind[test_ind.Id != synth.NEW_WHALE].iterrows():
        assert ind_of_id[row.Id] == row.ind
    assert len(new) >= 1 and (test_ind.Id != synth.NEW_WHALE).sum() >= 1


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


# ---------------------------------------------------------------------------------------- boxes


def test_boxes_cover_every_image_and_lie_inside(data):
    boxes = _csv(data, "boxes.csv")
    meta = _csv(data, "images.csv").set_index("Image")
    assert boxes.Image.is_unique and set(boxes.Image) == set(meta.index)
    w, h = meta.loc[boxes.Image, "width"].to_numpy(), meta.loc[boxes.Image, "height"].to_numpy()
    assert (boxes.x0 >= 0).all() and (boxes.y0 >= 0).all()
    assert (boxes.x1 <= w).all() and (boxes.y1 <= h).all()
    assert (boxes.x1 > boxes.x0).all() and (boxes.y1 > boxes.y0).all()
    frac = ((boxes.x1 - boxes.x0) / w).to_numpy()
    assert frac.min() >= 0.05 and frac.max() <= 1.0 and 0.3 <= np.median(frac) <= 0.8


def test_boxes_are_tight_on_the_fluke():
    # the box is where the rendered fluke differs from the background; check it against the renderer
    for idx in range(3):
        im, box, _q, _g = synth._render_photo(11, idx, 1000 + idx)
        a = np.asarray(im.convert("L"), dtype=np.float32)
        x0, y0, x1, y1 = box
        inner = a[y0:y1, x0:x1]
        assert inner.std() > 10  # fluke pattern inside
        assert 0 <= x0 < x1 <= im.size[0] and 0 <= y0 < y1 <= im.size[1]


def test_annotations_are_a_sample_of_train(data):
    train = _csv(data, "train.csv")
    ann = _csv(data, "annotations/boxes.csv")
    boxes = _csv(data, "boxes.csv").set_index("Image")
    assert set(ann.Image) <= set(train.Image)
    assert 0.10 <= len(ann) / len(train) <= 0.20
    for _, r in ann.iterrows():
        assert tuple(boxes.loc[r.Image]) == (r.x0, r.y0, r.x1, r.y1)


# ---------------------------------------------------------------------------------------- duplicates


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


# ---------------------------------------------------------------------------------------- determinism


@pytest.fixture(scope="module")
def det_runs(tmp_path_factory):
    """a, b: same seed with 2 and 1 workers; c: another seed written over a copy of a."""
    import shutil

    base = tmp_path_factory.mktemp("det")
    a = synth.generate(base / "a", scale=DET_SCALE, seed=5, workers=2, progress=False)
    b = synth.generate(base / "b", scale=DET_SCALE, seed=5, workers=1, progress=False)
    shutil.copytree(base / "a", base / "c")
    c = synth.generate(base / "c", scale=DET_SCALE, seed=6, workers=2, progress=False)
    return base, a, b, c


def test_same_seed_is_byte_identical_whatever_the_workers(det_runs):
    base, a, b, _ = det_runs
    for name in CSVS:
        assert (base / "a" / name).read_bytes() == (base / "b" / name).read_bytes(), name
    fa, fb = _files(base / "a"), _files(base / "b")
    assert fa.keys() == fb.keys() and len(fa) == a["train_images"] + a["test_images"]
    assert all(fa[k] == fb[k] for k in fa)
    drop = {"out_dir", "workers", "seconds"}
    assert {k: v for k, v in a.items() if k not in drop} == {k: v for k, v in b.items() if k not in drop}


def test_different_seed_differs_and_replaces_old_images(det_runs):
    base, _, _, c = det_runs
    ta, tc = _csv(base / "a", "train.csv"), _csv(base / "c", "train.csv")
    assert not set(ta.Image) & set(tc.Image)
    assert set(ta.Id) - {synth.NEW_WHALE} != set(tc.Id) - {synth.NEW_WHALE}
    fa, fc = _files(base / "a"), _files(base / "c")
    assert not set(fa.values()) & set(fc.values())
    # c was written over a copy of a: nothing of a is left behind
    assert sorted(p.name for p in (base / "c" / "train").iterdir()) == sorted(tc.Image)
    assert len(fc) == c["train_images"] + c["test_images"]


def test_tiny_scale_still_has_every_structure(det_runs):
    _, a, _, _ = det_runs
    assert a["train_images"] <= 60
    assert a["ids_with_2plus"] >= 4
    assert a["train_duplicates"] >= 2 and a["cross_duplicates"] >= 2
    assert a["aliases"] >= 1 and a["annotated"] >= 5
    assert a["test_new_whale"] >= 1


def test_refuses_to_write_over_foreign_data(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "mine.jpg").write_bytes(b"x")
    with pytest.raises(FileExistsError):
        synth.generate(tmp_path, scale=0.0005, seed=0, workers=1, progress=False)


# ---------------------------------------------------------------------------------------- contact sheet


def test_contact_sheet(data, tmp_path):
    out = synth.contact_sheet(data, tmp_path / "sheet.png", n_individuals=4, seed=0)
    assert out.exists() and out.stat().st_size < 400_000
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size[0] > 400 and im.size[1] > 300
