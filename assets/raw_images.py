"""Stage 1: ingestion. Every photo in the data folder becomes a manifest row or a rejected row with a reason.

Follow one photo: train.csv names it, `inspect_image` opens it (never writes it), and it lands in
`raw_images["images"]` with its size, mode and content hash, or in `raw_images["rejected"]` saying why not.
"""

import hashlib
import os
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    DataVersion,
    MetadataValue,
    ObserveResult,
    Output,
    asset,
    asset_check,
    observable_source_asset,
)
from PIL import Image

from core.caches import TableCache
from core.constants import NEW_WHALE  # noqa: E402
from core.digests import content_version, stable_digest
from core.parallel import parallel_map
from core.profiles import asset_version
from core.reporting import draw_photos_per_individual, figure_metadata, table_metadata
from core.resources import FlukeData, FlukeStorage

SPLITS = ("train", "test")
IMAGE_SUFFIXES = {".jpg", ".jpeg"}
# Labels are joined with spaces in submissions, so a label holds no whitespace or separators.
LABEL_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
# Real photos are about 1 MP; anything past this is a decompression bomb, refused before decoding.
MAX_PIXELS = 40_000_000
EXIF_ORIENTATION = 0x0112
# Bump when `inspect_image` could judge an unchanged file differently: the per-file cache key includes it.
INSPECT_VERSION = "inspect-1"
HIGH_BIT_DEPTH_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}

MANIFEST_COLUMNS = [
    "image",
    "split",
    "label",
    "path",
    "width",
    "height",
    "mode",
    "is_grayscale",
    "bytes",
    "content_hash",
]
REJECTED_COLUMNS = ["image", "split", "label", "reason", "detail"]


# ---------------------------------------------------------------------------------------------------------------
# plain functions


