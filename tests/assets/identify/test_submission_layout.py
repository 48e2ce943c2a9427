"""submission.csv in the competition's format the data came in: `Image,Id` with new_whale for the 2019 layout,
`image,predictions` with new_individual for Happywhale's, the table itself unchanged; and it still scores."""

import pandas as pd
import pytest

from assets.identify.submission import data_layout, write_submission_csv
from core.scoring import score_submission

TABLE = pd.DataFrame(
    {
        "Image": ["a.jpg", "b.jpg"],
        "Id": ["new_whale w_1 w_2 w_3 w_4", "w_1 w_2 new_whale w_3 w_new_whalish"],
        "source": ["model", "duplicate"],
    }
)


def test_a_happywhale_submission_is_written_in_the_2022_format(tmp_path):
    before = TABLE.copy()
    target = tmp_path / "submission.csv"
    write_submission_csv(TABLE, target, "happywhale")
    assert target.read_text() == (
        "image,predictions\n"
        "a.jpg,new_individual w_1 w_2 w_3 w_4\n"
        "b.jpg,w_1 w_2 new_individual w_3 w_new_whalish\n"  # only the whole word is replaced
    )
    pd.testing.assert_frame_equal(TABLE, before)  # the chain's table keeps its words
    solution = tmp_path / "solution.csv"
    solution.write_text("image,individual_id\na.jpg,new_individual\nb.jpg,w_2\n")
    assert score_submission(target, solution)["map5"] == pytest.approx((1 + 0.5) / 2)


def test_a_2019_submission_is_written_as_it_always_was(tmp_path):
    target = tmp_path / "submission.csv"
    write_submission_csv(TABLE, target, "kaggle2019")
    assert target.read_text().splitlines()[:2] == ["Image,Id", "a.jpg,new_whale w_1 w_2 w_3 w_4"]
    with pytest.raises(ValueError, match="unknown layout 'kaggle2022'"):
        write_submission_csv(TABLE, target, "kaggle2022")


def test_the_layout_comes_from_raw_images_and_defaults_to_2019():
    assert data_layout(
        {"images": None, "rejected": None, "source": {"layout": "happywhale", "species": ""}}
    ) == ("happywhale")
    assert data_layout({"images": None, "rejected": None}) == "kaggle2019"  # an artifact from before layouts
