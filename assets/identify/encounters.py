"""Pooling the evidence of an encounter: photos of one whale taken together are identified together (issue 15).

Each test photo of the calibrated path has candidates with P(same whale) (`calibrated.probabilities` over the rows
of `calibrated.matching.evidence`). For the photos of one encounter (`raw_images["encounters"]`), each candidate
individual's probabilities across the photos are combined into one (`pool_probabilities`), P(new_whale) follows
from the pooled candidates exactly as `decision.decide` makes it from one photo's, and every photo of the encounter
gets the same five labels. A photo outside an encounter keeps its own rows untouched.

Rules (`POOLING_RULES`), for a candidate c and the encounter's photos i (photos without any candidate say nothing
and are left out of the combination; they still get the pooled labels):
- `max` (default): the best photo's probability: the encounter is as sure of c as its clearest photo of c.
- `noisy_or`: 1 - prod_i (1 - p_ic), as if each photo were an independent chance to recognise the whale.
- `mean_log_odds`: the mean over the photos of logit(p_ic); a photo that does not list c scores it at its own
  lowest candidate's probability (its evidence put c below all of them).

Measured (issue 15) on the full test evidence of two stored demo chains (seeds 5113 and 7031, scale 0.05), the
test photos of every individual with 2+ of them taken as one encounter (80 and 86 encounters, 216 and 245 photos),
MAP@5 of those photos without pooling / mean_log_odds / noisy_or / max: 0.968 / 0.970 / 0.982 / 0.986 and
0.973 / 0.980 / 0.991 / 0.992; with the true whale removed from a random 30% of the photos' candidates (a chain
that misses it on hard photos): 0.720 / 0.722 / 0.942 / 0.946 (seed 5113). Why `max`: the calibrated P(same) of
a photo whose keypoints match is already near 1, so what an encounter needs is that one good photo carries the
others, which max and noisy-OR both do; mean log-odds lets the photo that missed the whale veto it. noisy-OR also
adds up the photos' wrong candidates and multiplies P(new_whale) down with every photo: on seed 5113 the 34 photos
of new whales in encounters drop from 0.985 to 0.941 with it, to 0.971 with max (the product over the pooled
candidates, with the union of several photos' candidates, is lower than one photo's either way).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from assets.identify.calibrated import CalibratedRun
from assets.identify.decision import decide

POOLING_RULES = ("max", "noisy_or", "mean_log_odds")
DEFAULT_RULE = "max"
EPSILON = 1e-6  # probabilities are clipped to [EPSILON, 1 - EPSILON] before taking log-odds


def encounter_groups(
    images: Sequence[str], encounters: pd.DataFrame | None, split: str = "test"
) -> list[list[int]]:
    """Positions in `images` (the queries, in order) of each encounter holding two or more of them, in the order
    of their first position; photos of other splits, and encounters with one query, have nothing to pool."""
    if encounters is None or len(encounters) == 0:
        return []
    position = {image: i for i, image in enumerate(images)}
    mine = encounters[encounters["split"] == split]
    groups: dict[str, list[int]] = {}
    for image, encounter in zip(mine["image"], mine["encounter"]):
        if image in position:
            groups.setdefault(str(encounter), []).append(position[image])
    found = [sorted(set(members)) for members in groups.values()]
    return sorted((members for members in found if len(members) >= 2), key=lambda members: members[0])


def pool_probabilities(candidates: list[dict[str, float]], rule: str = DEFAULT_RULE) -> dict[str, float]:
    """One probability per label from the photos' candidates (label -> P(same whale) per photo), by `rule`."""
    if rule not in POOLING_RULES:
        raise ValueError(f"rule must be one of {POOLING_RULES}; got {rule!r}")
    photos = [photo for photo in candidates if photo]
    labels = list(dict.fromkeys(label for photo in photos for label in photo))
    if not labels:
        return {}
    p = np.zeros((len(photos), len(labels)))
    for i, photo in enumerate(photos):
        absent = min(photo.values()) if rule == "mean_log_odds" else 0.0
        p[i] = [photo.get(label, absent) for label in labels]
    p = np.clip(p, 0.0, 1.0)
    if rule == "noisy_or":
        pooled = 1.0 - np.prod(1.0 - p, axis=0)
    elif rule == "max":
        pooled = p.max(axis=0)
    else:
        q = np.clip(p, EPSILON, 1.0 - EPSILON)
        pooled = 1.0 / (1.0 + np.exp(-np.log(q / (1.0 - q)).mean(axis=0)))
    return dict(zip(labels, np.clip(pooled, 0.0, 1.0).tolist()))