def data_folder_fingerprint(root: Path) -> str:
    """A version of the data folder that changes when train.csv, annotations or any photo is added, removed or
    rewritten. Uses names, sizes and modification times: cheap enough to observe often."""
    digest = hashlib.sha256()
    for name in ("train.csv", "annotations/boxes.csv"):
        path = root / name
        digest.update(name.encode())
        if path.exists():
            digest.update(path.read_bytes())
    for split in SPLITS:
        folder = root / split
        if not folder.is_dir():
            continue
        with os.scandir(folder) as entries:
            listing = sorted((e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in entries if e.is_file())
        for entry in listing:
            digest.update(f"{split}/{entry[0]}:{entry[1]}:{entry[2]}\n".encode())
    return digest.hexdigest()[:20]


@dataclass(frozen=True)
class ImageReport:
    """What `inspect_image` learned about one file: either its properties or why it is rejected."""

    width: int = 0
    height: int = 0
    mode: str = ""
    is_grayscale: bool = False
    bytes: int = 0
    content_hash: str = ""
    reason: str = ""
    detail: str = ""


def inspect_image(path: Path) -> ImageReport:
    """Open one photo read-only and check that the pipeline can use it as it is."""
    path = Path(path)
    if not path.exists():
        return ImageReport(reason="missing_file", detail=f"{path.name} is listed but not in the folder")
    data = path.read_bytes()
    size = len(data)
    content_hash = hashlib.sha256(data).hexdigest()
    base = {"bytes": size, "content_hash": content_hash}
    if size == 0:
        return ImageReport(**base, reason="zero_bytes", detail="file is empty")
    try:
        image = Image.open(path)
    except Image.DecompressionBombError as error:
        return ImageReport(**base, reason="decompression_bomb", detail=str(error))
    except Exception as error:  # noqa: BLE001 - an unreadable header is a rejection, never a crash
        return ImageReport(**base, reason="corrupt_image", detail=f"unreadable header: {error}"[:200])
    with image:
        fmt, mode, (width, height) = image.format, image.mode, image.size
        if mode in HIGH_BIT_DEPTH_MODES:
            return ImageReport(
                **base, reason="high_bit_depth", detail=f"{fmt} in mode {mode}; expected 8-bit L or RGB"
            )
        if fmt != "JPEG":
            return ImageReport(**base, reason="not_jpeg", detail=f"format is {fmt}, expected JPEG")
        if width * height > MAX_PIXELS:
            return ImageReport(
                **base, reason="decompression_bomb", detail=f"{width}x{height} exceeds {MAX_PIXELS} pixels"
            )
        if mode not in ("L", "RGB"):
            reason = "cmyk_image" if mode == "CMYK" else "unsupported_mode"
            return ImageReport(**base, reason=reason, detail=f"mode {mode}; expected L or RGB")
        orientation = image.getexif().get(EXIF_ORIENTATION, 1)
        if orientation not in (0, 1):
            return ImageReport(
                **base,
                reason="exif_rotation",
                detail=f"EXIF orientation {orientation}: pixels are stored rotated; boxes would not match",
            )
        try:
            # Decode at 1/8 scale: libjpeg still walks the whole entropy stream, so truncation is caught.
            image.draft(mode, (max(1, width // 8), max(1, height // 8)))
            image.load()
            small = np.asarray(image)
        except Exception as error:  # noqa: BLE001 - any decoder failure is a rejection, never a crash
            reason = "truncated_image" if "truncated" in str(error).lower() else "corrupt_image"
            return ImageReport(**base, reason=reason, detail=f"{type(error).__name__}: {error}"[:200])
    grayscale = mode == "L" or bool(
        np.abs(small[..., 0].astype(np.int16) - small[..., 1]).mean() < 2
        and np.abs(small[..., 1].astype(np.int16) - small[..., 2]).mean() < 2
    )
    return ImageReport(width=width, height=height, mode=mode, is_grayscale=grayscale, **base)


def read_train_csv(path: Path) -> tuple[pd.DataFrame, list[dict]]:
    """train.csv as (image, label) rows plus rejected rows: empty or malformed labels, unsafe names, repeats."""
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: the data folder needs a train.csv with columns Image,Id")
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    if list(table.columns[:2]) != ["Image", "Id"]:
        raise ValueError(f"{path}: expected header 'Image,Id', got {','.join(table.columns)}")
    rejected: list[dict] = []
    rows: list[tuple[str, str]] = []
    seen: dict[str, str] = {}
    conflicted: set[str] = set()
    for line, (image, label) in enumerate(zip(table["Image"], table["Id"]), start=2):
        image, label = image.strip(), label.strip()
        where = f"train.csv line {line}"
        if not safe_name(image):
            rejected.append(
                _rejected(image, "train", label, "unsafe_path", f"{where}: name leaves the data folder")
            )
        elif not label:
            rejected.append(_rejected(image, "train", label, "empty_label", f"{where}: no Id"))
        elif not LABEL_PATTERN.match(label):
            rejected.append(_rejected(image, "train", label, "malformed_label", f"{where}: Id {label!r}"))
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
                    + ("" if same else f" with another Id ({seen[image]} first)"),
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


def inspect_images(
    paths: list[Path], cache: TableCache | None = None, workers: int | None = None
) -> tuple[list[ImageReport], int]:
    """`inspect_image` over many files, in parallel; with a cache, a file whose name, size and modification time
    are unchanged is not read again. Returns the reports and how many files were inspected now."""
    if cache is None:
        return parallel_map(inspect_image, paths, workers=workers), len(paths)
    keys = []
    for path in paths:
        try:
            stat = path.stat()
            keys.append(stable_digest(INSPECT_VERSION, str(path), stat.st_size, stat.st_mtime_ns))
        except OSError:
            keys.append("")  # missing: inspected (and rejected) every time, never cached
    cached = cache.lookup(k for k in keys if k)
    known = {
        row["key"]: ImageReport(**{f: row[f] for f in ImageReport.__dataclass_fields__})
        for row in cached.to_dict("records")
    }
    todo = [i for i, key in enumerate(keys) if key not in known]
    fresh = parallel_map(inspect_image, [paths[i] for i in todo], workers=workers)
    reports: list[ImageReport | None] = [known.get(key) for key in keys]
    for i, report in zip(todo, fresh):
        reports[i] = report
    new_rows = [{"key": keys[i], **asdict(report)} for i, report in zip(todo, fresh) if keys[i]]
    if new_rows:
        cache.store(pd.DataFrame(new_rows))
    return reports, len(todo)


def scan_data_folder(
    root: Path, workers: int | None = None, cache: TableCache | None = None, stats: dict | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The whole ingestion: returns (manifest of accepted images, rejected inputs with reasons).

    `stats`, when given, receives `inspected` (files opened now) and `from_cache`."""
    root = Path(root)
    labelled, rejected = read_train_csv(root / "train.csv")
    candidates: list[tuple[str, str, str | None]] = [
        (img, "train", lab) for img, lab in labelled.itertuples(index=False)
    ]
    listed = set(labelled["image"])
    listed_rejected = {r["image"] for r in rejected}
    train_dir, test_dir = root / "train", root / "test"
    for path in sorted(train_dir.iterdir()) if train_dir.is_dir() else []:
        if path.is_file() and path.name not in listed and path.name not in listed_rejected:
            rejected.append(
                _rejected(path.name, "train", None, "not_in_train_csv", "in train/ but not in train.csv")
            )
    for path in sorted(test_dir.iterdir()) if test_dir.is_dir() else []:
        if not path.is_file():
            continue
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            rejected.append(
                _rejected(path.name, "test", None, "not_jpeg", f"suffix {path.suffix or '(none)'}")
            )
        else:
            candidates.append((path.name, "test", None))
    paths = [root / split / image for image, split, _ in candidates]
    reports, inspected = inspect_images(paths, cache=cache, workers=workers)
    if stats is not None:
        stats.update(inspected=inspected, from_cache=len(paths) - inspected)
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
                "path": f"{split}/{image}",
                "width": report.width,
                "height": report.height,
                "mode": report.mode,
                "is_grayscale": report.is_grayscale,
                "bytes": report.bytes,
                "content_hash": report.content_hash,
            }
        )
    manifest = pd.DataFrame(accepted, columns=MANIFEST_COLUMNS)
    manifest = manifest.astype({"width": "int64", "height": "int64", "bytes": "int64", "is_grayscale": bool})
    manifest = manifest.sort_values(["split", "image"], kind="stable").reset_index(drop=True)
    rejected_df = pd.DataFrame(rejected, columns=REJECTED_COLUMNS).sort_values(
        ["split", "image"], kind="stable"
    )
    return manifest, rejected_df.reset_index(drop=True)


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


# ---------------------------------------------------------------------------------------------------------------
# Dagster


@observable_source_asset(
    group_name="ingest", description="The data folder as it is on disk; observed, never written."
)
def raw_image_files(data: FlukeData) -> ObserveResult:
    root = data.root
    if not (root / "train.csv").exists():
        raise FileNotFoundError(f"FLUKEID_DATA_DIR={root} holds no train.csv (expected the Kaggle layout)")
    return ObserveResult(data_version=DataVersion(data_folder_fingerprint(root)))


@asset(
    deps=[raw_image_files],
    code_version=asset_version("raw_images", "raw_images-1"),
    group_name="ingest",
    description="Manifest of accepted photos (split, label, size, mode, content hash) and rejected inputs with reasons.",
)
def raw_images(context: AssetExecutionContext, data: FlukeData, storage: FlukeStorage) -> Output[dict]:
    started = time.perf_counter()
    cache = TableCache(storage.cache_dir("raw_images") / "inspected.parquet")
    scan_stats: dict = {}
    manifest, rejected = scan_data_folder(data.root, cache=cache, stats=scan_stats)
    seconds = time.perf_counter() - started
    stats = label_statistics(manifest)
    train = manifest[manifest["split"] == "train"]
    per_id = train.loc[train["label"] != NEW_WHALE, "label"].value_counts()
    reasons = rejected["reason"].value_counts()

    def images_per_individual(ax):
        draw_photos_per_individual(ax, per_id, "train photos of the individual")

    def image_sizes(ax):
        ax.scatter(manifest["width"], manifest["height"], s=4, alpha=0.4, color="#86bbd8")
        ax.set_xlabel("width (px)")
        ax.set_ylabel("height (px)")

    metadata = {
        **stats,
        "rejected": int(len(rejected)),
        "rejected_by_reason": MetadataValue.json({str(k): int(v) for k, v in reasons.items()}),
        "images_per_individual": figure_metadata(
            images_per_individual,
            f"How many photos per whale? {per_id.size} known individuals, "
            f"new_whale {stats['new_whale_share']:.0%} of train",
        ),
        "image_sizes": figure_metadata(
            image_sizes, f"What sizes are the photos? {len(manifest)} accepted", width=4.5, height=3.5
        ),
        "median_size": f"{int(manifest['width'].median()) if len(manifest) else 0}x"
        f"{int(manifest['height'].median()) if len(manifest) else 0}",
        "most_frequent_individuals": table_metadata(
            per_id.head(10).rename_axis("label").reset_index(name="photos")
        ),
        "rejected_examples": table_metadata(rejected, max_rows=15),
        "inspected": scan_stats["inspected"],
        "from_cache": scan_stats["from_cache"],
        "seconds": round(seconds, 2),
        "images_per_second": round(len(manifest) / max(seconds, 1e-9), 1),
    }
    value = {"images": manifest, "rejected": rejected}
    return Output(value, metadata=metadata, data_version=DataVersion(content_version(value)))


@asset_check(
    asset=raw_images,
    description="Every accepted photo has a unique name within its split and a label in train.",
)
def raw_images_well_formed(raw_images: dict) -> AssetCheckResult:
    images = raw_images["images"]
    repeated = int(images.duplicated(["split", "image"]).sum())
    unlabelled = int((images["split"].eq("train") & images["label"].isna()).sum())
    return AssetCheckResult(
        passed=repeated == 0 and unlabelled == 0,
        metadata={"repeated_names": repeated, "unlabelled_train": unlabelled, "accepted": int(len(images))},
    )
