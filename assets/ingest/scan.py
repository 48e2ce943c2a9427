"""Reading train.csv and the split folders into the manifest of accepted photos and the rejected inputs.

Either Kaggle layout (`core.formats`), detected from train.csv's header: 2019 (`Image,Id`, photos in `train/` and
`test/`) or 2022 Happywhale (`image,species,individual_id`, photos in `train_images/` and `test_images/`, rows of
other species than the chosen one rejected unread as `other_species`, `new_individual` read as `new_whale`). The
manifest's `split` is `train` or `test` in both; its `path` names the photo's real folder.

Follow one photo: train.csv names it, its path is checked to stay inside the data folder (a symlink out of it is
rejected before anything opens it, unless `allow_outside_links`), `inspection.inspect_image` opens it (never
writes it), and it lands in `raw_images["images"]` with its size, mode, content hash and what decoding converts,
or in `raw_images["rejected"]` saying why not.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
from pathlib import Path, PurePosixPath

import pandas as pd

from assets.ingest.encounters import ENCOUNTER_REASONS
from assets.ingest.inspection import REJECTION_REASONS, inspect_images
from assets.ingest.reviews import REVIEW_REASONS
from core.artifacts import IMAGE_COLUMNS, REJECTED_COLUMNS
from core.caches import RecordCache
from core.constants import NEW_WHALE
from core.formats import HUMPBACK, PHOTO_FOLDERS, Layout, expected_headers, layout_of_header

SPLITS = ("train", "test")
# Files of test/ taken as photos (train photos are the ones train.csv names); decoding converts non-JPEGs.
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp"}
# Labels are joined with spaces in submissions, so a label holds no whitespace or separators.
LABEL_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")

# Reasons found in train.csv and the folders, next to those of opening the photo (`REJECTION_REASONS`).
LISTING_REASONS = (
    "unsafe_path",
    "empty_label",
    "malformed_label",
    "duplicate_row",
    "conflicting_labels",
    "not_in_train_csv",
    "not_a_photo",
    "outside_data_folder",
    "other_species",
)
# ... and those of the side files: the encounters table and the review decisions.
ALL_REASONS = (
    frozenset(LISTING_REASONS)
    | frozenset(REJECTION_REASONS)
    | frozenset(ENCOUNTER_REASONS)
    | frozenset(REVIEW_REASONS)
)


def data_folder_fingerprint(root: Path, allow_outside_links: bool = False, *, species: str = HUMPBACK) -> str:
    """A version of the data folder that changes when train.csv, annotations or any photo (in the folders of
    either layout) is added, removed or rewritten. Uses names, sizes and modification times: cheap enough to
    observe often. Turning `allow_outside_links` on or choosing another `species` changes it too (what is
    accepted changes); left at their defaults, it is the fingerprint it always was."""
    digest = hashlib.sha256()
    if allow_outside_links:
        digest.update(b"allow_outside_links\n")
    if species != HUMPBACK:
        digest.update(f"species:{species}\n".encode())
    for name in ("train.csv", "annotations/boxes.csv"):
        path = root / name
        digest.update(name.encode())
        if path.exists():
            digest.update(path.read_bytes())
    # A folder that does not exist adds nothing: a 2019 folder's fingerprint is the one it always had.
    for split in PHOTO_FOLDERS:
        folder = root / split
        if not folder.is_dir():
            continue
        with os.scandir(folder) as entries:
            listing = sorted((e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in entries if e.is_file())
        for entry in listing:
            digest.update(f"{split}/{entry[0]}:{entry[1]}:{entry[2]}\n".encode())
    return digest.hexdigest()[:20]


def detect_layout(path: Path) -> Layout:
    """The layout of the data folder whose train.csv is `path`, from its header; a clear error naming both expected
    headers when it is neither."""
    if not path.exists():
        raise FileNotFoundError(
            f"{path} not found: the data folder needs a train.csv with header {expected_headers('train')}"
        )
    with open(path, newline="", encoding="utf-8-sig") as handle:
        header = next(csv.reader(handle), None)
    layout = layout_of_header(header, "train")
    if layout is None:
        raise ValueError(
            f"{path}: expected header {expected_headers('train')}, got {','.join(header or []) or '(empty)'}"
        )
    return layout


def data_source(layout: Layout, species: str = HUMPBACK) -> dict:
    """`raw_images["source"]`: the layout read and the species kept ("" when none was filtered out: every species
    or a layout without a species column)."""
    return {"layout": layout.name, "species": species if layout.species_column else ""}


def read_train_csv(
    path: Path, species: str = HUMPBACK, layout: Layout | None = None
) -> tuple[pd.DataFrame, list[dict]]:
    """train.csv as (image, label) rows plus rejected rows: empty or malformed labels, unsafe names, repeats, and
    rows of another species than `species` (where the layout has a species column and `species` is not empty).
    Labels are the chain's (`new_individual` -> `new_whale`). `layout`: detected from the header when None."""
    layout = layout or detect_layout(path)
    table = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    table.columns = [column.strip() for column in table.columns]
    id_column = layout.label_column
    images, labels = table[layout.image_column], table[id_column]
    kinds = table[layout.species_column] if layout.species_column else pd.Series([""] * len(table))
    rejected: list[dict] = []
    rows: list[tuple[str, str]] = []
    seen: dict[str, str] = {}
    conflicted: set[str] = set()
    for line, (image, label, kind) in enumerate(zip(images, labels, kinds), start=2):
        image, label, kind = image.strip(), layout.internal_label(label.strip()), kind.strip()
        where = f"train.csv line {line}"
        if layout.species_column and species and kind != species:
            detail = f"{where}: species {kind or '(none)'}; only {species} is identified (FlukeData.species)"
            rejected.append(_rejected(image, "train", label or None, "other_species", detail))
        elif not safe_name(image):
            rejected.append(
                _rejected(image, "train", label, "unsafe_path", f"{where}: name leaves the data folder")
            )
        elif not label:
            rejected.append(_rejected(image, "train", label, "empty_label", f"{where}: no {id_column}"))
        elif not LABEL_PATTERN.match(label):
            detail = f"{where}: {id_column} {label!r}"
            rejected.append(_rejected(image, "train", label, "malformed_label", detail))
        elif image in seen:
            same = seen[image] == label
            if not same:
                conflicted.add(image)
            rejected.append(
                _rejected(
                    image,
                    "train",
                    label,
                    "duplicate_row",
                    f"{where}: {image} listed again"
                    + ("" if same else f" with another {id_column} ({seen[image]} first)"),
                )
            )
        else:
            seen[image] = label
            rows.append((image, label))
    # An image filed under two different ids has no trustworthy label: reject its first row too.
    kept = []
    for image, label in rows:
        if image in conflicted:
            rejected.append(
                _rejected(image, "train", label, "conflicting_labels", "listed with different Ids")
            )
        else:
            kept.append((image, label))
    return pd.DataFrame(kept, columns=["image", "label"]), rejected


