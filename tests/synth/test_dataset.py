"""Generating a data set (synth/dataset.py): the same seed gives byte-identical files whatever the number of
workers, another seed replaces an earlier set, foreign data is never written over, and even a tiny scale has
every structure.  Three very small sets (scale 0.0005, about 45 photos each) are generated and compared byte
for byte.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from core.constants import NEW_WHALE
from synth import generate

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


def _csv(root: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(root / name)


def _files(root: Path) -> dict[str, bytes]:
    return {
        f"{split}/{p.name}": p.read_bytes()
        for split in ("train", "test")
        for p in sorted((root / split).iterdir())
    }


@pytest.fixture(scope="module")
def det_runs(tmp_path_factory):
    """a, b: same seed with 2 and 1 workers; c: another seed written over a copy of a."""
    base = tmp_path_factory.mktemp("det")
    a = generate(base / "a", scale=DET_SCALE, seed=5, workers=2, progress=False)
    b = generate(base / "b", scale=DET_SCALE, seed=5, workers=1, progress=False)
    shutil.copytree(base / "a", base / "c")
    c = generate(base / "c", scale=DET_SCALE, seed=6, workers=2, progress=False)
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
    assert set(ta.Id) - {NEW_WHALE} != set(tc.Id) - {NEW_WHALE}
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
        generate(tmp_path, scale=0.0005, seed=0, workers=1, progress=False)
