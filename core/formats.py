"""The two Kaggle layouts a data folder comes in, and the files of each: one declaration for the generator (writing),
ingestion (reading), the submission writer and `flukeid score`.

- `kaggle2019` ("Humpback Whale Identification", 2019): `train.csv` with header `Image,Id`, photos in `train/` and
  `test/`, submissions `Image,Id`, an unknown whale is `new_whale`.
- `happywhale` ("Happywhale - Whale and Dolphin Identification", 2022): `train.csv` with header
  `image,species,individual_id` (several species), photos in `train_images/` and `test_images/`, submissions
  `image,predictions`, an unknown whale is `new_individual`.

Inside the chain every label is the 2019 word (`core.constants.NEW_WHALE`); a layout's own word is put back only in
the files written for the user (`Layout.external_label`).
"""

from __future__ import annotations

from dataclasses import dataclass

from core.constants import NEW_WHALE

NEW_INDIVIDUAL = "new_individual"  # the 2022 competition's word for new_whale
HUMPBACK = "humpback_whale"  # the species the chain identifies unless told otherwise


@dataclass(frozen=True)
class Layout:
    """One competition's layout: the headers of its files, its photo folders, its word for an unknown whale."""

    name: str
    train_columns: tuple[str, ...]  # train.csv header: the image column first, the label column last
    species_column: str | None  # train.csv's species column, None when the layout has none
    folders: tuple[str, str]  # the photo folders of the train and the test split
    submission_columns: tuple[str, str]  # image, five space-separated labels
    solution_columns: tuple[str, str]  # image, the true label
    unknown: str  # the label of a whale that is none of the known individuals, in this layout's files

    @property
    def image_column(self) -> str:
        return self.train_columns[0]

    @property
    def label_column(self) -> str:
        return self.train_columns[-1]

    def folder(self, split: str) -> str:
        """The folder (relative to the data folder) of the photos of `split` (`train` or `test`)."""
        return self.folders[("train", "test").index(split)]

    def internal_label(self, label: str) -> str:
        """A label as the chain uses it: this layout's unknown-whale word becomes `new_whale`."""
        return NEW_WHALE if label == self.unknown else label

    def external_label(self, label: str) -> str:
        """A label as this layout's files write it: `new_whale` becomes this layout's word."""
        return self.unknown if label == NEW_WHALE else label


KAGGLE2019 = Layout(
    name="kaggle2019",
    train_columns=("Image", "Id"),
    species_column=None,
    folders=("train", "test"),
    submission_columns=("Image", "Id"),
    solution_columns=("Image", "Id"),
    unknown=NEW_WHALE,
)
HAPPYWHALE = Layout(
    name="happywhale",
    train_columns=("image", "species", "individual_id"),
    species_column="species",
    folders=("train_images", "test_images"),
    submission_columns=("image", "predictions"),
    solution_columns=("image", "individual_id"),
    unknown=NEW_INDIVIDUAL,
)
LAYOUTS = {layout.name: layout for layout in (KAGGLE2019, HAPPYWHALE)}
PHOTO_FOLDERS = tuple(folder for layout in LAYOUTS.values() for folder in layout.folders)

# Which header each kind of file has in each layout; a train.csv or solution may carry extra columns after them
# (Kaggle's solutions have `Usage`), a submission may not.
_HEADERS = {
    "train": lambda layout: layout.train_columns,
    "submission": lambda layout: layout.submission_columns,
    "solution": lambda layout: layout.solution_columns,
}


def layout_named(name: str) -> Layout:
    """The layout called `name`; a ValueError naming the known ones otherwise."""
    if name not in LAYOUTS:
        raise ValueError(f"unknown layout {name!r}: one of {', '.join(LAYOUTS)}")
    return LAYOUTS[name]


def expected_headers(kind: str) -> str:
    """What a `kind` file's header may be, for error messages: `'Image,Id' (kaggle2019) or '...' (happywhale)`."""
    return " or ".join(f"'{','.join(_HEADERS[kind](layout))}' ({layout.name})" for layout in LAYOUTS.values())


def layout_of_header(header: list[str] | None, kind: str) -> Layout | None:
    """The layout whose `kind` file (`train`, `submission` or `solution`) starts with `header`; None when none
    does. Names are compared without surrounding spaces and a byte-order mark."""
    if not header:
        return None
    found = [name.strip().lstrip("\ufeff") for name in header]
    for layout in LAYOUTS.values():
        columns = list(_HEADERS[kind](layout))
        exact = kind == "submission"
        if (found == columns) if exact else (found[: len(columns)] == columns):
            return layout
    return None
