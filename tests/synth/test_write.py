"""The tables of a data set (synth/write.py): Kaggle's layout and columns, a summary that matches the files,
annotations that are a sample of the true train boxes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from core.constants import NEW_WHALE

NAME_RE = re.compile(r"^[0-9a-f]{8}\.jpg$")
ID_RE = re.compile(r"^w_[0-9a-f]{7}$")


def _csv(root: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(root / name)


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
    assert all(i == NEW_WHALE or ID_RE.match(i) for i in train.Id)

    known = set(train.Id) - {NEW_WHALE}
    for labels in sub.Id:
        parts = labels.split()
        assert len(parts) == 5 and parts[0] == NEW_WHALE
        assert set(parts[1:]) <= known and len(set(parts)) == 5


def test_summary_matches_files(data):
    s = json.loads((data / "summary.json").read_text())
    train, sol = _csv(data, "train.csv"), _csv(data, "solution.csv")
    assert s["train_images"] == len(train)
    assert s["test_images"] == len(sol)
    assert s["new_whale_train"] == int((train.Id == NEW_WHALE).sum())
    assert s["known_ids"] == train.Id[train.Id != NEW_WHALE].nunique()
    assert s["duplicate_images"] == len(_csv(data, "duplicates.csv"))
    assert s["aliases"] == len(_csv(data, "aliases.csv"))
    assert s["annotated"] == len(_csv(data, "annotations/boxes.csv"))
    assert s["individuals"] == _csv(data, "individuals.csv").individual.nunique()


def test_annotations_are_a_sample_of_train(data):
    train = _csv(data, "train.csv")
    ann = _csv(data, "annotations/boxes.csv")
    boxes = _csv(data, "boxes.csv").set_index("Image")
    assert set(ann.Image) <= set(train.Image)
    assert 0.10 <= len(ann) / len(train) <= 0.20
    for _, r in ann.iterrows():
        assert tuple(boxes.loc[r.Image]) == (r.x0, r.y0, r.x1, r.y1)
