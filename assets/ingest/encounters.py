"""Encounters: photos of one whale taken together, which identification then pools (issue 15).

Two sources, read after the folder is scanned:
- `encounters.csv` in the data folder (optional), header `Image,encounter` (or `image,encounter`, as Happywhale's
  tables name photos) and an optional third column `split`: each row puts a photo in an encounter named by free
  text. Without a split, a name means the test photo when there is one, else the train photo. A row that cannot be used is a rejected row (split `encounters`) with its
  reason, never a failed run: a photo the manifest does not hold (`unknown_encounter_photo`), an empty encounter
  (`empty_encounter`), a photo put in two different encounters (`conflicting_encounter`: all its rows, since
  neither can be trusted), or a file that is not such a table at all (`malformed_encounters_file`).
- EXIF capture times, opt-in (`FlukeData.encounter_window_minutes` > 0): test photos the file does not place are
  sorted by the time `inspection` read from their EXIF (`ImageReport.taken`); consecutive photos whose gaps are all
  within the window form one encounter, named `exif-<its first photo>`. A photo alone in its window, or without
  an EXIF date, is in no encounter. Off by default: Kaggle's photos carry no EXIF, and consecutive photos of a pod
  may show different whales.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd

from assets.ingest.inspection import inspect_images
from core.artifacts import ENCOUNTER_COLUMNS
from core.caches import RecordCache

ENCOUNTERS_FILE = "encounters.csv"
SPLIT = "encounters"  # the `split` of a rejected encounters.csv row
ENCOUNTER_REASONS = (
    "unknown_encounter_photo",
    "empty_encounter",
    "conflicting_encounter",
    "malformed_encounters_file",
)
SOURCES = ("file", "exif")
PHOTO_SPLITS = ("train", "test")


def find_encounters(
    manifest: pd.DataFrame,
    root: Path,
    window_minutes: float = 0.0,
    cache: RecordCache | None = None,
    workers: int | None = None,
) -> tuple[pd.DataFrame, list[dict]]:
    """(the encounters table (`ENCOUNTER_COLUMNS`), rejected rows of encounters.csv) for the accepted photos of
    `manifest`. With `window_minutes` > 0 the EXIF times come from the inspection `cache` the scan just filled
    (no photo is opened again); without a cache the test photos are inspected here."""
    root = Path(root)
    listed, rejected = read_encounters_file(root / ENCOUNTERS_FILE, manifest)
    tables = [listed.assign(source="file")]
    if window_minutes > 0:
        test = manifest[manifest["split"] == "test"]
        placed = set(listed.loc[listed["split"] == "test", "image"])
        unplaced = test[~test["image"].isin(placed)]
        times = capture_times(unplaced, root, cache, workers)
        tables.append(exif_encounters(times, window_minutes).assign(source="exif"))
    table = pd.concat(tables, ignore_index=True)[ENCOUNTER_COLUMNS]
    return table.sort_values(["split", "image"], kind="stable").reset_index(drop=True), rejected


def read_encounters_file(path: Path, manifest: pd.DataFrame) -> tuple[pd.DataFrame, list[dict]]:
    """encounters.csv as (image, split, encounter) rows of accepted photos, plus its rejected rows; a missing
    file is no encounters."""
    empty = pd.DataFrame(columns=["image", "split", "encounter"])
    if not path.is_file():
        return empty, []
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        return empty, [_rejected(path.name, "", "malformed_encounters_file", f"unreadable: {error}"[:200])]
    # The 2019 layout names photos `Image`, Happywhale's `image`: either is read.
    table.columns = [str(column).strip() for column in table.columns]
    table = table.rename(columns={"image": "Image"})
    if "Image" not in table.columns or "encounter" not in table.columns:
        detail = f"expected header 'Image,encounter[,split]', got {','.join(table.columns)}"[:200]
        return empty, [_rejected(path.name, "", "malformed_encounters_file", detail)]
    splits = table["split"] if "split" in table.columns else pd.Series("", index=table.index)
    accepted = set(zip(manifest["split"], manifest["image"]))
    rejected: list[dict] = []
    chosen: dict[tuple[str, str], tuple[str, int]] = {}  # (split, image) -> (encounter, first line)
    conflicted: set[tuple[str, str]] = set()
    for line, (image, encounter, split) in enumerate(
        zip(table["Image"], table["encounter"], splits), start=2
    ):
        image, encounter, split = image.strip(), encounter.strip(), split.strip().lower()
        where = f"{ENCOUNTERS_FILE} line {line}"
        if not encounter:
            rejected.append(_rejected(image, "", "empty_encounter", f"{where}: no encounter"))
            continue
        if split and split not in PHOTO_SPLITS:
            detail = f"{where}: split {split!r} is neither train nor test"
            rejected.append(_rejected(image, encounter, "unknown_encounter_photo", detail))
            continue
        split = split or ("test" if ("test", image) in accepted else "train")
        key = (split, image)
        if key not in accepted:
            detail = f"{where}: {image} is not an accepted {split} photo"
            rejected.append(_rejected(image, encounter, "unknown_encounter_photo", detail))
        elif key in chosen and chosen[key][0] != encounter:
            conflicted.add(key)
            detail = f"{where}: {split}/{image} is already in encounter {chosen[key][0]!r}"
            rejected.append(_rejected(image, encounter, "conflicting_encounter", detail))
        else:
            chosen.setdefault(
                key, (encounter, line)
            )  # the same photo listed again in the same encounter: once
    for key in sorted(conflicted):
        encounter, line = chosen.pop(key)
        detail = f"{ENCOUNTERS_FILE} line {line}: {key[0]}/{key[1]} is listed in several encounters"
        rejected.append(_rejected(key[1], encounter, "conflicting_encounter", detail))
    rows = [(image, split, encounter) for (split, image), (encounter, _) in chosen.items()]
    return pd.DataFrame(rows, columns=["image", "split", "encounter"]), rejected


def capture_times(
    photos: pd.DataFrame, root: Path, cache: RecordCache | None = None, workers: int | None = None
) -> pd.DataFrame:
    """(image, split, taken) of `photos` (manifest rows), `taken` the EXIF time inspection read ("" if none).
    The cache key is the scan's (path, size, modification time), so a scanned photo is a cache hit."""
    paths = [Path(root) / path for path in photos["path"]]
    reports, _ = inspect_images(paths, cache=cache, workers=workers)
    return pd.DataFrame(
        {
            "image": photos["image"].tolist(),
            "split": photos["split"].tolist(),
            "taken": [report.taken or "" for report in reports],
        }
    )


