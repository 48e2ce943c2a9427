"""Groups of duplicate photos, label aliases, and test photos that duplicate train photos.

Verified pairs (`pairs.py`) are joined into groups (connected components). A group with train photos of two known
ids shows those ids to be one individual (an alias); a `new_whale` photo in a group with a known id takes that
id; a test photo in a group with train photos reveals its label.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from assets.dedup.pairs import DedupSettings, candidate_pairs, hashes_to_codes, load_thumbnails, verify_pairs
from core.artifacts import ALIAS_COLUMNS, GROUP_COLUMNS, MATCH_COLUMNS, DuplicateGroups
from core.constants import NEW_WHALE


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
    settings: DedupSettings | None = None,
    workers: int | None = None,
) -> tuple[DuplicateGroups, dict]:
    """The whole stage on plain tables: returns (DuplicateGroups, details).

    `details` holds the candidate pairs with their similarity and verdict, and timings.
    """
    settings = settings or DedupSettings()
    timings: dict[str, float] = {}
    started = time.perf_counter()
    table = images.merge(
        hashes[["image", "split", "phash"]], on=["image", "split"], how="inner", validate="1:1"
    )
    table = table.sort_values(["split", "image"], kind="stable").reset_index(drop=True)
    codes = hashes_to_codes(table["phash"])
    pairs = candidate_pairs(codes, settings.max_distance, settings.max_neighbours)
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
    value = DuplicateGroups(groups=groups, aliases=aliases, test_matches=matches)
    return value, {"pairs": checked, "thumbnails_loaded": len(involved), **timings}


def duplicate_pairs(
    groups: pd.DataFrame, image_column: str = "image", group_column: str = "group"
) -> set[tuple]:
    """Every unordered pair of photos that share a group."""
    pairs: set[tuple] = set()
    for _, members in groups.groupby(group_column):
        names = sorted(members[image_column])
        pairs.update((a, b) for i, a in enumerate(names) for b in names[i + 1 :])
    return pairs


def group_statistics(groups: pd.DataFrame, aliases: pd.DataFrame, matches: pd.DataFrame) -> dict[str, int]:
    """Counts of the artifact: groups, photos in them, train photos a training set drops, aliases, matches."""
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


def alias_conflicts(images: pd.DataFrame, value: DuplicateGroups) -> pd.DataFrame:
    """Train photos (group, image, own_label) of the groups that hold two known ids not recorded as aliases of
    one another; empty when the aliases account for every mixed group. `images` is `raw_images["images"]`."""
    groups, aliases = value["groups"], value["aliases"]
    own = images[["image", "split", "label"]].rename(columns={"label": "own_label"})
    members = groups.merge(own, on=["image", "split"], how="left")
    known = members[
        (members["split"] == "train") & members["own_label"].notna() & (members["own_label"] != NEW_WHALE)
    ]
    known = known.assign(canonical=canonical_labels(known["own_label"], aliases))
    conflicting = known.groupby("group")["canonical"].nunique()
    bad_groups = conflicting[conflicting > 1].index
    return known[known["group"].isin(bad_groups)][["group", "image", "own_label"]]
