"""Stage 3: groups of exact and near-duplicate photos, label aliases, and test photos that duplicate train photos.

Follow one pair: faiss finds every pair of pHashes within `max_distance` bits (a binary range search, not a
Python double loop); the two photos' small grayscale thumbnails are compared pixel by pixel, allowing for a few
percent of crop, so that similar-looking different photos are not merged; verified pairs are joined into groups
(connected components). A group with train photos of two known ids shows those ids to be one individual (an
alias); a `new_whale` photo in a group with a known id takes that id; a test photo in a group with train photos
reveals its label.
"""

import time
from contextlib import nullcontext
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path

import faiss
import numpy as np
import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    AssetIn,
    Config,
    DataVersion,
    MetadataValue,
    Output,
    asset,
    asset_check,
)
from PIL import Image
from scipy.ndimage import gaussian_filter
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from assets.image_hashes import open_reduced_grayscale
from core.constants import NEW_WHALE  # noqa: E402
from core.digests import content_version
from core.parallel import parallel_map
from core.profiles import asset_version
from core.reporting import figure_metadata, image_metadata, table_metadata
from core.resources import FlukeData

GROUP_COLUMNS = ["image", "split", "group", "representative", "label"]
ALIAS_COLUMNS = ["label", "canonical"]
MATCH_COLUMNS = ["image", "train_image", "label", "distance"]
PAIR_COLUMNS = ["a", "b", "distance"]


@dataclass(frozen=True)
class DedupSettings:
    max_distance: int = 12
    """Candidate pairs: pHash Hamming distance <= this (of 64 bits). Crops of up to 4% per side moved the pHash
    of generated photos by at most 12 bits (99% by <= 10); re-encoding and resizing by <= 2."""
    thumbnail_side: int = 64
    """Side (px) of the grayscale thumbnail (aspect squashed) a candidate pair is verified on."""
    coarse_side: int = 16
    """Side (px) of the blurred views the coarse crop search correlates."""
    min_coarse: float = 0.85
    """Best coarse correlation below which a pair is rejected without the fine search."""
    fine_side: int = 64
    """Side (px) of the detail (high-pass) views the refined alignment and the verdict use."""
    max_crop: float = 0.08
    """Largest crop per image side (fraction) the verification undoes."""
    min_similarity: float = 0.87
    """Correlation of the aligned detail views above which a candidate is a duplicate."""


# ---------------------------------------------------------------------------------------------------------------
# plain functions: candidates


def hashes_to_codes(phashes: pd.Series | list[str]) -> np.ndarray:
    """Hex pHashes as an (N, bytes) uint8 array, the layout faiss's binary indexes take."""
    return np.array(
        [np.frombuffer(bytes.fromhex(h), dtype=np.uint8) for h in phashes], dtype=np.uint8
    ).reshape(len(phashes), -1)


def candidate_pairs(codes: np.ndarray, max_distance: int) -> pd.DataFrame:
    """All pairs (a < b) whose codes are within `max_distance` bits, by a faiss binary range search."""
    if len(codes) < 2:
        return pd.DataFrame({c: pd.Series(dtype=np.int64) for c in PAIR_COLUMNS})
    index = faiss.IndexBinaryFlat(codes.shape[1] * 8)
    index.add(codes)
    # faiss keeps results with distance strictly below the radius.
    limits, distances, labels = index.range_search(codes, max_distance + 1)
    queries = np.repeat(np.arange(len(codes)), np.diff(limits.astype(np.int64)))
    keep = queries < labels
    pairs = pd.DataFrame(
        {
            "a": queries[keep].astype(np.int64),
            "b": labels[keep].astype(np.int64),
            "distance": distances[keep].astype(np.int64),
        }
    )
    return pairs.sort_values(["a", "b"]).reset_index(drop=True)


# ---------------------------------------------------------------------------------------------------------------
# plain functions: pixel-level verification


def load_thumbnail(path: str, side: int = 64) -> np.ndarray:
    """A side x side uint8 grayscale thumbnail (aspect squashed), decoded at reduced scale."""
    image = open_reduced_grayscale(Path(path), 2 * side)
    return np.asarray(image.resize((side, side), Image.BILINEAR, reducing_gap=2.0), dtype=np.uint8)


