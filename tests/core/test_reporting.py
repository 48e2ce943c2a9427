"""Metadata helpers: every plot states its question, pictures decode, tables keep their types."""

import base64
import io
import re

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from core.reporting import draw_photos_per_individual, figure_metadata, image_metadata, table_metadata

DATA_URI = re.compile(r"!\[([^\]]*)\]\(data:image/(png|jpeg);base64,([A-Za-z0-9+/=]+)\)")


def decode(markdown: str) -> tuple[str, Image.Image]:
    match = DATA_URI.search(markdown)
    assert match, markdown[:80]
    return match.group(1), Image.open(io.BytesIO(base64.b64decode(match.group(3))))


def test_figure_metadata_draws_a_titled_png_whose_alt_text_is_the_question():
    def draw(ax):
        ax.plot([0, 1, 2], [1, 3, 2], label="loss")

    value = figure_metadata(draw, "Is it still learning? [loss 3 -> 2]", width=4, height=3, dpi=50)
    alt, picture = decode(value.value)
    assert alt == "Is it still learning? (loss 3 -> 2)"  # brackets would end the alt text early
    assert picture.format == "PNG" and picture.size == (200, 150)
    # The drawing is not blank: the line and the title put dark pixels on the white figure.
    assert np.asarray(picture.convert("L")).min() < 100


def test_plots_and_pictures_need_a_title():
    with pytest.raises(ValueError, match="question"):
        figure_metadata(lambda ax: None, "  ")
    with pytest.raises(ValueError, match="question"):
        image_metadata(Image.new("RGB", (10, 10)), "")


def test_image_metadata_shrinks_and_captions_the_picture():
    value = image_metadata(
        Image.new("RGB", (1800, 600), "navy"), "Do the boxes hold the flukes?", max_side=900
    )
    assert value.value.startswith("**Do the boxes hold the flukes?**\n\n")
    alt, picture = decode(value.value)
    assert alt == "Do the boxes hold the flukes?"
    assert picture.format == "JPEG" and picture.size == (900, 300)


def test_table_metadata_keeps_column_types_and_turns_missing_values_into_none():
    frame = pd.DataFrame(
        {"label": ["w_a", "w_b"], "photos": [3, 1], "share": [0.75, np.nan], "kept": [True, False]}
    )
    table = table_metadata(frame, max_rows=1).value
    assert [(c.name, c.type) for c in table.schema.columns] == [
        ("label", "string"),
        ("photos", "int"),
        ("share", "float"),
        ("kept", "bool"),
    ]
    assert len(table.records) == 1 and table.records[0].data == {
        "label": "w_a",
        "photos": 3,
        "share": 0.75,
        "kept": True,
    }
    assert table_metadata(frame.iloc[1:]).value.records[0].data["share"] is None


def test_photos_per_individual_bars_count_individuals_by_their_photo_count():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    draw_photos_per_individual(ax, pd.Series({"w_a": 1, "w_b": 1, "w_c": 3}), "photos")
    bars = {round(patch.get_x() + patch.get_width() / 2): patch.get_height() for patch in ax.patches}
    plt.close(fig)
    assert bars == {1: 2, 3: 1} and ax.get_yscale() == "log" and ax.get_xlabel() == "photos"
