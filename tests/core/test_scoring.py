"""`flukeid score`: MAP@5 with its breakdown, and clear errors for malformed submissions."""

import pytest

from core.scoring import format_score, score_submission

SOLUTION = "Image,Id\na.jpg,w_1\nb.jpg,new_whale\nc.jpg,w_2\nd.jpg,w_3\n"


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_score_breaks_down_known_and_new_whale(tmp_path):
    solution = write(tmp_path, "solution.csv", SOLUTION)
    submission = write(
        tmp_path,
        "submission.csv",
        "Image,Id\n"
        "a.jpg,w_1 new_whale w_2 w_3 w_4\n"  # 1
        "b.jpg,w_1 new_whale w_2 w_3 w_4\n"  # 1/2
        "c.jpg,w_1 w_1 w_2 w_3 w_4\n"  # repeat keeps its place: 1/3
        "d.jpg,w_9 w_8\n",  # short row, miss: 0
    )
    score = score_submission(submission, solution)
    assert score["map5"] == pytest.approx((1 + 0.5 + 1 / 3 + 0) / 4)
    assert score["map5_known"] == pytest.approx((1 + 1 / 3 + 0) / 3)
    assert score["map5_new_whale"] == pytest.approx(0.5)
    assert (score["images"], score["known_images"], score["new_whale_images"]) == (4, 3, 1)
    assert score["hits_per_rank"] == [1, 1, 1, 0, 0]
    assert score["new_whale_share_per_rank"][1] == pytest.approx(0.5)
    text = format_score(score)
    assert "MAP@5" in text and "0.4583" in text and "new_whale" in text


@pytest.mark.parametrize(
    ("body", "line", "reason"),
    [
        ("Image,Label\na.jpg,w_1\n", 1, "expected header"),
        ("Image,Id\na.jpg,w_1\nb.jpg\n", 3, "expected 2 fields"),
        ("Image,Id\na.jpg,w_1,w_2\n", 2, "expected 2 fields"),
        ("Image,Id\na.jpg,\n", 2, "no labels"),
        ("Image,Id\na.jpg,w_1\n,w_1\n", 3, "empty Image"),
        ("Image,Id\na.jpg,w_1 w_2 w_3 w_4 w_5 w_6\n", 2, "at most 5"),
        ("Image,Id\na.jpg,w_1\na.jpg,w_2\n", 3, "appears twice"),
        ("Image,Id\nzzz.jpg,w_1\n", 2, "not in the solution"),
        ("Image,Id\na.jpg,w_1\n\nb.jpg,w_1\n", 3, "blank line"),
        ("", 1, "empty"),
    ],
)
def test_malformed_submission_names_the_first_bad_line(tmp_path, body, line, reason):
    solution = write(tmp_path, "solution.csv", SOLUTION)
    submission = write(tmp_path, "submission.csv", body)
    with pytest.raises(ValueError, match=f"line {line}: .*{reason}"):
        score_submission(submission, solution)


def test_incomplete_submission_is_an_error(tmp_path):
    solution = write(tmp_path, "solution.csv", SOLUTION)
    submission = write(tmp_path, "submission.csv", "Image,Id\na.jpg,w_1\nb.jpg,new_whale\n")
    with pytest.raises(ValueError, match="2 solution images have no row .*c.jpg"):
        score_submission(submission, solution)


# The same four photos in the 2022 (Happywhale) form: `new_individual` is the 2022 word for new_whale.
SOLUTION_2022 = "image,individual_id\na.jpg,w_1\nb.jpg,new_individual\nc.jpg,w_2\nd.jpg,w_3\n"
SUBMISSION_ROWS = [
    ("a.jpg", "w_1 new_whale w_2 w_3 w_4"),  # 1
    ("b.jpg", "w_1 new_whale w_2 w_3 w_4"),  # 1/2
    ("c.jpg", "w_1 w_1 w_2 w_3 w_4"),  # 1/3
    ("d.jpg", "w_9 w_8"),  # 0
]


def _submission_text(header: str, unknown: str) -> str:
    rows = [f"{image},{labels.replace('new_whale', unknown)}" for image, labels in SUBMISSION_ROWS]
    return "\n".join([header, *rows]) + "\n"


@pytest.mark.parametrize(
    ("submission_header", "unknown", "solution"),
    [
        ("image,predictions", "new_individual", SOLUTION_2022),  # all 2022
        ("image,predictions", "new_individual", SOLUTION),  # a 2022 submission, a 2019 solution
        ("Image,Id", "new_whale", SOLUTION_2022),  # the chain's internal form against a 2022 solution
        ("image,predictions", "new_whale", SOLUTION_2022),  # the 2019 word in a 2022 file means the same
    ],
)
def test_either_competitions_files_score_alike(tmp_path, submission_header, unknown, solution):
    expected = score_submission(
        write(tmp_path, "sub_2019.csv", _submission_text("Image,Id", "new_whale")),
        write(tmp_path, "sol_2019.csv", SOLUTION),
    )
    score = score_submission(
        write(tmp_path, "submission.csv", _submission_text(submission_header, unknown)),
        write(tmp_path, "solution.csv", solution),
    )
    assert score == expected
    assert score["map5"] == pytest.approx((1 + 0.5 + 1 / 3 + 0) / 4)
    assert score["new_whale_images"] == 1 and score["map5_new_whale"] == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("body", "line", "reason"),
    [
        ("image,individual_id\na.jpg,w_1\n", 1, "expected header 'Image,Id' .* or 'image,predictions'"),
        ("image,predictions,extra\na.jpg,w_1,x\n", 1, "expected header"),
        ("image,predictions\na.jpg,w_1,w_2\n", 2, "expected 2 fields 'image,predictions'"),
        ("image,predictions\n,w_1\n", 2, "empty image"),
        ("image,predictions\na.jpg,new_individual\na.jpg,w_1\n", 3, "appears twice"),
        ("image,predictions\nzzz.jpg,w_1\n", 2, "not in the solution"),
    ],
)
def test_malformed_2022_submission_names_the_first_bad_line(tmp_path, body, line, reason):
    solution = write(tmp_path, "solution.csv", SOLUTION_2022)
    submission = write(tmp_path, "submission.csv", body)
    with pytest.raises(ValueError, match=f"line {line}: .*{reason}"):
        score_submission(submission, solution)


@pytest.mark.parametrize(
    ("body", "line", "reason"),
    [
        ("image,species\na.jpg,beluga\n", 1, "expected header 'Image,Id' .* or 'image,individual_id'"),
        ("image,individual_id\na.jpg,\n", 2, "expected 'image,individual_id'"),
    ],
)
def test_malformed_solution_is_an_error_naming_both_headers(tmp_path, body, line, reason):
    solution = write(tmp_path, "solution.csv", body)
    submission = write(tmp_path, "submission.csv", "image,predictions\na.jpg,w_1\n")
    with pytest.raises(ValueError, match=f"line {line}: .*{reason}"):
        score_submission(submission, solution)


def test_a_2022_solution_with_a_usage_column_is_read(tmp_path):
    solution = write(tmp_path, "solution.csv", "image,individual_id,Usage\na.jpg,new_individual,Public\n")
    submission = write(tmp_path, "submission.csv", "image,predictions\na.jpg,new_individual w_1\n")
    assert score_submission(submission, solution)["map5"] == 1.0
