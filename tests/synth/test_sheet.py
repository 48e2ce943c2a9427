"""The contact sheet (synth/sheet.py): a small PNG of a few whales of a generated data set."""

from __future__ import annotations

from PIL import Image

from synth import contact_sheet


def test_contact_sheet(data, tmp_path):
    out = contact_sheet(data, tmp_path / "sheet.png", n_individuals=4, seed=0)
    assert out.exists() and out.stat().st_size < 400_000
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size[0] > 400 and im.size[1] > 300