@dataclass
class PooledEvidence:
    """The evidence table and probabilities with every encounter's photos given the pooled candidates."""

    evidence: pd.DataFrame
    probabilities: np.ndarray
    encounters: int
    photos: int


def pool_encounters(
    evidence: pd.DataFrame,
    probabilities: np.ndarray,
    groups: list[list[int]],
    rule: str = DEFAULT_RULE,
) -> PooledEvidence:
    """Each grouped query's rows replaced by one row per candidate of its encounter, with the pooled probability
    (the same labels in the same order for every photo, most likely first, so their decided rows are the same).
    A row keeps the photo's own evidence columns where the photo listed the label; the others are NaN: that photo
    has no evidence of its own for it. Queries outside `groups` keep their rows and probabilities as they were."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if not groups:
        return PooledEvidence(evidence, probabilities, 0, 0)
    table = evidence.assign(_p=probabilities)
    by_query = {int(q): rows for q, rows in table.groupby("query", sort=False)}
    grouped = {q for members in groups for q in members}
    columns = [column for column in evidence.columns if column not in ("query", "label")]
    pieces = [table[~table["query"].isin(grouped)]]
    for members in groups:
        photos = [by_query.get(q) for q in members]
        pooled = pool_probabilities([_best_per_label(rows) for rows in photos], rule)
        ordered = sorted(pooled, key=lambda label: (-pooled[label], label))
        for q, rows in zip(members, photos):
            own = {} if rows is None else {row["label"]: row for row in rows.to_dict("records")[::-1]}
            records = [
                {
                    "query": q,
                    "label": label,
                    **{column: own[label][column] if label in own else np.nan for column in columns},
                    "_p": pooled[label],
                }
                for label in ordered
            ]
            pieces.append(pd.DataFrame(records, columns=[*evidence.columns, "_p"]))
    merged = pd.concat([piece for piece in pieces if len(piece)], ignore_index=True)
    merged = merged.sort_values("query", kind="stable").reset_index(drop=True)
    pooled_probabilities = merged.pop("_p").to_numpy(np.float64)
    merged = merged.astype({"query": "int64"})
    return PooledEvidence(merged, pooled_probabilities, len(groups), sum(len(members) for members in groups))


def _best_per_label(rows: pd.DataFrame | None) -> dict[str, float]:
    """A photo's candidates, label -> its highest P(same) (a label listed twice counts at its best, as in
    `rank_with_new_whale`); empty for a photo without evidence."""
    best: dict[str, float] = {}
    if rows is None:
        return best
    for label, p in zip(rows["label"], rows["_p"]):
        best[label] = max(best.get(label, 0.0), float(p))
    return best


def pooled_run(
    calibrated: CalibratedRun,
    images: Sequence[str],
    encounters: pd.DataFrame | None,
    fill: Sequence[str],
    rule: str = DEFAULT_RULE,
) -> CalibratedRun:
    """The calibrated run with its encounters pooled: evidence, probabilities, rows and P(new_whale) per query
    (`decision.decide` on the pooled candidates); `matching.stats` gains `encounters_pooled` and
    `encounter_photos_pooled`. Unchanged (but for those two counts, 0) when no encounter has two queries."""
    groups = encounter_groups(images, encounters)
    matching = calibrated.matching
    pooled = pool_encounters(matching.evidence, calibrated.probabilities, groups, rule)
    stats = {
        **matching.stats,
        "encounters_pooled": pooled.encounters,
        "encounter_photos_pooled": pooled.photos,
    }
    if not groups:
        return replace(calibrated, matching=replace(matching, stats=stats))
    queries = len(images)
    rows, new_whale = decide(pooled.evidence, pooled.probabilities, queries, fill)
    last, _ = decide(pooled.evidence, pooled.probabilities, queries, fill, new_whale_last=True)
    return replace(
        calibrated,
        matching=replace(matching, evidence=pooled.evidence, stats=stats),
        probabilities=pooled.probabilities,
        rows=rows,
        new_whale=new_whale,
        rows_without_new_whale=last,
    )
