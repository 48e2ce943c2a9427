"""Score a Kaggle-format submission (up to five space-separated labels per image) against a solution file (one
true label per image, such as the generator's `solution.csv`): `flukeid score SUB SOLUTION`.

Either competition's files are read, each detected from its header (`core.formats`): a submission `Image,Id`
(2019) or `image,predictions` (2022), a solution `Image,Id` or `image,individual_id`; the two need not be of the
same layout. The 2022 `new_individual` is scored as `new_whale` (one unknown whale, two words).

The submission is read strictly: the first bad line raises a `ValueError` that names it and says why, so a user
finds out before uploading rather than after.
"""

from __future__ import annotations

import csv
from pathlib import Path

from core.constants import NEW_WHALE, TOP
from core.formats import NEW_INDIVIDUAL, expected_headers, layout_of_header
from core.metrics import average_precision_at_5, rank_statistics


def read_solution(solution_csv: Path) -> dict[str, str]:
    """Image -> true label (`new_individual` read as `new_whale`); extra columns (e.g. Kaggle's `Usage`) are
    ignored."""
    solution_csv = Path(solution_csv)
    with open(solution_csv, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        layout = layout_of_header(header, "solution")
        if layout is None:
            raise ValueError(
                f"{solution_csv}: line 1: expected header {expected_headers('solution')}, got {header!r}"
            )
        columns = ",".join(layout.solution_columns)
        truths: dict[str, str] = {}
        for line, fields in enumerate(reader, start=2):
            if not fields:
                continue
            if len(fields) < 2 or not fields[0].strip() or not fields[1].strip():
                raise ValueError(
                    f"{solution_csv}: line {line}: expected '{columns}', got {','.join(fields)!r}"
                )
            truths[fields[0].strip()] = scored_label(fields[1].strip())
    return truths


def scored_label(label: str) -> str:
    """The label as scoring compares it: either competition's word for an unknown whale is `new_whale`."""
    return NEW_WHALE if label == NEW_INDIVIDUAL else label


def read_submission(submission_csv: Path, known_images: set[str] | None = None) -> dict[str, list[str]]:
    """Image -> predicted labels (`new_individual` read as `new_whale`), checked line by line; raises `ValueError`
    at the first malformed line."""
    submission_csv = Path(submission_csv)
    with open(submission_csv, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise ValueError(
                f"{submission_csv}: line 1: the file is empty (expected header {expected_headers('submission')})"
            )
        layout = layout_of_header(header, "submission")
        if layout is None:
            raise ValueError(
                f"{submission_csv}: line 1: expected header {expected_headers('submission')}, "
                f"got {','.join(header)!r}"
            )
        image_column, columns = layout.submission_columns[0], ",".join(layout.submission_columns)
        rows: dict[str, list[str]] = {}
        for line, fields in enumerate(reader, start=2):
            where = f"{submission_csv}: line {line}"
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                raise ValueError(f"{where}: blank line")
            if len(fields) != 2:
                raise ValueError(
                    f"{where}: expected 2 fields '{columns}', got {len(fields)}: {','.join(fields)!r}"
                )
            image, labels_field = fields[0].strip(), fields[1]
            labels = [scored_label(label) for label in labels_field.split()]
            if not image:
                raise ValueError(f"{where}: empty {image_column}")
            if not labels:
                raise ValueError(f"{where}: no labels for {image}")
            if len(labels) > TOP:
                raise ValueError(f"{where}: {len(labels)} labels for {image}; at most {TOP} are allowed")
            if image in rows:
                raise ValueError(f"{where}: {image} appears twice")
            if known_images is not None and image not in known_images:
                raise ValueError(f"{where}: {image} is not in the solution")
            rows[image] = labels
    return rows


def score_submission(submission_csv: Path, solution_csv: Path) -> dict:
    """MAP@5 overall, for photos of known individuals and for `new_whale` photos, with counts and hits per rank.

    Every solution image must have a submission row; a label repeated in a row counts once (Kaggle's rule).
    """
    truths = read_solution(solution_csv)
    rows = read_submission(submission_csv, known_images=set(truths))
    missing = [image for image in truths if image not in rows]
    if missing:
        raise ValueError(
            f"{submission_csv}: {len(missing)} solution images have no row (first: {missing[0]}); "
            "a complete submission has one row per test image"
        )
    images = sorted(truths)
    scores = {image: average_precision_at_5(rows[image], truths[image]) for image in images}
    known = [image for image in images if truths[image] != NEW_WHALE]
    new = [image for image in images if truths[image] == NEW_WHALE]
    per_rank = rank_statistics([rows[i] for i in images], [truths[i] for i in images])

    def mean(selection: list[str]) -> float | None:
        return sum(scores[i] for i in selection) / len(selection) if selection else None

    return {
        "map5": mean(images) or 0.0,
        "map5_known": mean(known),
        "map5_new_whale": mean(new),
        "images": len(images),
        "known_images": len(known),
        "new_whale_images": len(new),
        "hits_per_rank": [int(h) for h in per_rank["hits"]],
        "new_whale_share_per_rank": [round(float(s), 4) for s in per_rank["new_whale_share"]],
    }


def format_score(score: dict) -> str:
    def fmt(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.4f}"

    lines = [
        f"MAP@5            {fmt(score['map5'])}  ({score['images']} images)",
        f"  known          {fmt(score['map5_known'])}  ({score['known_images']} images)",
        f"  new_whale      {fmt(score['map5_new_whale'])}  ({score['new_whale_images']} images)",
    ]
    if "hits_per_rank" in score:
        lines.append("hits at rank 1-5 " + " ".join(str(h) for h in score["hits_per_rank"]))
    if "new_whale_share_per_rank" in score:
        lines.append("new_whale share  " + " ".join(f"{s:.2f}" for s in score["new_whale_share_per_rank"]))
    return "\n".join(lines)
