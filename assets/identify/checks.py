"""The logic of the stage's asset checks, as plain functions: each returns `passed` and the figures to show.

The submission's score against the generator's `solution.csv` lives here, not in the asset: a real user's data
folder has no solution, so the check then passes saying "no truth file"."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd

from assets.identify.submission import (
    known_labels,
    submission_images,
    write_submission_csv,
)
from core.artifacts import SUBMISSION_COLUMNS, DuplicateGroups, GalleryIndex, RawImages
from core.constants import NEW_WHALE, TOP
from core.scoring import format_score, score_submission


def beats_frequent_whale_baseline(summary: dict) -> dict:
    """Validation MAP@5 above the new_whale + most frequent baseline, or equal to a perfect one (with nobody or
    one whale known, `new_whale` + the most frequent can already be right everywhere: it can only be matched)."""
    baseline = summary["baselines"]["new_whale_frequent"]
    return {
        "passed": bool(summary["map5"] > baseline or summary["map5"] >= baseline >= 1.0),
        "map5": summary["map5"],
        "baseline_new_whale_frequent": baseline,
    }


def labels_per_row(individuals: int | None) -> int:
    """How many labels a row must hold: five, or every label that exists (new_whale and each known individual)
    when fewer than four individuals are known. `individuals` None: not known, five."""
    return TOP if individuals is None else min(TOP, 1 + max(0, int(individuals)))


def well_formed_problems(submission: pd.DataFrame, individuals: int | None = None) -> list[str]:
    """Rows that are not five distinct, space-separated, non-empty labels (first few, with the reason). With
    `individuals` (the known individuals a row can name) below four, a row holds at least all that exist
    (`labels_per_row`) and at most five: aliases of a duplicate may add to them."""
    problems = []
    least = labels_per_row(individuals)
    wanted = f"{TOP}" if least == TOP else f"{least} to {TOP}"
    if list(submission.columns) != SUBMISSION_COLUMNS:
        problems.append(f"columns are {list(submission.columns)}, expected {SUBMISSION_COLUMNS}")
    for image, ids in zip(submission["Image"], submission["Id"]):
        labels = str(ids).split(" ")
        if not isinstance(image, str) or not image:
            problems.append(f"empty image name (Id {ids!r})")
        elif not least <= len(labels) <= TOP or any(not label for label in labels):
            problems.append(f"{image}: {ids!r} is not {wanted} labels separated by single spaces")
        elif len(set(labels)) != len(labels):
            problems.append(f"{image}: repeated label in {ids!r}")
    return problems


def well_formed(submission: pd.DataFrame, individuals: int | None = None) -> dict:
    """`well_formed_problems` as a check result; `individuals`: how many the gallery knows (None: plenty)."""
    problems = well_formed_problems(submission, individuals)
    found = {"passed": not problems, "problems": len(problems), "examples": problems[:5]}
    if individuals is not None:
        found.update(individuals=int(individuals), labels_per_row=labels_per_row(individuals))
    return found


def gallery_individuals(gallery_index: GalleryIndex) -> int:
    """The known individuals a submission row can name: those of the gallery."""
    labels = gallery_index["gallery"]["label"]
    return int(labels[labels != NEW_WHALE].nunique())


def complete(submission: pd.DataFrame, raw_images: RawImages) -> dict:
    """Every test photo (accepted or rejected) has exactly one row, and there are no other rows."""
    expected = set(submission_images(raw_images)["image"])
    counts = submission["Image"].value_counts()
    repeated = counts[counts > 1].index.tolist()
    missing = sorted(expected - set(counts.index))
    extra = sorted(set(counts.index) - expected)
    return {
        "passed": not (repeated or missing or extra),
        "rows": len(submission),
        "test_photos": len(expected),
        "missing": len(missing),
        "repeated": len(repeated),
        "extra": len(extra),
        "examples": {"missing": missing[:5], "repeated": repeated[:5], "extra": extra[:5]},
    }


def labels_known(
    submission: pd.DataFrame, gallery_index: GalleryIndex, duplicate_groups: DuplicateGroups | None
) -> dict:
    """Every predicted label is new_whale, a gallery individual or one of its recorded aliases."""
    known = known_labels(gallery_index, duplicate_groups)
    predicted = {label for ids in submission["Id"] for label in str(ids).split()}
    unknown = sorted(predicted - known)
    return {
        "passed": not unknown,
        "labels_predicted": len(predicted),
        "unknown": len(unknown),
        "examples": unknown[:5],
    }


def truth_score(submission: pd.DataFrame, solution: Path) -> dict | None:
    """`core.scoring.score_submission` of this submission against the generator's `solution.csv`; None when the
    data folder has none. Raises ValueError when the solution is of another test set."""
    if not solution.exists():
        return None
    with tempfile.TemporaryDirectory() as folder:
        written = Path(folder) / "submission.csv"
        write_submission_csv(submission, written)
        return score_submission(written, solution)


def matches_truth(submission: pd.DataFrame, solution: Path) -> dict:
    """Test MAP@5 (overall, known individuals, new_whale) against `solution`: passes, figures attached, when it
    scores; passes with "no truth file" without one; fails with `error` when the solution is of another test set
    (as before, the submission itself is not failed for it)."""
    try:
        score = truth_score(submission, solution)
    except ValueError as error:
        return {"passed": False, "solution": str(solution), "error": str(error)}
    if score is None:
        return {"passed": True, "truth": "no truth file", "solution": str(solution)}
    return {
        "passed": True,
        "solution": str(solution),
        "test_map5": round(score["map5"], 6),
        "test_map5_known": score["map5_known"],
        "test_map5_new_whale": score["map5_new_whale"],
        "test_score": format_score(score),
    }
