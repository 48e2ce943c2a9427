"""A researcher's review decisions, read back as labels (issue 15).

Follow one decision: the review page appends `image,same,w_1a2b3c4,...` to the decisions file beside the data
(`core.decisions`, never train.csv). Here the file's standing decisions (after undos) are checked against the
manifest: a confirmed match (`same`) or a new individual (`new`) on an accepted test photo adds a labelled train
row for that photo (its path stays `test/...`), so it takes part in training and the gallery like any train
photo; the test row stays, so the submission still answers for it. `unsure` is recorded and changes nothing.
A decision that cannot be applied (unknown photo, unknown label, a created id that collides with a known one) and
a malformed line become rejected rows with their reason, never a failed run.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from core.artifacts import REVIEW_COLUMNS
from core.constants import NEW_WHALE
from core.decisions import effective_decisions, read_decisions

SPLIT = "reviews"  # the `split` of a rejected decision
REVIEW_REASONS = (
    "malformed_decision",
    "unknown_review_photo",
    "unknown_review_label",
    "review_label_collision",
    "review_name_in_train",
)


def apply_reviews(
    manifest: pd.DataFrame, decisions_file: Path | None
) -> tuple[pd.DataFrame, pd.DataFrame, list[dict]]:
    """(manifest with a train row per decided photo, the standing decisions applied, rejected decisions).

    `decisions_file` may be None or missing: nothing is decided yet."""
    empty = pd.DataFrame(columns=REVIEW_COLUMNS)
    if decisions_file is None or not Path(decisions_file).exists():
        return manifest, empty, []
    rows, problems = read_decisions(Path(decisions_file))
    rejected = [
        _rejected(str(p.get("text", ""))[:60], "", "malformed_decision", f"line {p['line']}: {p['reason']}")
        for p in problems
    ]
    standing = effective_decisions(rows)
    if standing.empty:
        return manifest, empty, rejected
    test = manifest[manifest["split"] == "test"].set_index("image")
    train = manifest[manifest["split"] == "train"]
    known = set(train["label"].dropna()) - {NEW_WHALE}
    train_names = set(train["image"])
    created = {label: image for image, decision, label in _triples(standing) if decision == "new" and label}
    applied, added = [], []
    for record in standing.to_dict("records"):
        image, decision, label = record["image"], record["decision"], record["label"] or ""
        why = _problem(image, decision, label, test.index, train_names, known, created)
        if why:
            rejected.append(_rejected(image, label, *why))
            continue
        applied.append({column: record.get(column, "") for column in REVIEW_COLUMNS})
        if decision in ("same", "new"):
            added.append({**test.loc[image].to_dict(), "image": image, "split": "train", "label": label})
    if added:
        manifest = pd.concat([manifest, pd.DataFrame(added)[manifest.columns]], ignore_index=True)
        manifest = manifest.astype(
            {"width": "int64", "height": "int64", "bytes": "int64", "is_grayscale": bool}
        )
        manifest = manifest.sort_values(["split", "image"], kind="stable").reset_index(drop=True)
    return manifest, pd.DataFrame(applied, columns=REVIEW_COLUMNS), rejected


def _problem(
    image: str,
    decision: str,
    label: str,
    test_images: pd.Index,
    train_names: set[str],
    known: set[str],
    created: dict[str, str],
) -> tuple[str, str] | None:
    """(reason, detail) when a standing decision cannot be applied, else None."""
    if image not in test_images:
        return "unknown_review_photo", f"{image} is not an accepted test photo"
    if decision == "unsure":
        return None
    if image in train_names:
        return "review_name_in_train", f"train/ already holds a photo named {image}"
    if decision == "same" and label not in known and label not in created:
        return "unknown_review_label", f"{label!r} is neither a known individual nor one a review created"
    if decision == "new" and label in known:
        return "review_label_collision", f"the new id {label} is already a known individual's"
    return None


def _triples(standing: pd.DataFrame):
    return zip(standing["image"], standing["decision"], standing["label"].fillna(""))


def _rejected(image: str, label: str, reason: str, detail: str) -> dict:
    return {"image": image, "split": SPLIT, "label": label or None, "reason": reason, "detail": detail}


def with_files(version: str, paths: list[Path]) -> str:
    """The data folder's version with the bytes of optional side files folded in (the decisions file, ...), only
    for those that exist: a folder without them keeps the version it always had."""
    existing = [Path(path) for path in paths if Path(path).is_file()]
    if not existing:
        return version
    digest = hashlib.sha256(version.encode())
    for path in existing:
        digest.update(f"\n{path.name}\n".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:20]


def with_rejections(rejected: pd.DataFrame, more: list[dict]) -> pd.DataFrame:
    """`rejected` with `more` rows, sorted by (split, image) as every rejected table is."""
    if not more:
        return rejected
    table = pd.concat([rejected, pd.DataFrame(more, columns=rejected.columns)], ignore_index=True)
    return table.sort_values(["split", "image"], kind="stable").reset_index(drop=True)


def review_counts(reviews: pd.DataFrame | None) -> dict[str, int]:
    """What `raw_images` reports of the reviews: photos decided, by decision."""
    reviews = reviews if reviews is not None else pd.DataFrame(columns=REVIEW_COLUMNS)
    counts = reviews["decision"].value_counts()
    return {
        "reviewed_photos": int(len(reviews)),
        "reviewed_same": int(counts.get("same", 0)),
        "reviewed_new": int(counts.get("new", 0)),
        "reviewed_unsure": int(counts.get("unsure", 0)),
    }