def exif_encounters(times: pd.DataFrame, window_minutes: float) -> pd.DataFrame:
    """(image, split, encounter) of the photos in `times` (image, split, taken) whose capture times chain with
    gaps of at most `window_minutes`; each chain of two or more photos is one encounter `exif-<first image>`."""
    dated = times[times["taken"].fillna("") != ""].copy()
    dated["when"] = [_parse(value) for value in dated["taken"]]
    dated = dated[dated["when"].notna()].sort_values(["when", "image"], kind="stable")
    window = timedelta(minutes=float(window_minutes))
    runs: list[list[tuple[str, str]]] = []
    previous = None
    for image, split, when in zip(dated["image"], dated["split"], dated["when"]):
        if previous is None or when - previous > window:
            runs.append([])
        runs[-1].append((image, split))
        previous = when
    rows = [(image, split, f"exif-{run[0][0]}") for run in runs if len(run) >= 2 for image, split in run]
    return pd.DataFrame(rows, columns=["image", "split", "encounter"])


def _parse(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _rejected(image: str, encounter: str, reason: str, detail: str) -> dict:
    # `label` carries the encounter the row named, so a rejected row says what it tried to do.
    return {"image": image, "split": SPLIT, "label": encounter or None, "reason": reason, "detail": detail}


def encounters_version(version: str, root: Path, window_minutes: float = 0.0) -> str:
    """The data folder's version with encounters.csv and the EXIF window folded in, only when they are used (the
    file exists, the window is on): a folder without them keeps the version it always had."""
    path = Path(root) / ENCOUNTERS_FILE
    if not path.is_file() and window_minutes <= 0:
        return version
    digest = hashlib.sha256(version.encode())
    digest.update(f"\nencounter_window_minutes={float(max(window_minutes, 0.0))}\n".encode())
    if path.is_file():
        digest.update(path.read_bytes())
    return digest.hexdigest()[:20]


def encounter_counts(encounters: pd.DataFrame | None) -> dict[str, int]:
    """What `raw_images` reports of the encounters: how many and their photos, in all and by source."""
    encounters = encounters if encounters is not None else pd.DataFrame(columns=ENCOUNTER_COLUMNS)
    counts = {
        "encounters": int(encounters["encounter"].nunique()),
        "encounter_photos": int(len(encounters)),
    }
    for source in SOURCES:
        mine = encounters[encounters["source"] == source]
        counts[f"encounters_from_{source}"] = int(mine["encounter"].nunique())
        counts[f"encounter_photos_from_{source}"] = int(len(mine))
    return counts
