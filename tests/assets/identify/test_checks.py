"""The stage's check logic: the report beats the frequent-whale baseline, the submission is well formed, and its
score against the generator's truth is a check that passes saying "no truth file" when there is none."""

import pandas as pd

from assets.identify.checks import (
    beats_frequent_whale_baseline,
    matches_truth,
    well_formed,
    well_formed_problems,
)


def test_validation_check_fails_below_the_baseline():
    assert not beats_frequent_whale_baseline({"map5": 0.2, "baselines": {"new_whale_frequent": 0.3}})[
        "passed"
    ]
    assert beats_frequent_whale_baseline({"map5": 0.4, "baselines": {"new_whale_frequent": 0.3}})["passed"]


def test_well_formed_problems_name_the_bad_rows():
    table = pd.DataFrame(
        {
            "Image": ["ok.jpg", "short.jpg", "repeat.jpg", "spaces.jpg"],
            "Id": ["a b c d e", "a b", "a a b c d", "a  b c d e"],
        }
    )
    problems = well_formed_problems(table)
    assert len(problems) == 3
    assert (
        problems[0].startswith("short.jpg")
        and "repeated" in problems[1]
        and problems[2].startswith("spaces.jpg")
    )
    assert well_formed(table) == {"passed": False, "problems": 3, "examples": problems}


def test_truth_check_without_a_truth_file_passes_and_says_so(tmp_path):
    submission = pd.DataFrame({"Image": ["a.jpg"], "Id": ["new_whale w_1 w_2 w_3 w_4"]})
    found = matches_truth(submission, tmp_path / "solution.csv")
    assert found["passed"] and found["truth"] == "no truth file" and "test_map5" not in found


def test_truth_check_scores_and_flags_a_solution_of_another_test_set(tmp_path):
    submission = pd.DataFrame({"Image": ["a.jpg", "b.jpg"], "Id": ["w_1 new_whale w_2 w_3 w_4"] * 2})
    solution = tmp_path / "solution.csv"
    pd.DataFrame({"Image": ["a.jpg", "b.jpg"], "Id": ["w_1", "new_whale"]}).to_csv(solution, index=False)
    found = matches_truth(submission, solution)
    assert found["passed"] and found["test_map5"] == 0.75 and found["test_map5_known"] == 1.0
    assert "MAP@5" in found["test_score"]
    pd.DataFrame({"Image": ["c.jpg"], "Id": ["w_1"]}).to_csv(solution, index=False)
    other = matches_truth(submission, solution)
    assert not other["passed"] and "not in the solution" in other["error"]