def safe_name(name: str) -> bool:
    """A plain file name inside its split folder: no absolute paths, no `..`, no sub-folders."""
    if not name or name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return False
    parts = PurePosixPath(name.replace("\\", "/")).parts
    return len(parts) == 1 and parts[0] not in ("..", ".")


def outside_target(root: Path, path: Path) -> Path | None:
    """Where `path` really leads when that is outside the data folder `root` (a symlinked photo or split folder
    pointing elsewhere); None when it stays inside. Resolving reads links only: the file is not opened."""
    target = Path(os.path.realpath(path))
    return None if target.is_relative_to(Path(os.path.realpath(root))) else target


def scan_data_folder(
    root: Path,
    workers: int | None = None,
    cache: RecordCache | None = None,
    stats: dict | None = None,
    allow_outside_links: bool = False,
    *,
    species: str = HUMPBACK,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The whole ingestion: returns (manifest of accepted images, rejected inputs with reasons).

    The layout is train.csv's (`detect_layout`); where it has a species column, rows of another species than
    `species` (empty: every species) are rejected (`other_species`) and their photos never opened.
    A photo whose path resolves outside `root` is rejected (`outside_data_folder`) without being opened, unless
    `allow_outside_links` (a folder deliberately assembled from links to photos elsewhere).
    `stats`, when given, receives `inspected` (files opened now), `from_cache` and `source` (`data_source`)."""
    root = Path(root)
    layout = detect_layout(root / "train.csv")
    folders = {split: layout.folder(split) for split in SPLITS}
    labelled, rejected = read_train_csv(root / "train.csv", species, layout)
    candidates: list[tuple[str, str, str | None]] = [
        (img, "train", lab) for img, lab in labelled.itertuples(index=False)
    ]
    listed = set(labelled["image"])
    listed_rejected = {r["image"] for r in rejected}
    train_dir, test_dir = root / folders["train"], root / folders["test"]
    for path in sorted(train_dir.iterdir()) if train_dir.is_dir() else []:
        if path.is_file() and path.name not in listed and path.name not in listed_rejected:
            detail = f"in {folders['train']}/ but not in train.csv"
            rejected.append(_rejected(path.name, "train", None, "not_in_train_csv", detail))
    for path in sorted(test_dir.iterdir()) if test_dir.is_dir() else []:
        if not path.is_file():
            continue
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            detail = f"suffix {path.suffix or '(none)'}; photos are {', '.join(sorted(IMAGE_SUFFIXES))}"
            rejected.append(_rejected(path.name, "test", None, "not_a_photo", detail))
        else:
            candidates.append((path.name, "test", None))
    if not allow_outside_links:
        candidates = _inside_only(root, candidates, rejected, folders)
    paths = [root / folders[split] / image for image, split, _ in candidates]
    reports, inspected = inspect_images(paths, cache=cache, workers=workers)
    if stats is not None:
        stats.update(
            inspected=inspected, from_cache=len(paths) - inspected, source=data_source(layout, species)
        )
    accepted = []
    for (image, split, label), report in zip(candidates, reports):
        if report.reason:
            rejected.append(_rejected(image, split, label, report.reason, report.detail))
            continue
        accepted.append(
            {
                "image": image,
                "split": split,
                "label": label,
                "path": f"{folders[split]}/{image}",
                "width": report.width,
                "height": report.height,
                "mode": report.mode,
                "is_grayscale": report.is_grayscale,
                "bytes": report.bytes,
                "content_hash": report.content_hash,
                "converted": report.converted,
            }
        )
    manifest = pd.DataFrame(accepted, columns=IMAGE_COLUMNS)
    manifest = manifest.astype({"width": "int64", "height": "int64", "bytes": "int64", "is_grayscale": bool})
    manifest = manifest.sort_values(["split", "image"], kind="stable").reset_index(drop=True)
    rejected_df = pd.DataFrame(rejected, columns=REJECTED_COLUMNS).sort_values(
        ["split", "image"], kind="stable"
    )
    return manifest, rejected_df.reset_index(drop=True)


def _inside_only(
    root: Path, candidates: list[tuple], rejected: list[dict], folders: dict[str, str]
) -> list[tuple]:
    """The candidates whose files stay inside `root`; the others go to `rejected`, unopened. `folders`: split ->
    its photo folder."""
    inside = []
    for image, split, label in candidates:
        relative = f"{folders[split]}/{image}"
        target = outside_target(root, root / relative)
        if target is None:
            inside.append((image, split, label))
        else:
            detail = f"{relative} resolves to {target}, outside the data folder (allow_outside_links is off)"
            rejected.append(_rejected(image, split, label, "outside_data_folder", detail))
    return inside


def converted_counts(images: pd.DataFrame) -> dict[str, int]:
    """Accepted photos per conversion (`png`, `cmyk`, `16-bit`, `palette`, `exif-rotation`, ...); a photo
    converted twice (e.g. `png+palette`) counts under both."""
    column = images["converted"] if "converted" in images else pd.Series(dtype=object)
    kinds = [kind for value in column.fillna("") for kind in str(value).split("+") if kind]
    return {str(kind): int(count) for kind, count in pd.Series(kinds, dtype=object).value_counts().items()}


def source_counts(source: dict | None, rejected: pd.DataFrame) -> dict[str, str | int]:
    """How the folder was read, for raw_images' metadata: the layout, the species kept (`all` when none was
    filtered out) and how many train.csv rows of other species were rejected. `source` None: an artifact written
    before layouts, which was a 2019 folder."""
    source = source or {"layout": "kaggle2019", "species": ""}
    return {
        "layout": source["layout"],
        "species": source["species"] or "all",
        "rejected_other_species": int((rejected["reason"] == "other_species").sum()),
    }


def _rejected(image: str, split: str, label: str | None, reason: str, detail: str) -> dict:
    return {"image": image, "split": split, "label": label, "reason": reason, "detail": detail}


def label_statistics(manifest: pd.DataFrame) -> dict[str, float | int]:
    """The numbers a user looks at first: per split counts, individuals, new_whale share, singletons."""
    train = manifest[manifest["split"] == "train"]
    known = train[train["label"] != NEW_WHALE]
    per_id = known["label"].value_counts()
    return {
        "train_images": int(len(train)),
        "test_images": int((manifest["split"] == "test").sum()),
        "individuals": int(per_id.size),
        "new_whale_images": int((train["label"] == NEW_WHALE).sum()),
        "new_whale_share": round(float((train["label"] == NEW_WHALE).mean()) if len(train) else 0.0, 4),
        "singleton_individuals": int((per_id == 1).sum()),
        "singleton_share": round(float((per_id == 1).mean()) if per_id.size else 0.0, 4),
        "max_images_per_individual": int(per_id.max()) if per_id.size else 0,
        "grayscale_share": round(float(manifest["is_grayscale"].mean()) if len(manifest) else 0.0, 4),
    }


def known_photos_per_individual(images: pd.DataFrame) -> pd.Series:
    """label -> number of accepted train photos, for the known individuals (new_whale is nobody in particular)."""
    train = images[images["split"] == "train"]
    return train.loc[train["label"] != NEW_WHALE, "label"].value_counts()


def well_formed_counts(images: pd.DataFrame) -> dict[str, int]:
    """What `raw_images_well_formed` checks: names repeated within a split, train photos without a label."""
    return {
        "repeated_names": int(images.duplicated(["split", "image"]).sum()),
        "unlabelled_train": int((images["split"].eq("train") & images["label"].isna()).sum()),
        "accepted": int(len(images)),
    }
