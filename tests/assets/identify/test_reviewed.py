"""Decided photos answered by their decision, and review-created ids written as new_whale (train.csv's terms)."""

import pandas as pd

from assets.identify.reviewed import apply_decisions, catalogue_row, created_individuals, decided_first
from core.artifacts import REVIEW_COLUMNS

FILL = ["new_whale", "w_a", "w_b", "w_c", "w_d", "w_e"]


def reviews() -> pd.DataFrame:
    return pd.DataFrame(
        [
            ["t1.jpg", "same", "w_b", "ann", "2026-01-01T00:00:00Z"],
            ["t2.jpg", "new", "w_new1", "ann", "2026-01-01T00:00:01Z"],
            ["t3.jpg", "same", "w_new1", "ann", "2026-01-01T00:00:02Z"],
            ["t4.jpg", "unsure", "", "ann", "2026-01-01T00:00:03Z"],
        ],
        columns=REVIEW_COLUMNS,
    )


def test_what_a_decision_puts_first():
    assert created_individuals(reviews()) == {"w_new1"}
    assert decided_first(reviews()) == {"t1.jpg": "w_b", "t2.jpg": "new_whale", "t3.jpg": "new_whale"}
    assert created_individuals(None) == set() and decided_first(pd.DataFrame(columns=REVIEW_COLUMNS)) == {}


def test_rows_stay_five_distinct_labels_without_created_ids():
    assert catalogue_row(["w_new1", "w_a", "new_whale", "w_c", "w_d"], {"w_new1"}, FILL) == [
        "new_whale",
        "w_a",
        "w_c",
        "w_d",
        "w_b",
    ]
    assert catalogue_row(["w_a", "w_c", "new_whale", "w_d", "w_e"], set(), FILL, first="w_e") == [
        "w_e",
        "w_a",
        "w_c",
        "new_whale",
        "w_d",
    ]


def test_apply_decisions_marks_the_rows_it_answers():
    table = pd.DataFrame(
        {
            "Image": ["t1.jpg", "t2.jpg", "t3.jpg", "t4.jpg", "t5.jpg"],
            "Id": ["w_a w_b w_c w_d new_whale"] * 4 + ["w_new1 w_a w_b w_c w_d"],
            "source": ["model", "model", "duplicate", "model", "model"],
        }
    )
    out = apply_decisions(table, reviews(), FILL)
    rows = dict(zip(out["Image"], out["Id"].str.split(" ")))
    assert (
        rows["t1.jpg"][0] == "w_b" and rows["t2.jpg"][0] == "new_whale" and rows["t3.jpg"][0] == "new_whale"
    )
    assert rows["t4.jpg"] == "w_a w_b w_c w_d new_whale".split()  # unsure: the model's answer stands
    assert rows["t5.jpg"] == ["new_whale", "w_a", "w_b", "w_c", "w_d"]  # a created id is nobody in train.csv
    assert all(len(set(row)) == 5 and "w_new1" not in row for row in rows.values())
    assert out["source"].tolist() == ["review", "review", "review", "model", "model"]
    assert apply_decisions(table, None, FILL) is table
