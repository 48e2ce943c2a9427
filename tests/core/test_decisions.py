"""The review decisions file: appends from several processes at once, malformed lines, undo, new ids."""

import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from core.decisions import (
    DECISION_COLUMNS,
    DECISIONS,
    HEADER,
    append_decision,
    effective_decisions,
    new_individual_id,
    read_decisions,
)

REPO = Path(__file__).resolve().parents[2]
WHEN = datetime(2026, 12, 2, 1, 2, 3, tzinfo=timezone.utc)

# Each writer process appends its share of decisions as fast as it can, after all of them have started.
WRITER = """
import sys, time
from core.decisions import append_decision
path, writer, count, start = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
while time.time() < start:
    time.sleep(0.001)
for n in range(count):
    append_decision(path, f"p{writer}_{n:03d}.jpg", "same", f"w_{writer}{n:06d}", reviewer=f"writer {writer}")
"""


def test_appends_from_several_processes_at_once_lose_nothing(tmp_path):
    import time

    path = tmp_path / "reviews" / "decisions.csv"  # folder and file do not exist yet
    writers, count = 4, 50
    start = time.time() + 3.0  # every process imported and waiting before the first append
    processes = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(w), str(count), str(start)], cwd=REPO)
        for w in range(writers)
    ]
    assert [p.wait(timeout=120) for p in processes] == [0] * writers
    lines = path.read_text().split("\n")
    assert lines[0] == HEADER and lines[-1] == ""  # one header, and the file ends with a newline
    assert lines.count(HEADER) == 1
    rows, problems = read_decisions(path)
    assert problems == []
    assert len(rows) == len(lines) - 2 == writers * count
    expected = {f"p{w}_{n:03d}.jpg": f"w_{w}{n:06d}" for w in range(writers) for n in range(count)}
    assert dict(zip(rows["image"], rows["label"])) == expected
    assert set(rows["reviewer"]) == {f"writer {w}" for w in range(writers)}
    # Each writer's own lines are in the order it wrote them.
    for w in range(writers):
        mine = rows[rows["reviewer"] == f"writer {w}"]
        assert list(mine["image"]) == sorted(mine["image"])


def test_the_header_is_written_once_and_rows_read_back(tmp_path):
    path = tmp_path / "decisions.csv"
    first = append_decision(path, "a.jpg", "same", "w_1234567", reviewer="ann", when=WHEN)
    append_decision(path, "b.jpg", "unsure", reviewer="ann", when=WHEN + timedelta(seconds=1))
    assert first == {
        "image": "a.jpg",
        "decision": "same",
        "label": "w_1234567",
        "reviewer": "ann",
        "time": "2026-12-02T01:02:03Z",
    }
    assert path.read_text() == (
        f"{HEADER}\na.jpg,same,w_1234567,ann,2026-12-02T01:02:03Z\nb.jpg,unsure,,ann,2026-12-02T01:02:04Z\n"
    )
    rows, problems = read_decisions(path)
    assert problems == []
    assert list(rows.columns) == [*DECISION_COLUMNS, "line"]
    assert list(rows["line"]) == [2, 3] and list(rows["label"]) == ["w_1234567", ""]


def test_a_missing_file_is_an_empty_table(tmp_path):
    rows, problems = read_decisions(tmp_path / "none.csv")
    assert rows.empty and list(rows.columns) == [*DECISION_COLUMNS, "line"] and problems == []
    assert effective_decisions(rows).empty


def test_malformed_lines_are_reported_with_their_numbers_and_good_rows_still_read(tmp_path):
    path = tmp_path / "decisions.csv"
    path.write_text(
        "\n".join(
            [
                HEADER,
                "a.jpg,same,w_1,ann,2026-12-02T01:02:03Z",  # 2: good
                "b.jpg,same,w_2,ann",  # 3: four fields
                "c.jpg,maybe,w_3,ann,2026-12-02T01:02:03Z",  # 4: unknown decision
                "d.jpg,same,,ann,2026-12-02T01:02:03Z",  # 5: same without label
                "e.jpg,new,w_4,ann,yesterday",  # 6: bad time
                "",  # 7: blank, skipped
                "f.jpg,unsure,,ann,2026-02-30T01:02:03Z",  # 8: no such date
                "g.jpg,new,w_5,ann,2026-12-02T01:02:03Z",  # 9: good
            ]
        )
        + "\n"
    )
    rows, problems = read_decisions(path)
    assert list(rows["image"]) == ["a.jpg", "g.jpg"] and list(rows["line"]) == [2, 9]
    reasons = {problem["line"]: problem["reason"] for problem in problems}
    assert sorted(reasons) == [3, 4, 5, 6, 8]
    assert "found 4" in reasons[3]
    assert "unknown decision 'maybe'" in reasons[4]
    assert "without a label" in reasons[5]
    assert "bad time 'yesterday'" in reasons[6] and "bad time" in reasons[8]
    assert next(p for p in problems if p["line"] == 3)["text"] == "b.jpg,same,w_2,ann"


