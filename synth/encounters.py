"""Encounters in a generated data set (``encounters`` of ``generate``, ``flukeid synth --encounters SHARE``).

A researcher photographs one whale several times in one sighting; those photos are an encounter, identified
together. For a share of the individuals with two or more test photos, all their test photos form one encounter,
listed in ``encounters.csv`` (``Image,encounter``, ids ``enc-0001``... numbered by first photo name, saying
nothing of the whale). Every test photo also gets an EXIF capture time (DateTimeOriginal and DateTime): the
photos of one encounter a few minutes apart (``GAP_MINUTES``), every other encounter and every photo outside an
encounter on a day of its own, so grouping the test photos by time within any window of under ``MIN_APART_HOURS``
hours finds exactly the listed encounters: both sources of ``assets/ingest/encounters.py`` can be tested.

The EXIF block is spliced into each JPEG after its JFIF header, the compressed pixels untouched, so a photo
decodes to the same pixels as in the set without encounters. With a share of 0 nothing here runs and the data
set is byte for byte the one it always was; the draws come from a stream of their own (``ENCOUNTER_PLAN``), so
every other file is the same as without encounters too. ``solution.csv`` is unchanged.
"""

from __future__ import annotations

import json
import struct
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
from PIL import Image

from synth.draws import stream

# A stream kind of its own (synth.draws holds kinds 0-5), so encounters never move another draw.
ENCOUNTER_PLAN = 6
FIRST_DAY = datetime(2019, 7, 1, 6, 0, 0)
GAP_MINUTES = (1, 8)  # between consecutive photos of one encounter, uniform in whole minutes
DAY_HOURS = 10  # a day's sighting starts within these hours of 06:00, so two days are >= 14 h apart
MIN_APART_HOURS = 24 - DAY_HOURS
EXIF_IFD, DATE_TIME_ORIGINAL, DATE_TIME = 0x8769, 36867, 306


def check_share(share: float) -> float:
    share = float(share)
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"encounters must be a share in [0, 1]; got {share}")
    return share


def plan_encounters(images: list[dict], share: float, seed: int) -> list[list[int]]:
    """Encounters as lists of test image indices: for `share` of the individuals with 2+ test photos (at least
    one when the share is above 0 and there is such an individual), all of that individual's test photos."""
    by_individual: dict[int, list[int]] = {}
    for index, image in enumerate(images):
        if image["split"] == "test":
            by_individual.setdefault(int(image["ind"]), []).append(index)
    eligible = sorted(ind for ind, members in by_individual.items() if len(members) >= 2)
    if share <= 0 or not eligible:
        return []
    count = min(len(eligible), max(1, int(round(share * len(eligible)))))
    rng = stream(seed, ENCOUNTER_PLAN, 0)
    chosen = rng.choice(eligible, size=count, replace=False)
    encounters = [sorted(by_individual[int(ind)], key=lambda i: images[i]["name"]) for ind in chosen]
    return sorted(encounters, key=lambda members: images[members[0]]["name"])


def capture_times(images: list[dict], encounters: list[list[int]], seed: int) -> dict[int, datetime]:
    """A capture time for every test image: each encounter and each other test photo on a day of its own, in a
    random order of days; an encounter's photos minutes apart, in a random order."""
    placed = {index for members in encounters for index in members}
    units = [list(members) for members in encounters]
    units += [[i] for i, image in enumerate(images) if image["split"] == "test" and i not in placed]
    rng = stream(seed, ENCOUNTER_PLAN, 1)
    times: dict[int, datetime] = {}
    for day, unit in enumerate(rng.permutation(len(units))):
        when = FIRST_DAY + timedelta(days=day, minutes=int(rng.integers(0, DAY_HOURS * 60)))
        for index in rng.permutation(units[unit]):
            times[int(index)] = when
            when += timedelta(minutes=int(rng.integers(GAP_MINUTES[0], GAP_MINUTES[1] + 1)))
    return times


def with_exif_time(jpeg: bytes, when: datetime) -> bytes:
    """The JPEG with an EXIF block saying it was taken `when`, inserted after the JFIF header (or the start
    marker); the compressed pixels are untouched."""
    if jpeg[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG: no start-of-image marker")
    stamp = when.strftime("%Y:%m:%d %H:%M:%S")
    exif = Image.Exif()
    exif[DATE_TIME] = stamp
    exif.get_ifd(EXIF_IFD)[DATE_TIME_ORIGINAL] = stamp
    payload = exif.tobytes()  # "Exif\0\0" and the TIFF structure: an APP1 segment's body
    segment = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    at = 2
    if jpeg[2:4] == b"\xff\xe0":  # JFIF's APP0 comes first; Exif follows it
        at = 4 + struct.unpack(">H", jpeg[4:6])[0]
    return jpeg[:at] + segment + jpeg[at:]


def write_encounters(out: Path, images: list[dict], test_folder: Path, share: float, seed: int) -> dict:
    """encounters.csv, the EXIF times of every test photo in `test_folder`, and the summary's keys."""
    encounters = plan_encounters(images, share, seed)
    rows = [
        (images[index]["name"], f"enc-{number:04d}")
        for number, members in enumerate(encounters, start=1)
        for index in members
    ]
    table = pd.DataFrame(rows, columns=["Image", "encounter"]).sort_values("Image", kind="stable")
    table.to_csv(Path(out) / "encounters.csv", index=False)
    for index, when in sorted(capture_times(images, encounters, seed).items()):
        path = Path(test_folder) / images[index]["name"]
        path.write_bytes(with_exif_time(path.read_bytes(), when))
    return {"encounter_share": share, "encounters": len(encounters), "encounter_photos": len(rows)}


def add_to_summary(out: Path, summary: dict, keys: dict) -> dict:
    """`summary` with `keys` before its `seconds`, rewritten to summary.json as `write_tables` writes it."""
    seconds = summary.get("seconds")
    merged = {key: value for key, value in summary.items() if key != "seconds"} | keys
    if seconds is not None:
        merged["seconds"] = seconds
    (Path(out) / "summary.json").write_text(json.dumps(merged, indent=2) + "\n")
    return merged