def prepare_thumbnail(thumbnail: np.ndarray) -> np.ndarray:
    """(2, side, side) float32: the plain thumbnail and its detail (what a Gaussian blur removes: the fluke's
    pattern and edges, not the sky-and-sea gradient that different photos share)."""
    plain = np.asarray(thumbnail, dtype=np.float32)
    detail = plain - gaussian_filter(plain, plain.shape[0] / 16, truncate=3.0)
    return np.stack([plain, detail])


def load_prepared_thumbnail(path: str, side: int = 64) -> np.ndarray:
    return prepare_thumbnail(load_thumbnail(path, side))


def load_thumbnails(paths: list[str], side: int = 64, workers: int | None = None) -> list[np.ndarray]:
    """`load_thumbnail` of many photos over processes."""
    return parallel_map(partial(load_thumbnail, side=side), paths, workers=workers)


def _area_weights(low: np.ndarray, high: np.ndarray, size: int, side: int) -> np.ndarray:
    """(K, side, size) float32 matrices that average [low, high) of a length-`size` axis into `side` cells
    (area resampling, so shrinking does not alias)."""
    width = (high - low)[:, None] / side
    starts = low[:, None] + width * np.arange(side)[None, :]
    ends = starts + width
    pixel = np.arange(size)[None, None, :]
    overlap = np.minimum(ends[..., None], pixel + 1) - np.maximum(starts[..., None], pixel)
    return (np.clip(overlap, 0.0, None) / width[..., None]).astype(np.float32)


def _box_weights(boxes: np.ndarray, size: int, side: int) -> tuple[np.ndarray, np.ndarray]:
    """Row weights (K*side, size) and transposed column weights (K, size, side) for boxes of a square image."""
    rows = _area_weights(boxes[:, 1], boxes[:, 3], size, side).reshape(len(boxes) * side, size)
    cols = np.ascontiguousarray(_area_weights(boxes[:, 0], boxes[:, 2], size, side).transpose(0, 2, 1))
    return rows, cols