def test_a_file_without_header_is_reported_and_its_rows_kept(tmp_path):
    path = tmp_path / "decisions.csv"
    path.write_text("a.jpg,same,w_1,ann,2026-12-02T01:02:03Z\n")
    rows, problems = read_decisions(path)
    assert list(rows["image"]) == ["a.jpg"]
    assert [p["line"] for p in problems] == [1] and "no header" in problems[0]["reason"]


def test_an_existing_file_without_trailing_newline_gets_the_next_append_on_a_new_line(tmp_path):
    path = tmp_path / "decisions.csv"
    path.write_text(f"{HEADER}\na.jpg,same,w_1,ann,2026-12-02T01:02:03Z")  # edited by hand, no last newline
    append_decision(path, "b.jpg", "new", reviewer="bo", when=WHEN)
    assert path.read_text().split("\n") == [
        HEADER,
        "a.jpg,same,w_1,ann,2026-12-02T01:02:03Z",
        f"b.jpg,new,{new_individual_id('b.jpg')},bo,2026-12-02T01:02:03Z",
        "",
    ]
    rows, problems = read_decisions(path)
    assert problems == [] and list(rows["image"]) == ["a.jpg", "b.jpg"]


def test_undo_reverses_the_latest_decision_of_that_image_only(tmp_path):
    path = tmp_path / "decisions.csv"
    append_decision(path, "a.jpg", "same", "w_1", when=WHEN)
    append_decision(path, "a.jpg", "same", "w_2", when=WHEN)
    append_decision(path, "b.jpg", "unsure", when=WHEN)
    append_decision(path, "a.jpg", "undo", when=WHEN)
    standing = effective_decisions(read_decisions(path)[0])
    assert list(standing.columns) == DECISION_COLUMNS
    # a.jpg falls back to its first decision; b.jpg is untouched (and now decided later than a.jpg's standing one).
    assert list(zip(standing["image"], standing["decision"], standing["label"])) == [
        ("a.jpg", "same", "w_1"),
        ("b.jpg", "unsure", ""),
    ]
    append_decision(path, "a.jpg", "undo", when=WHEN)  # the second undo reverses the first decision too
    standing = effective_decisions(read_decisions(path)[0])
    assert list(standing["image"]) == ["b.jpg"]
    append_decision(path, "a.jpg", "undo", when=WHEN)  # nothing left to reverse: no change, no error
    append_decision(path, "a.jpg", "new", when=WHEN)
    standing = effective_decisions(read_decisions(path)[0])
    assert list(zip(standing["image"], standing["decision"])) == [("b.jpg", "unsure"), ("a.jpg", "new")]


def test_new_individual_id_is_stable_and_differs_by_image():
    assert new_individual_id("abc.jpg") == new_individual_id("abc.jpg")
    assert new_individual_id("abc.jpg") != new_individual_id("abd.jpg")
    # The documented digest, so that another implementation gives the same ids.
    assert (
        new_individual_id("abc.jpg")
        == "w_" + __import__("hashlib").sha256(b"flukeid-review:abc.jpg").hexdigest()[:7]
    )
    assert len(new_individual_id("x")) == 9


def test_reviewer_is_sanitised_and_time_is_utc(tmp_path):
    path = tmp_path / "decisions.csv"
    eastern = timezone(timedelta(hours=-5))
    record = append_decision(
        path,
        "a.jpg",
        "unsure",
        reviewer='Ann, "the"\nreviewer',
        when=datetime(2026, 1, 1, 20, tzinfo=eastern),
    )
    assert record["reviewer"] == "Ann the reviewer" and record["time"] == "2026-01-02T01:00:00Z"
    rows, problems = read_decisions(path)
    assert problems == [] and rows["reviewer"].tolist() == ["Ann the reviewer"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"image": "", "decision": "same", "label": "w_1"}, "empty"),
        ({"image": "a,b.jpg", "decision": "same", "label": "w_1"}, "commas"),
        ({"image": "a.jpg", "decision": "maybe"}, "one of"),
        ({"image": "a.jpg", "decision": "same"}, "needs the individual"),
        ({"image": "a.jpg", "decision": "unsure", "label": "w_1"}, "takes no label"),
        ({"image": "a.jpg", "decision": "undo", "label": "w_1"}, "takes no label"),
        ({"image": "a.jpg", "decision": "same", "label": "w_1\n"}, "line breaks"),
        ({"image": "a.jpg", "decision": "same", "label": "w_1", "when": datetime(2026, 1, 1)}, "timezone"),
        ({"image": "a.jpg", "decision": "same", "label": "w_1", "when": "2026-01-01"}, "datetime"),
        ({"image": 3, "decision": "same", "label": "w_1"}, "string"),
    ],
)
def test_arguments_are_validated(tmp_path, arguments, message):
    path = tmp_path / "decisions.csv"
    with pytest.raises(ValueError, match=message):
        append_decision(path, **arguments)
    assert not path.exists()  # nothing written, not even the header


def test_decisions_are_the_documented_four():
    assert DECISIONS == ("same", "new", "unsure", "undo")
    assert HEADER == "image,decision,label,reviewer,time"
