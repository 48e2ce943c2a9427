"""The 2022 Happywhale layout of a generated set (``generate(layout="happywhale")``, ``flukeid synth --layout``).

The same set as the 2019 layout of the same seed, photo for photo and label for label, written the way the 2022
competition wrote its data (``core.formats``): ``train.csv`` as ``image,species,individual_id``, photos in
``train_images/`` and ``test_images/``, ``sample_submission.csv`` as ``image,predictions``, ``solution.csv`` as
``image,individual_id``, ``new_individual`` in place of ``new_whale``. Besides the humpbacks, train.csv lists
photos of other species (``OTHER_SPECIES``, ``OTHER_SPECIES_SHARE`` of the train photos), as the real data
does, so the species filter of ingestion has something to filter: their photos are generated like any other (of
whales of their own) and are only there to be left out. They draw from a stream of their own, so the humpback
photos are byte-identical to the 2019 set's.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from core.formats import HUMPBACK, Layout
from synth.draws import stream
from synth.plan import Plan, _unique_hex

# A stream kind of its own (synth.draws holds kinds 0-5, synth.encounters 6): the other species move no draw.
OTHER_SPECIES_PLAN = 7
OTHER_SPECIES = ("bottlenose_dolphin", "beluga")
OTHER_SPECIES_SHARE = 0.10  # extra train rows of other species, as a share of the humpback train photos
PHOTOS_PER_OTHER_INDIVIDUAL = 2  # on average: the other species' ids are shared by a few photos each


def plan_other_species(plan: Plan, seed: int) -> list[dict]:
    """The train photos of other species: image dicts like the plan's (split, label, ind, src, name) plus
    ``species``, numbered after the plan's images and individuals so their photos draw from unused streams."""
    rng = stream(seed, OTHER_SPECIES_PLAN)
    count = max(len(OTHER_SPECIES), int(round(OTHER_SPECIES_SHARE * plan["n_train"])))
    individuals = max(len(OTHER_SPECIES), count // PHOTOS_PER_OTHER_INDIVIDUAL)
    # 12 hex digits, like the 2022 data's individual ids; never one of the plan's w_ ids
    ids = _unique_hex(rng, individuals, 12, set())
    species = [OTHER_SPECIES[i % len(OTHER_SPECIES)] for i in range(individuals)]
    names = _unique_hex(rng, count, 8, {im["name"].removesuffix(".jpg") for im in plan["images"]})
    whose = list(range(individuals))  # every id has a photo, the rest go to ids at random
    whose += [int(i) for i in rng.integers(0, individuals, size=count - individuals)]
    return [
        {
            "split": "train",
            "label": ids[who],
            "ind": plan["n_individuals"] + who,
            "src": -1,
            "name": f"{name}.jpg",
            "species": species[who],
        }
        for name, who in zip(names, whose)
    ]


def write_happywhale_labels(
    out: Path,
    layout: Layout,
    train: pd.DataFrame,
    solution: pd.DataFrame,
    sample: pd.DataFrame,
    others: list[dict],
) -> None:
    """train.csv (the humpbacks and the other species, by image name), solution.csv and sample_submission.csv in
    ``layout``'s form, from the 2019 tables (``Image,Id``, labels with ``new_whale``) of the same set."""

    def external(labels: pd.Series) -> list[str]:
        return [" ".join(layout.external_label(label) for label in row.split(" ")) for row in labels]

    image, species, individual = layout.train_columns
    humpbacks = pd.DataFrame({image: train["Image"], species: HUMPBACK, individual: external(train["Id"])})
    extra = pd.DataFrame(
        {
            image: [im["name"] for im in others],
            species: [im["species"] for im in others],
            individual: [im["label"] for im in others],
        }
    )
    rows = pd.concat([humpbacks, extra], ignore_index=True).sort_values(image).reset_index(drop=True)
    rows.to_csv(out / "train.csv", index=False)
    pd.DataFrame(dict(zip(layout.solution_columns, (solution["Image"], external(solution["Id"]))))).to_csv(
        out / "solution.csv", index=False
    )
    pd.DataFrame(dict(zip(layout.submission_columns, (sample["Image"], external(sample["Id"]))))).to_csv(
        out / "sample_submission.csv", index=False
    )


def other_species_summary(others: list[dict]) -> dict:
    """The summary's keys of the other species: how many train photos, of each species."""
    counts = pd.Series([im["species"] for im in others], dtype=object).value_counts()
    return {
        "other_species_train": len(others),
        "other_species": {str(name): int(counts.get(name, 0)) for name in OTHER_SPECIES},
    }


def move_to_layout_folders(out: Path, layout: Layout) -> None:
    """Rename the rendered ``train/`` and ``test/`` to ``layout``'s photo folders (``_prepare`` has emptied them).
    Photos are rendered where the 2019 layout keeps them, so rendering is the same code for both layouts."""
    for split, folder in zip(("train", "test"), layout.folders):
        if folder != split:
            os.replace(out / split, out / folder)
