"""Harder data (synth/variants.py): look-alikes share their twin's outline and most of its layout and marks,
washed-out flukes are nearly all white or all black, hard photos are small / blurred / backlit / dorsal and
are listed with their kind; every option off gives exactly the standard data set, and bad values are refused
naming the option.  Identities and photos are checked one by one; two very small sets (scale 0.0005, about 45
photos each) are generated, one standard and one with every option on.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import ImageFilter

from core.constants import NEW_WHALE
from pipelines.cli import main as cli_main
from synth import generate
from synth.individuals import YG, identity_marks, make_identity
from synth.render import render_photo
from synth.variants import HARD_KINDS, PRESETS, Look, Variants, dorsal_view, resolve

SEED = 11
SCALE = 0.0005


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "summary.json"
    }


def _summary(root: Path) -> dict:
    s = json.loads((root / "summary.json").read_text())
    return {k: v for k, v in s.items() if k not in {"out_dir", "seconds"}}


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    """std: the standard set; zero: every option passed as 0; hard: every option on (same seed)."""
    base = tmp_path_factory.mktemp("variants")
    generate(base / "std", scale=SCALE, seed=5, workers=1, progress=False)
    generate(
        base / "zero",
        scale=SCALE,
        seed=5,
        workers=1,
        progress=False,
        variant="standard",
        lookalikes=0.0,
        washout=0.0,
        hard_photos=0.0,
    )
    generate(
        base / "hard",
        scale=SCALE,
        seed=5,
        workers=2,
        progress=False,
        lookalikes=0.5,
        washout=0.3,
        hard_photos=0.5,
    )
    return base


# ---- options


def test_presets_and_explicit_overrides():
    assert resolve() == Variants()
    assert not resolve().active and resolve("harsh").active
    h = resolve("harsh")
    assert (h.lookalikes, h.washout, h.hard_photos) == (0.1, 0.15, 0.3)
    lk = resolve("lookalike", washout=0.0)
    assert (lk.lookalikes, lk.washout, lk.hard_photos) == (0.3, 0.0, 0.0) and lk.name == "lookalike"
    assert set(PRESETS) == {"standard", "lookalike", "harsh"}


@pytest.mark.parametrize(
    ("option", "value"), [("lookalikes", -0.1), ("washout", 1.5), ("hard_photos", math.nan), ("washout", "x")]
)
def test_bad_values_are_refused_naming_the_option(tmp_path, option, value):
    with pytest.raises(ValueError, match=rf"{option} must be a share between 0 and 1"):
        generate(tmp_path / "out", scale=SCALE, seed=0, workers=1, progress=False, **{option: value})
    assert not (tmp_path / "out").exists()  # refused before anything is written
    with pytest.raises(ValueError, match="variant must be one of"):
        generate(tmp_path / "out", scale=SCALE, seed=0, workers=1, progress=False, variant="hardest")


@pytest.mark.parametrize(
    ("flag", "value"), [("--lookalikes", "1.01"), ("--washout", "-1"), ("--hard-photos", "a")]
)
def test_cli_refuses_bad_values_naming_the_flag(tmp_path, capsys, flag, value):
    with pytest.raises(SystemExit) as exit_:
        cli_main(["synth", str(tmp_path / "out"), flag, value])
    assert exit_.value.code == 2
    assert f"argument {flag}: must be a share between 0 and 1" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# ---- identities


def _dark_share(ident) -> float:
    lobes = (ident["alpha"] > 0.5) & (YG > -ident["chord"] + 0.02)
    return float((ident["val"][lobes] < 0.45).mean())


@pytest.mark.parametrize(("ind", "twin"), [(20, 3), (21, 4), (22, 5)])
def test_lookalike_shares_outline_layout_and_most_marks(ind, twin):
    a, b = make_identity(SEED, twin), make_identity(SEED, ind, Look(twin))
    own = make_identity(SEED, ind)
    assert np.array_equal(a["alpha"], b["alpha"])  # the same trailing edge and silhouette
    assert (a["chord"], a["stalk"]) == (b["chord"], b["stalk"])
    inside = a["alpha"] > 0.5
    agree = float(((a["val"] > 0.45) == (b["val"] > 0.45))[inside].mean())
    unrelated = float(((a["val"] > 0.45) == (own["val"] > 0.45))[inside].mean())
    assert agree >= 0.88 and agree > unrelated + 0.15
    assert not np.array_equal(a["val"], b["val"])
    ma, mb = identity_marks(SEED, twin), identity_marks(SEED, ind, Look(twin))
    shared = sum(m in ma for m in mb)
    assert len(mb) == max(len(ma), 1)  # re-drawn marks replace the removed ones, kind for kind
    assert len(mb) - shared >= 1  # at least one mark differs ...
    assert shared >= len(ma) - math.ceil(0.3 * len(ma))  # ... but only a minority


def test_washed_out_flukes_are_nearly_all_white_or_all_black():
    normal = [_dark_share(make_identity(SEED, i)) for i in range(6)]
    assert 0.1 < float(np.median(normal)) < 0.9
    for i in range(6):
        assert _dark_share(make_identity(SEED, i, Look(-1, "white"))) < 0.15
        assert _dark_share(make_identity(SEED, i, Look(-1, "black"))) > 0.9
        assert len(identity_marks(SEED, i, Look(-1, "white"))) <= len(identity_marks(SEED, i))
        # the outline is still the whale's own
        assert np.array_equal(
            make_identity(SEED, i, Look(-1, "white"))["alpha"], make_identity(SEED, i)["alpha"]
        )


# ---- hard photos


def _sharpness(im, box) -> float:
    a = np.asarray(im.convert("L").crop(box).filter(ImageFilter.GaussianBlur(1.0)), dtype=np.float32)
    return float(np.percentile(np.hypot(np.diff(a, axis=0)[:, :-1], np.diff(a, axis=1)[:-1, :]), 99))


@pytest.mark.parametrize("idx", [0, 1, 3])
def test_hard_photos_are_what_they_claim(idx):
    ind, img = idx + 2, 500 + idx
    normal, nbox, _, _ = render_photo(SEED, ind, img)
    small, sbox, _, _ = render_photo(SEED, ind, img, None, "small")
    assert (sbox[2] - sbox[0]) / small.size[0] < 0.22  # a standard photo's fluke: median ~0.6 of the width
    assert 0 <= sbox[0] < sbox[2] <= small.size[0] and 0 <= sbox[1] < sbox[3] <= small.size[1]
    # blurred: the same photo (same box), with far weaker edges
    blurred, bbox, _, _ = render_photo(SEED, ind, img, None, "blurred")
    assert bbox == nbox and _sharpness(blurred, bbox) < 0.75 * _sharpness(normal, nbox)
    # backlit: a dark fluke against a bright frame
    lit, lbox, _, _ = render_photo(SEED, ind, img, None, "backlit")
    a = np.asarray(lit.convert("L"), dtype=np.float32)
    out = np.ones(a.shape, bool)
    out[lbox[1] : lbox[3], lbox[0] : lbox[2]] = False
    assert np.median(a[out]) > 140 and np.percentile(a[~out], 25) < np.median(a[out]) - 40
    dorsal, dbox, _, _ = render_photo(SEED, ind, img, None, "dorsal")
    assert abs((dbox[2] - dbox[0]) - (nbox[2] - nbox[0])) <= 0.1 * (nbox[2] - nbox[0])


def test_dorsal_view_is_the_mirrored_outline_with_a_faint_pattern():
    ident = make_identity(SEED, 3)
    d = dorsal_view(ident, np.random.default_rng(0))
    assert np.array_equal(d["alpha"], ident["alpha"][:, ::-1])
    inside = d["alpha"] > 0.5
    assert d["val"][inside].mean() < 0.25
    assert d["val"][inside].std() < 0.3 * ident["val"][inside].std()


# ---- generated sets


def test_all_options_at_zero_give_the_standard_set(sets):
    assert _digests(sets / "std") == _digests(sets / "zero")
    assert _summary(sets / "std") == _summary(sets / "zero")
    assert not (sets / "std" / "photo_conditions.csv").exists()
    assert not {"lookalikes", "washout", "hard_photos", "variant"} & set(_summary(sets / "std"))


def test_variant_tables_and_summary(sets):
    hard, std = sets / "hard", sets / "std"
    summary = _summary(hard)
    assert (summary["lookalikes"], summary["washout"], summary["hard_photos"]) == (0.5, 0.3, 0.5)
    cond = pd.read_csv(hard / "photo_conditions.csv")
    meta = pd.read_csv(hard / "images.csv").set_index("Image")
    assert list(cond.columns) == ["Image", "condition"] and set(cond.Image) == set(meta.index)
    assert set(cond.condition) <= {"normal", *HARD_KINDS} and len(set(cond.condition) - {"normal"}) == 4
    c = cond.set_index("Image").condition
    originals = meta.index[meta.source == "photo"]
    assert abs((c[originals] != "normal").mean() - 0.5) < 0.05
    assert summary["hard_photo_images"] == int((c != "normal").sum())
    dups = pd.read_csv(hard / "duplicates.csv")
    for _, group in dups.groupby("group"):  # a duplicate is as hard as its source
        assert c[group.Image].nunique() == 1
    boxes = pd.read_csv(hard / "boxes.csv").set_index("Image")
    small = [n for n in c.index[c == "small"] if n in originals]
    assert small and all((boxes.x1 - boxes.x0)[n] / meta.width[n] < 0.22 for n in small)

    var = pd.read_csv(hard / "individual_variants.csv").fillna("")
    assert list(var.columns) == ["individual", "lookalike_of", "washout"]
    inds = pd.read_csv(hard / "individuals.csv").merge(pd.read_csv(hard / "train.csv"), on="Image")
    known = set(inds.individual[inds.Id != NEW_WHALE])
    looks = var[var.lookalike_of != ""]
    assert len(looks) == summary["lookalike_individuals"] == round(0.5 * len(known))
    assert set(looks.individual) <= known and set(looks.lookalike_of) <= known
    assert not set(looks.individual) & set(looks.lookalike_of)
    assert summary["washout_individuals"] == int((var.washout != "").sum()) >= 1
    assert set(var.washout) <= {"", "white", "black"}

    # the photos no option touched are byte-identical to the standard set's
    all_inds = pd.read_csv(hard / "individuals.csv").set_index("Image").individual
    untouched = [n for n in c.index if c[n] == "normal" and all_inds[n] not in set(var.individual)]
    assert untouched
    for n in untouched:
        split = meta.split[n]
        assert (hard / split / n).read_bytes() == (std / split / n).read_bytes(), n
    touched = [n for n in c.index if c[n] != "normal" and meta.source[n] == "photo"]
    assert all(
        (hard / meta.split[n] / n).read_bytes() != (std / meta.split[n] / n).read_bytes() for n in touched
    )
