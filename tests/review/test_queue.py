"""Reading the review_queue artifact: its parts, its frame settings, and a clear message when it is missing."""

import json
import os

import numpy as np
import pandas as pd
import pytest

from core.constants import NEW_WHALE
from review.queue import QueueSource, QueueUnavailable, box_of, load_queue


def test_the_queue_reads_in_queue_order_with_its_frame(queue):
    assert list(queue.items["position"]) == list(range(6))
    assert queue.items["item"].iloc[-1] == "encounter_0001"
    assert (queue.settings.width, queue.settings.margin) == (256, 0.05)
    assert len(queue.photos_of("encounter_0001")) == 2
    first = queue.items["item"].iloc[0]
    assert list(queue.candidates_of(first)["rank"]) == [1, 2, 3, 4, 5]
    # new_whale (rank 3 of the first item) is no label a `same` decision can name.
    labels = queue.labels_of(first)
    assert len(labels) == 4 and NEW_WHALE not in labels
    lines = queue.lines_of(first, 1)
    assert lines.dtype == np.float32 and lines.shape[1] == 4 and len(lines) > 0
    assert queue.lines_of(first, 3).shape == (0, 4)  # new_whale has no lines
    assert queue.has_item(first) and not queue.has_item("nope.jpg")


def test_a_missing_queue_says_how_to_make_it(tmp_path):
    with pytest.raises(QueueUnavailable) as raised:
        load_queue(tmp_path)
    message = str(raised.value)
    assert "Materialize review_queue first" in message
    assert "dagster asset materialize" in message and "--select review_queue" in message


def test_a_queue_missing_a_part_or_a_column_is_named(storage_copy):
    (storage_copy / "review_queue" / "lines.parquet").unlink()
    with pytest.raises(QueueUnavailable, match="missing lines.parquet"):
        load_queue(storage_copy)


def test_a_queue_of_another_version_is_named(storage_copy):
    items = pd.read_parquet(storage_copy / "review_queue" / "items.parquet").drop(columns="priority")
    items.to_parquet(storage_copy / "review_queue" / "items.parquet")
    with pytest.raises(QueueUnavailable, match=r"items lacks columns \['priority'\]"):
        load_queue(storage_copy)


def test_the_source_reloads_a_rewritten_queue(storage_copy):
    source = QueueSource(storage_copy)
    assert source.get() is source.get()  # unchanged files: read once
    summary_file = storage_copy / "review_queue" / "summary.json"
    summary = json.loads(summary_file.read_text())
    summary["keypoint_width"] = 300
    summary_file.write_text(json.dumps(summary))
    os.utime(summary_file, ns=(1, 1))  # a different stamp even within the clock's resolution
    assert source.get().settings.width == 300


def test_a_box_with_a_missing_value_is_the_whole_photo():
    assert box_of({"box_x0": 1, "box_y0": 2, "box_x1": 3, "box_y1": 4}) == (1.0, 2.0, 3.0, 4.0)
    assert box_of({"box_x0": 1, "box_y0": np.nan, "box_x1": 3, "box_y1": 4}) is None
    assert box_of({"box_x0": 1}) is None
    assert box_of(pd.Series({"g0": "", "g1": 1}), ("g0", "g1")) is None
