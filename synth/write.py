"""The files of a generated data set besides the photos: the Kaggle tables and the ground truth.

``train.csv``, ``sample_submission.csv`` (as Kaggle), ``solution.csv``, ``boxes.csv``,
``annotations/boxes.csv``, ``images.csv``, ``individuals.csv``, ``duplicates.csv``, ``aliases.csv`` and
``summary.json`` (see the package docstring for their columns); for a harder variant also
``photo_conditions.csv`` and ``individual_variants.csv``.  Every table is sorted by image name (or id),
so a seed gives the same bytes whatever the order the photos were rendered in.  In the Happywhale layout
(``synth.layouts``) the label tables are written in the 2022 form, and the other species' photos are in
``boxes.csv``, ``images.csv`` and ``individuals.csv`` too; every other table is the 2019 layout's.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from core.constants import NEW_WHALE
from core.formats import KAGGLE2019, Layout
from synth.layouts import other_species_summary, write_happywhale_labels
from synth.plan import Plan
from synth.variants import HARD_KINDS, OPTIONS, VariantPlan


class PhotoRecord(NamedTuple):
    """One written photo (original or duplicate), as the renderer reports it."""

    image_index: int  # index into ``Plan["images"]``
    name: str
    split: str
    box: tuple[int, int, int, int]  # true fluke box, pixels, x1/y1 exclusive
    width: int
    height: int
    mode: str  # "RGB" or "L"
    quality: int  # JPEG quality
    source: str  # "photo", or the kind of duplicate: "exact", "requality", "resize", "crop"
    gray: bool


def write_tables(
    out: Path,
    plan: Plan,
    records: list[PhotoRecord],
    *,
    scale: float,
    seed: int,
    workers: int,
    started: float,
    variants: VariantPlan | None = None,
    layout: Layout = KAGGLE2019,
    others: list[dict] | None = None,
) -> dict:
    """Write every table of the data set and ``summary.json``; returns the summary.

    ``records`` are sorted by ``image_index``; ``started`` is the ``time.time()`` the generation began;
    ``variants``: who was varied (the variant tables and summary keys are written only when an option is on);
    ``layout``: the form of the label tables; ``others``: the Happywhale layout's photos of other species
    (``synth.layouts.plan_other_species``, numbered after the plan's images). The summary describes the
    humpbacks, whatever the layout.
    """
    imgs = plan["images"]
    others = others or []
    train_idx = [i for i, im in enumerate(imgs) if im["split"] == "train"]
    test_idx = [i for i, im in enumerate(imgs) if im["split"] == "test"]
    train, sol = _write_labels(out, imgs, train_idx, test_idx, layout, others)
    ann_names = _write_boxes(out, plan, records)
    _write_images(out, [*imgs, *others], records)
    humpbacks = [r for r in records if r.image_index < len(imgs)]
    n_groups, n_dup_images = _write_duplicates(out, imgs)
    pd.DataFrame(plan["aliases"], columns=["Id", "alias_of"]).sort_values("Id").to_csv(
        out / "aliases.csv", index=False
    )

    n_train, n_test = len(train_idx), len(test_idx)
    nw_train = int((train.Id == NEW_WHALE).sum())
    kc = train.loc[train.Id != NEW_WHALE, "Id"].value_counts()
    n_cross = sum(1 for i in test_idx if imgs[i]["src"] >= 0)
    # the key order is the order of summary.json
    summary = {
        "out_dir": str(out),
        "scale": float(scale),
        "seed": int(seed),
        "workers": int(workers),
        **(_write_variants(out, imgs, variants) if variants is not None and variants.options.active else {}),
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
        "duplicate_groups": n_groups,
        "duplicate_images": n_dup_images,
        "train_duplicates": sum(1 for i in train_idx if imgs[i]["src"] >= 0),
        "cross_duplicates": n_cross,
        "aliases": len(plan["aliases"]),
        "annotated": len(ann_names),
        "grayscale_share": round(float(np.mean([r.gray for r in humpbacks])), 4),
        "single_channel_share": round(float(np.mean([r.mode == "L" for r in humpbacks])), 4),
        **({"layout": layout.name, **other_species_summary(others)} if layout is not KAGGLE2019 else {}),
        "seconds": round(time.time() - started, 1),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _write_labels(
    out: Path,
    imgs: list[dict],
    train_idx: list[int],
    test_idx: list[int],
    layout: Layout = KAGGLE2019,
    others: list[dict] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """train.csv, solution.csv and sample_submission.csv (in ``layout``'s form); returns the humpbacks' (train,
    solution) in the 2019 form (``Image,Id``, new_whale)."""
    names = [im["name"] for im in imgs]
    train = pd.DataFrame(
        {"Image": [names[i] for i in train_idx], "Id": [imgs[i]["label"] for i in train_idx]}
    )
    train = train.sort_values("Image").reset_index(drop=True)
    sol = pd.DataFrame({"Image": [names[i] for i in test_idx], "Id": [imgs[i]["label"] for i in test_idx]})
    sol = sol.sort_values("Image").reset_index(drop=True)
    # Kaggle's sample submission: new_whale and the four most frequent ids (ties by id) for every image
    top = train.loc[train.Id != NEW_WHALE, "Id"].value_counts()
    top = sorted(top.index, key=lambda k: (-int(top[k]), k))[:4]
    sub_label = " ".join([NEW_WHALE, *top])
    sample = pd.DataFrame({"Image": sol.Image, "Id": sub_label})
    if layout is KAGGLE2019:
        train.to_csv(out / "train.csv", index=False)
        sol.to_csv(out / "solution.csv", index=False)
        sample.to_csv(out / "sample_submission.csv", index=False)
    else:
        write_happywhale_labels(out, layout, train, sol, sample, others or [])
    return train, sol


def _write_boxes(out: Path, plan: Plan, records: list[PhotoRecord]) -> set[str]:
    """boxes.csv (every image) and annotations/boxes.csv (the annotated sample); returns the sample's names."""
    names = [im["name"] for im in plan["images"]]
    boxes = (
        pd.DataFrame([(r.name, *r.box) for r in records], columns=["Image", "x0", "y0", "x1", "y1"])
        .sort_values("Image")
        .reset_index(drop=True)
    )
    boxes.to_csv(out / "boxes.csv", index=False)
    ann_names = {names[i] for i in plan["annotated"]}
    boxes[boxes.Image.isin(ann_names)].to_csv(out / "annotations" / "boxes.csv", index=False)
    return ann_names


def _write_images(out: Path, imgs: list[dict], records: list[PhotoRecord]) -> None:
    """images.csv (how each file was made) and individuals.csv (the hidden whale of each image)."""
    pd.DataFrame(
        [(r.name, r.split, r.width, r.height, r.mode, int(r.gray), r.quality, r.source) for r in records],
        columns=["Image", "split", "width", "height", "mode", "gray", "quality", "source"],
    ).sort_values("Image").to_csv(out / "images.csv", index=False)
    names = [im["name"] for im in imgs]
    pd.DataFrame({"Image": names, "individual": [f"ind_{im['ind']:05d}" for im in imgs]}).sort_values(
        "Image"
    ).to_csv(out / "individuals.csv", index=False)


def _write_duplicates(out: Path, imgs: list[dict]) -> tuple[int, int]:
    """duplicates.csv: groups = a source image and its duplicates; returns (groups, images in groups)."""
    names = [im["name"] for im in imgs]
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
    return len(groups), len(dup_rows)


def _write_variants(out: Path, imgs: list[dict], variants: VariantPlan) -> dict:
    """photo_conditions.csv (every image: its hard-photo kind or "normal") and individual_variants.csv (every
    varied individual: the twin it is a near copy of, its washout kind); returns the summary's keys, each
    only when non-zero."""
    names = [im["name"] for im in imgs]
    pd.DataFrame(
        {"Image": names, "condition": [variants.conditions.get(i, "normal") for i in range(len(imgs))]}
    ).sort_values("Image").to_csv(out / "photo_conditions.csv", index=False)
    rows = [
        (f"ind_{ind:05d}", f"ind_{look.twin:05d}" if look.twin >= 0 else "", look.washout)
        for ind, look in sorted(variants.looks.items())
    ]
    pd.DataFrame(rows, columns=["individual", "lookalike_of", "washout"]).to_csv(
        out / "individual_variants.csv", index=False
    )
    opts = variants.options
    counts = {
        "lookalike_individuals": sum(1 for lk in variants.looks.values() if lk.twin >= 0),
        "washout_individuals": sum(1 for lk in variants.looks.values() if lk.washout),
        "hard_photo_images": len(variants.conditions),
    }
    kinds = {k: sum(1 for c in variants.conditions.values() if c == k) for k in HARD_KINDS}
    keys: dict = {"variant": opts.name} if opts.name != "standard" else {}
    keys.update({o: getattr(opts, o) for o in OPTIONS if getattr(opts, o) > 0})
    keys.update({k: v for k, v in counts.items() if v})
    if variants.conditions:
        keys["photo_conditions"] = {k: v for k, v in kinds.items() if v}
    return keys
