"""A contact sheet of a generated data set: a few whales, two photos each, to see what the generator makes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from core.constants import NEW_WHALE


def contact_sheet(
    data_dir: str | Path,
    out_png: str | Path,
    n_individuals: int = 6,
    seed: int = 0,
    individuals: list[str] | None = None,
) -> Path:
    """PNG contact sheet: ``n_individuals`` whales, two different photos each (full photo + fluke crop).

    Needs ``train.csv``, ``individuals.csv``, ``boxes.csv`` and ``duplicates.csv`` of a synth data set.
    ``individuals``: these rows (``ind_...`` names, known whales of train) instead of random ones.  In a
    harder variant (``photo_conditions.csv`` beside them) each caption names the photo's condition and the
    row's variant, and a whale with a hard photo shows one.
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
    if individuals is None:
        chosen = [
            cands[i]
            for i in sorted(rng.choice(len(cands), size=min(n_individuals, len(cands)), replace=False))
        ]
    else:
        chosen = [i for i in individuals if i in set(df.individual)]
    cond, notes = _variant_notes(data)

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
        pick = sorted(int(i) for i in rng.choice(len(pair), size=min(2, len(pair)), replace=False))
        hard = [i for i, n in enumerate(pair) if cond.get(n, "normal") != "normal"]
        if hard and not any(i in hard for i in pick):  # show a hard photo of the whale when it has one
            pick = sorted({int(rng.choice(hard)), *pick[1:]})
        y = pad + r * row_h
        label = str(sub.Id.iloc[0])
        for j, p in enumerate(pick):
            name = pair[p]
            im = Image.open(data / "train" / name).convert("RGB")
            b = boxes.loc[name]
            box = (int(b.x0), int(b.y0), int(b.x1), int(b.y1))
            thumb = im.copy()
            ImageDraw.Draw(thumb).rectangle(box, outline=(255, 60, 60), width=max(2, im.size[0] // 250))
            thumb.thumbnail((tw, th))
            x = pad + j * (tw + pad)
            sheet.paste(thumb, (x, y + lab))
            caption = f"{label}  {name}" if not cond else f"{label}  {cond.get(name, 'normal')}"
            dr.text((x, y), caption, fill=(0, 0, 0))
            crop = im.crop(box).convert("L").resize((cw, ch), Image.BILINEAR)
            xc = pad + 2 * (tw + pad) + j * (cw + pad)
            sheet.paste(crop.convert("RGB"), (xc, y + lab))
            if j == 0:
                dr.text((xc, y), f"fluke crops of {ind}{notes.get(ind, '')}", fill=(0, 0, 0))
    out_png.parent.mkdir(parents=True, exist_ok=True)
    q = sheet.quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    q.save(out_png, optimize=True)
    if out_png.stat().st_size > 400_000:
        q = sheet.resize((sheet.size[0] * 3 // 4, sheet.size[1] * 3 // 4), Image.LANCZOS).quantize(colors=128)
        q.save(out_png, optimize=True)
    return out_png


def _variant_notes(data: Path) -> tuple[dict[str, str], dict[str, str]]:
    """A harder variant's (photo -> condition) and (individual -> " (lookalike of ..., washout ...)")."""
    if not (data / "photo_conditions.csv").exists():
        return {}, {}
    cond = dict(pd.read_csv(data / "photo_conditions.csv").itertuples(index=False, name=None))
    notes: dict[str, str] = {}
    for ind, twin, wash in pd.read_csv(data / "individual_variants.csv").fillna("").itertuples(index=False):
        parts = ([f"lookalike of {twin}"] if twin else []) + ([f"washout {wash}"] if wash else [])
        notes[ind] = f" ({', '.join(parts)})"
    return cond, notes
