"""The review decisions file: what a researcher decided about each test photo, appended line by line.

A decision is data and is never lost: the file (default `<data>/reviews/decisions.csv`, outside `storage/`) is
only ever appended to, one whole line per decision, and an undo is one more line. Its header is
`image,decision,label,reviewer,time`:

- `same`: the photo shows the known individual `label` (a candidate's id);
- `new`: the photo shows an individual nobody knew; `label` is its new id, `new_individual_id(image)`;
- `unsure`: looked at, not decided (no label);
- `undo`: reverses that image's latest decision not yet undone (no label).

`time` is ISO-8601 UTC (`2026-12-02T01:02:03Z`); `reviewer` is free text, commas and line breaks removed.

Several writers at once (two browser tabs, two reviewers) lose nothing: each append takes an exclusive `flock`
on the file and writes its line with one `write` on an `O_APPEND` descriptor, then `fsync`s. A reader never fails
on a damaged file: each malformed line is reported with its number and the good rows are still read.
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import os
import re
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

DECISIONS = ("same", "new", "unsure", "undo")
DECISION_COLUMNS = ["image", "decision", "label", "reviewer", "time"]
HEADER = ",".join(DECISION_COLUMNS)
LABELLED = ("same", "new")  # the decisions that carry an individual's id
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z")
# Characters a field may not hold: the file is written unquoted, one line per decision.
_UNSAFE = re.compile(r'[,"\r\n]')


def new_individual_id(image: str) -> str:
    """The id of a new individual first seen on `image`: stable, so deciding the photo again gives the same id."""
    return "w_" + hashlib.sha256(f"flukeid-review:{image}".encode()).hexdigest()[:7]


def utc_time(when: datetime | None = None) -> str:
    """`when` (default now) as the file's ISO-8601 UTC text, to the second. A naive datetime is refused: its
    zone is unknown."""
    when = datetime.now(timezone.utc) if when is None else when
    if not isinstance(when, datetime):
        raise ValueError(f"when must be a datetime, got {type(when).__name__}")
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("when must be timezone-aware (e.g. datetime.now(timezone.utc))")
    return when.astimezone(timezone.utc).strftime(TIME_FORMAT)


def sanitise_reviewer(reviewer: str) -> str:
    """The reviewer's name as the file can hold it: commas, quotes and line breaks become spaces."""
    return " ".join(_UNSAFE.sub(" ", str(reviewer or "")).split())


