"""``generate``: plan a data set, render its photos over worker processes, write its tables."""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import time
from pathlib import Path

from core.formats import PHOTO_FOLDERS, layout_named
from synth.duplicates import encode_jpeg, make_duplicate
from synth.encounters import add_to_summary, check_share, write_encounters
from synth.individuals import clear_identity_cache
from synth.layouts import move_to_layout_folders, plan_other_species
from synth.plan import build_plan
from synth.render import render_photo
from synth.variants import Look, plan_variants, resolve
from synth.write import PhotoRecord, write_tables

# one task: (seed, individual, [(image index, file name, split, source index or -1, photo condition or "")],
# out_dir, the individual's variant or None)
Task = tuple[int, int, list[tuple[int, str, str, int, str]], str, Look | None]


def generate(
    out_dir: str | Path,
    scale: float = 0.05,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
    *,
    variant: str = "standard",
    lookalikes: float | None = None,
    washout: float | None = None,
    hard_photos: float | None = None,
    encounters: float = 0.0,
    layout: str = "kaggle2019",
) -> dict:
    """Generate a synthetic Kaggle-layout humpback data set with ground truth in ``out_dir``.

    ``scale=1.0`` reproduces the real counts (25,360 train / 7,960 test / 5,004 known ids);
    ``scale=0.05`` gives about 1,300 train images.  Output is identical for a given ``seed``
    whatever ``workers`` is.  Returns a summary dict (also written to ``summary.json``).

    Harder data (``synth.variants``, see the package docstring): ``variant`` names a preset ("standard",
    "lookalike", "harsh"); ``lookalikes``, ``washout``, ``hard_photos`` (shares in [0, 1]) override it.
    With every share at 0 the data set is exactly the standard one.

    ``encounters`` (a share in [0, 1], default 0: nothing written): that share of the individuals with 2+ test
    photos have them listed as one encounter in ``encounters.csv``, and every test photo gets an EXIF capture
    time (``synth.encounters``).

    ``layout``: ``kaggle2019`` (default) or ``happywhale``, the same set in the 2022 competition's layout plus
    train photos of other species (``synth.layouts``; the 2019 layout's files are unchanged by it).
    """
    t0 = time.time()
    chosen = layout_named(layout)
    encounters = check_share(encounters)
    options = resolve(variant, lookalikes=lookalikes, washout=washout, hard_photos=hard_photos)
    out = Path(out_dir)
    plan = build_plan(scale, seed)
    _prepare(out)
    varied = plan_variants(plan, options, seed)
    imgs = plan["images"]
    by_ind: dict[int, list] = {}
    for i, im in enumerate(imgs):
        cond = varied.conditions.get(i, "")
        by_ind.setdefault(im["ind"], []).append((i, im["name"], im["split"], im["src"], cond))
    tasks = [(int(seed), ind, items, str(out), varied.looks.get(ind)) for ind, items in by_ind.items()]
    others = plan_other_species(plan, seed) if chosen.species_column else []
    # one task per photo of another species, each numbered after the plan's images
    tasks += [
        (int(seed), im["ind"], [(len(imgs) + k, im["name"], "train", -1, "")], str(out), None)
        for k, im in enumerate(others)
    ]
    tasks.sort(key=lambda t: (-len(t[2]), t[1]))  # big individuals first: better load balance

    workers = (os.cpu_count() or 1) if workers is None else max(1, int(workers))
    recs = _render_all(tasks, workers, len(imgs) + len(others) if progress else None)
    clear_identity_cache()
    recs.sort(key=lambda r: r[0])
    summary = write_tables(
        out,
        plan,
        recs,
        scale=scale,
        seed=seed,
        workers=workers,
        started=t0,
        variants=varied,
        layout=chosen,
        others=others,
    )
    if encounters > 0:
        summary = add_to_summary(out, summary, write_encounters(out, imgs, out / "test", encounters, seed))
    move_to_layout_folders(out, chosen)  # last: the steps above find the photos in train/ and test/
    return summary


def _prepare(out: Path) -> None:
    """Empty image folders in ``out``; a previous synth data set there is replaced, anything else refused."""
    for sub in PHOTO_FOLDERS:  # either layout's
        d = out / sub
        if d.exists() and any(d.iterdir()):
            if not (out / "summary.json").exists():
                raise FileExistsError(
                    f"{d} is not empty and {out} is not a synth data set; refusing to overwrite"
                )
    if (out / "summary.json").exists():
        for sub in (*PHOTO_FOLDERS, "annotations"):
            shutil.rmtree(out / sub, ignore_errors=True)
        # Written only with encounters: a set made without them must not keep an earlier set's.
        (out / "encounters.csv").unlink(missing_ok=True)
    for sub in ("train", "test", "annotations"):
        (out / sub).mkdir(parents=True, exist_ok=True)


def _render_all(tasks: list[Task], workers: int, progress_total: int | None) -> list[PhotoRecord]:
    """Run every task, inline for one worker, else over ``workers`` spawned processes (any finishing order).

    ``progress_total``: the number of images for a tqdm bar, or None for no bar.
    """
    bar = None
    if progress_total is not None:
        from tqdm import tqdm

        bar = tqdm(total=progress_total, desc="synth", unit="img")
    recs: list[PhotoRecord] = []
    try:
        if workers == 1:
            for t in tasks:
                r = _render_task(t)
                recs.extend(r)
                if bar is not None:
                    bar.update(len(r))
        else:
            ctx = mp.get_context("spawn")
            with ctx.Pool(workers) as pool:
                for r in pool.imap_unordered(_render_task, tasks, chunksize=1):
                    recs.extend(r)
                    if bar is not None:
                        bar.update(len(r))
                # Let the workers exit on their own: leaving the block terminates them by SIGTERM, which a
                # process whose SIGTERM is ignored (inherited, e.g. under some test runners) never answers.
                pool.close()
                pool.join()
    finally:
        if bar is not None:
            bar.close()
    return recs


def _render_task(task: Task) -> list[PhotoRecord]:
    """Render and write every image of one individual (originals first, then their duplicates)."""
    seed, ind, items, out_dir, look = task
    done: dict[int, tuple] = {}
    recs = []
    for idx, name, split, src, condition in sorted(items, key=lambda it: it[3] >= 0):
        if src < 0:
            im, box, q, gray = render_photo(seed, ind, idx, look, condition)
            data, size, mode, kind = encode_jpeg(im, q), im.size, im.mode, "photo"
        else:
            sb, sbox, sq, sg = done[src]
            data, box, size, mode, q, kind, gray = make_duplicate(seed, idx, sb, sbox, sq, sg)
        done[idx] = (data, box, q, gray)
        with open(os.path.join(out_dir, split, name), "wb") as fh:
            fh.write(data)
        recs.append(PhotoRecord(idx, name, split, box, size[0], size[1], mode, q, kind, gray))
    return recs