def _views(image: np.ndarray, weights: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Each box (given by its `_box_weights`) of `image` resampled, zero-mean and unit-norm: (K, side*side)."""
    rows, cols = weights
    count, side = cols.shape[0], cols.shape[2]
    # One 2-D product for the rows, then contiguous batched products: both run in BLAS.
    views = np.matmul((rows @ image).reshape(count, side, -1), cols).reshape(count, -1)
    views -= views.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(views, axis=1, keepdims=True)
    return views / np.maximum(norms, 1e-6)


def _unit(pixels: np.ndarray) -> np.ndarray:
    flat = pixels.reshape(-1) - pixels.mean()
    return flat / max(float(np.linalg.norm(flat)), 1e-6)


@lru_cache(maxsize=8)
def _grid_weights(size: int, side: int, max_crop: float) -> tuple[np.ndarray, np.ndarray]:
    """Weights of the coarse crop grid: boxes removing 0..max_crop of each side in steps of max_crop / 2."""
    steps = [0.0, max_crop / 2, max_crop]
    per_axis = [(lo * size, (1 - hi) * size) for lo in steps for hi in steps]
    boxes = np.array([(x0, y0, x1, y1) for x0, x1 in per_axis for y0, y1 in per_axis], dtype=np.float64)
    return boxes, *_box_weights(boxes, size, side)


def _shrink(image: np.ndarray, factor: int) -> np.ndarray:
    """Average factor x factor blocks (the side must divide)."""
    side = image.shape[0] // factor
    return image.reshape(side, factor, side, factor).mean(axis=(1, 3))


def aligned_similarity(
    first: np.ndarray, second: np.ndarray, settings: "DedupSettings | None" = None
) -> tuple[float, float]:
    """(similarity, best coarse score) of two prepared thumbnails (`prepare_thumbnail`); see
    `thumbnail_similarity`."""
    settings = settings or DedupSettings()
    side = first.shape[1]
    fine = [_unit(t[1]) for t in (first, second)]
    best = float(fine[0] @ fine[1])
    if best >= settings.min_similarity or settings.max_crop <= 0:
        return best, 1.0
    # Coarse: every grid crop of either photo against the other whole, on small blurred views.
    factor = max(1, side // (2 * settings.coarse_side))
    small = [_shrink(t[0], factor) for t in (first, second)]
    boxes, rows, cols = _grid_weights(small[0].shape[0], settings.coarse_side, settings.max_crop)
    coarse = (float("-inf"), 0, boxes[0])
    for which in (0, 1):
        whole = _unit(_shrink(small[1 - which], small[0].shape[0] // settings.coarse_side))
        scores = _views(small[which], (rows, cols)) @ whole
        if scores.max() > coarse[0]:
            coarse = (float(scores.max()), which, boxes[int(scores.argmax())] * factor)
    coarse_score, which, box = coarse
    if coarse_score < settings.min_coarse:
        return best, coarse_score
    # Fine: coordinate search in 1% steps on the detail views, from the best coarse crop.
    cropped, other = first[1] if which == 0 else second[1], fine[1 - which]
    score = float(_views(cropped, _box_weights(box[None, :], side, side))[0] @ other)
    smallest = (1 - 2 * settings.max_crop - 0.02) * side
    for step in (0.01, 0.005):
        moves = np.concatenate([np.eye(4), -np.eye(4)]) * step * side
        while score < settings.min_similarity:
            trials = np.clip(box[None, :] + moves, 0.0, side)
            trials = trials[
                (trials[:, 2] - trials[:, 0] >= smallest) & (trials[:, 3] - trials[:, 1] >= smallest)
            ]
            if not len(trials):
                break
            scores = _views(cropped, _box_weights(trials, side, side)) @ other
            if scores.max() <= score:
                break
            score, box = float(scores.max()), trials[int(scores.argmax())]
    return max(best, score), coarse_score


def thumbnail_similarity(
    first: np.ndarray, second: np.ndarray, settings: "DedupSettings | None" = None
) -> float:
    """How surely `second` is a re-encoded, resized or slightly cropped copy of `first` (or the reverse):
    the correlation of their detail views after undoing the crop, in [-1, 1]. Takes thumbnails
    (`load_thumbnail`) or prepared thumbnails (`prepare_thumbnail`).

    The crop is found coarse to fine: a grid of crops of either photo against the other on small blurred
    views (a pair whose best coarse match stays below `min_coarse` is rejected there), then a coordinate
    search in 1% and then 0.5% steps on the detail views. The search stops once the correlation reaches `min_similarity`:
    a verdict needs no better alignment.
    """
    first, second = (t if t.ndim == 3 else prepare_thumbnail(t) for t in (first, second))
    return aligned_similarity(first, second, settings)[0]


def _chunk_similarities(
    chunk: tuple[dict[int, np.ndarray], list[tuple[int, int]]], settings: "DedupSettings"
) -> list[float]:
    thumbnails, pairs = chunk
    # The products are tiny: a multi-threaded BLAS spends far more on waking threads than on the work
    # (17x slower measured on 2 busy cores), so each chunk runs on one BLAS thread.
    with _one_blas_thread():
        prepared = {index: prepare_thumbnail(thumbnail) for index, thumbnail in thumbnails.items()}
        return [aligned_similarity(prepared[a], prepared[b], settings)[0] for a, b in pairs]


def verify_pairs(
    pairs: pd.DataFrame,
    thumbnails: dict[int, np.ndarray],
    settings: DedupSettings,
    workers: int | None = None,
    chunk_pairs: int = 256,
) -> pd.DataFrame:
    """`pairs` with a `similarity` column and `verified` (similarity >= settings.min_similarity).

    `thumbnails` maps a pair's row numbers to `load_thumbnail` thumbnails; each chunk of pairs ships only
    the (small, uint8) thumbnails it needs to its process.
    """
    edges = list(zip(pairs["a"].tolist(), pairs["b"].tolist()))
    chunks = []
    for start in range(0, len(edges), chunk_pairs):
        part = edges[start : start + chunk_pairs]
        needed = {index for edge in part for index in edge}
        chunks.append(({index: thumbnails[index] for index in needed}, part))
    results = parallel_map(
        partial(_chunk_similarities, settings=settings), chunks, workers=workers, chunksize=1
    )
    verified = pairs.copy()
    verified["similarity"] = np.asarray([value for chunk in results for value in chunk], dtype=np.float64)
    verified["verified"] = verified["similarity"] >= settings.min_similarity
    return verified


def _one_blas_thread():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: only speed depends on it
        return nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


# ---------------------------------------------------------------------------------------------------------------
# plain functions: groups, aliases, test matches


def component_labels(count: int, pairs: pd.DataFrame) -> np.ndarray:
    """Connected component of each of `count` nodes given edges a-b (union-find by scipy)."""
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    graph = coo_matrix(
        (np.ones(len(pairs), dtype=np.int8), (pairs["a"].to_numpy(), pairs["b"].to_numpy())),
        shape=(count, count),
    )
    _, labels = connected_components(graph, directed=False)
    return labels


def choose_representatives(images: pd.DataFrame, components: np.ndarray) -> np.ndarray:
    """Per row: is it its group's representative? Train over test, known id over new_whale, most pixels, largest
    file, then name: the photo a training set keeps."""
    order = pd.DataFrame(
        {
            "row": np.arange(len(images)),
            "component": components,
            "is_test": images["split"].to_numpy() != "train",
            "is_new_whale": images["label"].fillna(NEW_WHALE).to_numpy() == NEW_WHALE,
            "pixels": -(images["width"].to_numpy(np.int64) * images["height"].to_numpy(np.int64)),
            "bytes": -images["bytes"].to_numpy(np.int64),
            "image": images["image"].to_numpy(),
        }
    ).sort_values(["component", "is_test", "is_new_whale", "pixels", "bytes", "image"], kind="stable")
    chosen = np.zeros(len(images), dtype=bool)
    chosen[order.drop_duplicates("component")["row"].to_numpy()] = True
    return chosen


def label_aliases(images: pd.DataFrame, components: np.ndarray) -> pd.DataFrame:
    """(label, canonical) for every known id that a duplicate group joins to another; the id with most train
    photos (then the alphabetically first) is canonical."""
    train = pd.DataFrame(
        {"component": components, "split": images["split"].to_numpy(), "label": images["label"].to_numpy()}
    )
    train = train[(train["split"] == "train") & train["label"].notna() & (train["label"] != NEW_WHALE)]
    photos = train["label"].value_counts()
    per_group = train.drop_duplicates(["component", "label"])
    mixed = per_group[per_group.duplicated("component", keep=False)]
    if mixed.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in ALIAS_COLUMNS})
    names = sorted(mixed["label"].unique())
    position = {name: i for i, name in enumerate(names)}
    first = mixed.drop_duplicates("component").set_index("component")["label"]
    edges = pd.DataFrame(
        {
            "a": mixed["component"].map(first).map(position).to_numpy(),
            "b": mixed["label"].map(position).to_numpy(),
        }
    )
    label_components = component_labels(len(names), edges)
    rows = []
    for component in np.unique(label_components):
        members = [names[i] for i in np.flatnonzero(label_components == component)]
        canonical = min(members, key=lambda name: (-int(photos[name]), name))
        rows += [(name, canonical) for name in members if name != canonical]
    return pd.DataFrame(rows, columns=ALIAS_COLUMNS).sort_values("label").reset_index(drop=True)


def canonical_labels(labels: pd.Series, aliases: pd.DataFrame) -> pd.Series:
    """Labels with aliases replaced by their canonical id (None and new_whale pass through)."""
    mapping = dict(zip(aliases["label"], aliases["canonical"]))
    return labels.map(lambda label: mapping.get(label, label))


def group_table(images: pd.DataFrame, components: np.ndarray, aliases: pd.DataFrame) -> pd.DataFrame:
    """One row per photo: its group, whether it represents the group, and the group's (canonical) label.

    A group's label is its known id if any train member has one, `new_whale` if its train members are all
    new_whale, and None for a group of test photos only. Groups are numbered by their representative's name.
    """
    representative = choose_representatives(images, components)
    canonical = canonical_labels(images["label"], aliases).to_numpy()
    frame = pd.DataFrame(
        {
            "image": images["image"].to_numpy(),
            "split": images["split"].to_numpy(),
            "component": components,
            "representative": representative,
            "canonical": canonical,
        }
    )
    is_train = frame["split"] == "train"
    known = frame[is_train & frame["canonical"].notna() & (frame["canonical"] != NEW_WHALE)]
    group_label = pd.Series(NEW_WHALE, index=frame.loc[is_train, "component"].unique(), dtype=object)
    group_label.update(known.drop_duplicates("component").set_index("component")["canonical"])
    frame["label"] = frame["component"].map(group_label)
    frame["label"] = frame["label"].astype(object).where(frame["label"].notna(), None)
    reps = frame[frame["representative"]].sort_values(["split", "image"])
    number = pd.Series(np.arange(len(reps), dtype=np.int64), index=reps["component"].to_numpy())
    frame["group"] = frame["component"].map(number).astype(np.int64)
    return frame[GROUP_COLUMNS].sort_values(["group", "split", "image"]).reset_index(drop=True)


def test_matches(groups: pd.DataFrame, phashes: dict[tuple[str, str], str]) -> pd.DataFrame:
    """Each test photo in a group with train photos, the nearest train member (pHash bits) and the group's label.

    `phashes` maps (image, split) to the photo's hex pHash.
    """
    mixed = groups.groupby("group")["split"].transform(lambda s: (s == "train").any() and (s == "test").any())
    rows = []
    for _, members in groups[mixed].groupby("group"):
        train = members[members["split"] == "train"].sort_values(
            ["representative", "image"], ascending=[False, True]
        )
        train_codes = hashes_to_codes([phashes[(i, "train")] for i in train["image"]])
        for image, label in members.loc[members["split"] == "test", ["image", "label"]].itertuples(
            index=False
        ):
            code = hashes_to_codes([phashes[(image, "test")]])
            bits = np.unpackbits(np.bitwise_xor(train_codes, code), axis=1).sum(axis=1)
            nearest = int(np.argmin(bits))
            rows.append((image, train["image"].iloc[nearest], label, int(bits[nearest])))
    table = pd.DataFrame(rows, columns=MATCH_COLUMNS)
    table["distance"] = table["distance"].astype(np.int64)
    return table.sort_values("image").reset_index(drop=True)


def find_duplicates(
    images: pd.DataFrame,
    hashes: pd.DataFrame,
    root: Path,
    settings: DedupSettings = DedupSettings(),
    workers: int | None = None,
) -> tuple[dict[str, pd.DataFrame], dict]:
    """The whole stage on plain tables: returns ({groups, aliases, test_matches}, details).

    `details` holds the candidate pairs with their similarity and verdict, and timings.
    """
    timings: dict[str, float] = {}
    started = time.perf_counter()
    table = images.merge(
        hashes[["image", "split", "phash"]], on=["image", "split"], how="inner", validate="1:1"
    )
    table = table.sort_values(["split", "image"], kind="stable").reset_index(drop=True)
    codes = hashes_to_codes(table["phash"])
    pairs = candidate_pairs(codes, settings.max_distance)
    timings["search_seconds"] = time.perf_counter() - started

    started = time.perf_counter()
    involved = np.unique(pairs[["a", "b"]].to_numpy().reshape(-1))
    paths = [str(Path(root) / table["path"].iloc[i]) for i in involved]
    thumbnails = dict(
        zip(involved.tolist(), load_thumbnails(paths, settings.thumbnail_side, workers=workers))
    )
    checked = verify_pairs(pairs, thumbnails, settings, workers=workers)
    timings["verify_seconds"] = time.perf_counter() - started

    started = time.perf_counter()
    verified = checked[checked["verified"]]
    components = component_labels(len(table), verified)
    aliases = label_aliases(table, components)
    groups = group_table(table, components, aliases)
    matches = test_matches(groups, dict(zip(zip(table["image"], table["split"]), table["phash"])))
    timings["group_seconds"] = time.perf_counter() - started

    checked = checked.assign(
        image_a=table["image"].to_numpy()[checked["a"].to_numpy()],
        image_b=table["image"].to_numpy()[checked["b"].to_numpy()],
        path_a=table["path"].to_numpy()[checked["a"].to_numpy()],
        path_b=table["path"].to_numpy()[checked["b"].to_numpy()],
    )
    value = {"groups": groups, "aliases": aliases, "test_matches": matches}
    return value, {"pairs": checked, "thumbnails_loaded": len(involved), **timings}


# ---------------------------------------------------------------------------------------------------------------
# plain functions: statistics and ground truth


def duplicate_pairs(
    groups: pd.DataFrame, image_column: str = "image", group_column: str = "group"
) -> set[tuple]:
    """Every unordered pair of photos that share a group."""
    pairs: set[tuple] = set()
    for _, members in groups.groupby(group_column):
        names = sorted(members[image_column])
        pairs.update((a, b) for i, a in enumerate(names) for b in names[i + 1 :])
    return pairs


def precision_recall(groups: pd.DataFrame, truth: pd.DataFrame) -> dict[str, float | int]:
    """Pairwise precision and recall of the found groups against true groups (`duplicates.csv`: Image, group),
    on the photos both tables hold."""
    truth = truth.rename(columns={"Image": "image"})
    # The truth may list only photos that have duplicates; found pairs are counted over every photo.
    truth = truth[truth["image"].isin(set(groups["image"]))]
    found = duplicate_pairs(groups)
    true = duplicate_pairs(truth)
    hits = len(found & true)
    return {
        "true_pairs": len(true),
        "found_pairs": len(found),
        "correct_pairs": hits,
        "precision": round(hits / len(found), 4) if found else 1.0,
        "recall": round(hits / len(true), 4) if true else 1.0,
    }


def group_statistics(groups: pd.DataFrame, aliases: pd.DataFrame, matches: pd.DataFrame) -> dict[str, int]:
    sizes = groups["group"].value_counts()
    multi = groups[groups["group"].isin(sizes[sizes > 1].index)]
    train = groups[groups["split"] == "train"]
    splits_per_group = multi.groupby("group")["split"].nunique()
    return {
        "photos": int(len(groups)),
        "duplicate_groups": int((sizes > 1).sum()),
        "photos_in_duplicate_groups": int(len(multi)),
        "largest_group": int(sizes.max()) if len(sizes) else 0,
        "train_photos_removed": int(len(train) - train["group"].nunique()),
        "cross_split_groups": int((splits_per_group > 1).sum()),
        "test_matches": int(len(matches)),
        "label_aliases": int(len(aliases)),
    }


def pairs_contact_sheet(pairs: pd.DataFrame, root: Path, count: int = 6, height: int = 96) -> Image.Image:
    """A few verified pairs side by side, one pair per row, for the metadata."""
    rows = []
    for path_a, path_b in pairs[["path_a", "path_b"]].head(count).itertuples(index=False):
        row = []
        for rel in (path_a, path_b):
            with Image.open(Path(root) / rel) as image:
                image.draft("RGB", (height, height))
                image = image.convert("RGB")
                row.append(image.resize((max(1, image.width * height // image.height), height)))
        rows.append(row)
    width = max((sum(im.width for im in row) + 8 for row in rows), default=1)
    sheet = Image.new("RGB", (width, max(1, len(rows) * (height + 4))), "white")
    for r, row in enumerate(rows):
        x = 0
        for image in row:
            sheet.paste(image, (x, r * (height + 4)))
            x += image.width + 8
    return sheet


# ---------------------------------------------------------------------------------------------------------------
# Dagster


class DuplicateGroupsConfig(Config):
    max_distance: int = 12
    """pHash Hamming distance (bits of 64) within which a pair becomes a candidate."""
    min_similarity: float = 0.87
    """Correlation of the aligned detail views (64 px, high-pass) a candidate needs to count as a duplicate."""
    max_crop: float = 0.08
    """Largest crop per side (fraction) the verification undoes."""
    workers: int = 0
    """Processes for thumbnail decoding; 0 uses FLUKEID_WORKERS or every core."""


@asset(
    code_version=asset_version("duplicate_groups", "duplicate_groups-1"),
    group_name="dedup",
    description="Groups of duplicate photos (faiss pHash search + pixel check), label aliases, test photos that "
    "duplicate train photos.",
)
def duplicate_groups(
    context: AssetExecutionContext,
    config: DuplicateGroupsConfig,
    raw_images: dict,
    image_hashes: pd.DataFrame,
    data: FlukeData,
) -> Output[dict]:
    settings = DedupSettings(
        max_distance=config.max_distance, min_similarity=config.min_similarity, max_crop=config.max_crop
    )
    started = time.perf_counter()
    value, details = find_duplicates(
        raw_images["images"], image_hashes, data.root, settings, workers=config.workers or None
    )
    seconds = time.perf_counter() - started
    groups, aliases, matches = value["groups"], value["aliases"], value["test_matches"]
    pairs = details["pairs"]
    stats = group_statistics(groups, aliases, matches)
    context.log.info(
        f"{stats['duplicate_groups']} duplicate groups, {stats['label_aliases']} aliases, "
        f"{stats['test_matches']} test matches in {seconds:.1f}s"
    )

    def distance_histogram(ax):
        bins = np.arange(settings.max_distance + 2) - 0.5
        ax.hist(
            [pairs.loc[pairs["verified"], "distance"], pairs.loc[~pairs["verified"], "distance"]],
            bins=bins,
            stacked=True,
            label=["verified duplicate", "rejected by pixel check"],
            color=["#33658a", "#f6ae2d"],
        )
        ax.set_yscale("log")  # the few true duplicates sit under thousands of near misses
        ax.set_xlabel("pHash Hamming distance of the pair (bits of 64)")
        ax.set_ylabel("candidate pairs (log scale)")
        ax.legend(fontsize=8)

    metadata: dict = {
        **stats,
        "candidate_pairs": int(len(pairs)),
        "verified_pairs": int(pairs["verified"].sum()),
        "rejected_pairs": int((~pairs["verified"]).sum()),
        "hamming_histogram": figure_metadata(
            distance_histogram,
            f"Which near-identical hashes are real duplicates? {int(pairs['verified'].sum())} of "
            f"{len(pairs)} candidate pairs verified",
        ),
        "seconds": round(seconds, 2),
        "search_seconds": round(details["search_seconds"], 3),
        "verify_seconds": round(details["verify_seconds"], 3),
        "images_per_second": round(len(groups) / max(seconds, 1e-9), 1),
        "aliases": table_metadata(aliases),
        "test_matches_sample": table_metadata(matches),
    }
    shown = pairs[pairs["verified"]].sort_values("distance", ascending=False)
    if len(shown):
        metadata["duplicate_pairs"] = image_metadata(
            pairs_contact_sheet(shown, data.root),
            "Are the merged photos really the same picture? Verified pairs, least similar hashes first",
        )
        metadata["hardest_verified_pairs"] = table_metadata(
            shown[["image_a", "image_b", "distance", "similarity"]].round(3), max_rows=10
        )
    rejected = pairs[~pairs["verified"]].sort_values("similarity", ascending=False)
    if len(rejected):
        metadata["closest_rejected_pairs"] = table_metadata(
            rejected[["image_a", "image_b", "distance", "similarity"]].round(3), max_rows=10
        )
    truth_path = data.root / "duplicates.csv"
    if truth_path.exists():
        # Ground truth only the synthetic generator writes; real data has none.
        scores = precision_recall(groups, pd.read_csv(truth_path, dtype={"Image": str}))
        metadata.update({f"truth_{k}": v for k, v in scores.items()})
        metadata["truth_source"] = MetadataValue.path(str(truth_path))
    return Output(value, metadata=metadata, data_version=DataVersion(content_version(value)))


@asset_check(
    asset=duplicate_groups,
    additional_ins={"raw_images": AssetIn("raw_images")},
    description="No duplicate group mixes two known ids unless they are recorded as aliases of one another.",
)
def duplicate_groups_aliases_recorded(raw_images: dict, duplicate_groups: dict) -> AssetCheckResult:
    groups, aliases = duplicate_groups["groups"], duplicate_groups["aliases"]
    images = raw_images["images"][["image", "split", "label"]].rename(columns={"label": "own_label"})
    members = groups.merge(images, on=["image", "split"], how="left")
    known = members[
        (members["split"] == "train") & members["own_label"].notna() & (members["own_label"] != NEW_WHALE)
    ]
    known = known.assign(canonical=canonical_labels(known["own_label"], aliases))
    conflicting = known.groupby("group")["canonical"].nunique()
    bad_groups = conflicting[conflicting > 1].index
    return AssetCheckResult(
        passed=len(bad_groups) == 0,
        metadata={
            "groups_with_unrecorded_aliases": int(len(bad_groups)),
            "examples": table_metadata(
                known[known["group"].isin(bad_groups)][["group", "image", "own_label"]]
            ),
        },
    )