def _check_field(name: str, value: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {type(value).__name__}")
    if _UNSAFE.search(value):
        raise ValueError(f"{name} {value!r} may not contain commas, quotes or line breaks")
    return value.strip()


def decision_record(
    image: str, decision: str, label: str = "", reviewer: str = "", when: datetime | None = None
) -> dict:
    """The validated row of one decision (ValueError saying what is wrong). A `new` decision without a label gets
    `new_individual_id(image)`."""
    image = _check_field("image", image)
    if not image:
        raise ValueError("image must be a photo name, got an empty string")
    if decision not in DECISIONS:
        raise ValueError(f"decision must be one of {', '.join(DECISIONS)}, got {decision!r}")
    label = _check_field("label", label or "")
    if decision == "new" and not label:
        label = new_individual_id(image)
    if decision == "same" and not label:
        raise ValueError(f"a 'same' decision needs the individual's label (image {image})")
    if decision not in LABELLED and label:
        raise ValueError(f"a {decision!r} decision takes no label, got {label!r}")
    return {
        "image": image,
        "decision": decision,
        "label": label,
        "reviewer": sanitise_reviewer(reviewer),
        "time": utc_time(when),
    }


def append_decision(
    path: str | os.PathLike,
    image: str,
    decision: str,
    label: str = "",
    reviewer: str = "",
    when: datetime | None = None,
) -> dict:
    """Append one decision to the file at `path` (created with its header, and its folder, when missing) and
    return the row written. Atomic against other appenders: the line is written whole or not at all."""
    record = decision_record(image, decision, label, reviewer, when)
    line = ",".join(record[column] for column in DECISION_COLUMNS) + "\n"
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # released by close
        size = os.fstat(fd).st_size
        if size == 0:  # checked under the lock, so only the first writer writes the header
            payload = HEADER + "\n" + line
        elif os.pread(fd, 1, size - 1) != b"\n":  # a file edited by hand may lack its last newline
            payload = "\n" + line
        else:
            payload = line
        data = payload.encode()
        written = os.write(fd, data)
        while written < len(data):  # a regular file takes it in one write; finish a short write all the same
            written += os.write(fd, data[written:])
        os.fsync(fd)
    finally:
        os.close(fd)
    return record


def _parse_line(text: str) -> tuple[dict | None, str]:
    """(row, "") for a well-formed data line, else (None, why it is not)."""
    fields = next(csv.reader([text]))
    if len(fields) != len(DECISION_COLUMNS):
        return None, f"expected {len(DECISION_COLUMNS)} fields ({HEADER}), found {len(fields)}"
    row = dict(zip(DECISION_COLUMNS, (field.strip() for field in fields)))
    if not row["image"]:
        return None, "no image"
    if row["decision"] not in DECISIONS:
        return None, f"unknown decision {row['decision']!r} (expected one of {', '.join(DECISIONS)})"
    if row["decision"] in LABELLED and not row["label"]:
        return None, f"a {row['decision']!r} decision without a label"
    if row["decision"] not in LABELLED and row["label"]:
        return None, f"a {row['decision']!r} decision with a label ({row['label']!r})"
    if not _TIME.fullmatch(row["time"]):
        return None, f"bad time {row['time']!r} (expected ISO-8601 UTC like 2026-12-02T01:02:03Z)"
    try:
        datetime.strptime(row["time"][:19], TIME_FORMAT[:-1])
    except ValueError:
        return None, f"bad time {row['time']!r} (not a calendar date and time)"
    return row, ""


def read_decisions(path: str | os.PathLike) -> tuple[pd.DataFrame, list[dict]]:
    """(the well-formed rows, in file order: `DECISION_COLUMNS` plus `line`, the 1-based line number; the
    problems: `{"line", "text", "reason"}` per malformed line). A missing file is an empty table; blank lines
    are skipped; a missing header is reported (the first line is still read as a row when it is one)."""
    rows: list[dict] = []
    problems: list[dict] = []
    path = Path(path)
    if path.exists():
        text = path.read_bytes().decode("utf-8", errors="replace")
        # Split on newlines only (str.splitlines also splits on form feeds and the like, shifting line numbers).
        for number, raw in enumerate(text.split("\n"), start=1):
            raw = raw.rstrip("\r")
            line = raw.strip().lstrip("\ufeff")
            if number == 1 and line.replace(" ", "").lower() == HEADER:
                continue
            if not line:
                continue
            row, why = _parse_line(line)
            if number == 1:  # no header: keep the row if it is one, and say the header is missing
                why = f"no header ({HEADER})" + (f"; {why}" if why else "")
            if why:
                problems.append({"line": number, "text": raw, "reason": why})
            if row is not None:
                rows.append({**row, "line": number})
    return pd.DataFrame(rows, columns=[*DECISION_COLUMNS, "line"]).astype({"line": "int64"}), problems


def effective_decisions(rows: pd.DataFrame) -> pd.DataFrame:
    """The standing decision of each image after its undos (`DECISION_COLUMNS`), one row per image, ordered by
    when the standing decision was made (the latest last). An image whose every decision was undone is absent;
    an undo with nothing left to reverse changes nothing."""
    stacks: dict[str, list[tuple[int, dict]]] = {}
    for position, record in enumerate(rows[DECISION_COLUMNS].to_dict("records")):
        stack = stacks.setdefault(record["image"], [])
        if record["decision"] != "undo":
            stack.append((position, record))
        elif stack:
            stack.pop()
    standing = sorted((stack[-1] for stack in stacks.values() if stack), key=lambda pair: pair[0])
    return pd.DataFrame([record for _, record in standing], columns=DECISION_COLUMNS)


IDENTITY_COLUMNS = ["image", "individual", "decided_by", "probability"]


def decided_identities(model_choices: pd.DataFrame, standing: pd.DataFrame) -> pd.DataFrame:
    """The decided identities a catalogue imports (`IDENTITY_COLUMNS`), one row per photo.

    `model_choices`: the model's first answer per photo (image, label, probability). A standing `same` / `new`
    decision (`effective_decisions`) gives the reviewed individual, `decided_by` `review:<reviewer>` and
    probability 1; every other photo takes the model's answer, `decided_by` `model` (`model (review unsure)` when
    marked "not sure"). Photos come sorted by name; decided photos the model has no answer for follow, in the
    order they were decided. The one rule for the `decided_identities` asset and the review page's export."""
    standing_of = {record["image"]: record for record in standing.to_dict("records")}
    model = model_choices.drop_duplicates("image").sort_values("image", kind="stable")
    rows = []
    for image, label, probability in zip(model["image"], model["label"], model["probability"]):
        review = standing_of.get(image)
        if review is not None and review["decision"] in LABELLED:
            rows.append(_reviewed_row(review))
        else:
            decided_by = "model (review unsure)" if review is not None else "model"
            rows.append([image, str(label), decided_by, float(pd.to_numeric(probability, errors="coerce"))])
    answered = set(model["image"])
    rows += [
        _reviewed_row(review)
        for image, review in standing_of.items()
        if image not in answered and review["decision"] in LABELLED
    ]
    return pd.DataFrame(rows, columns=IDENTITY_COLUMNS)


def _reviewed_row(review: dict) -> list:
    who = str(review.get("reviewer") or "").strip() or "anonymous"
    return [review["image"], review["label"], f"review:{who}", 1.0]
