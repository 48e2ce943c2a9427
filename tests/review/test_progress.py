"""Where the review stands: items reviewed, the next item, what undo reverses, and the export table."""

import math

from core.decisions import append_decision, effective_decisions, new_individual_id, read_decisions
from review.progress import EXPORT_COLUMNS, export_table, item_status, next_item, progress, undo_target


def standing(path):
    return effective_decisions(read_decisions(path)[0])


def test_progress_counts_an_item_when_all_its_photos_are_decided(queue, decisions_path):
    items = list(queue.items["item"])
    assert progress(queue, standing(decisions_path)) == (0, 6)
    assert next_item(queue, standing(decisions_path)) == items[0]
    append_decision(decisions_path, items[0], "unsure")  # a standing decision too: looked at, not decided
    first, second = queue.photos_of("encounter_0001")["image"]
    append_decision(decisions_path, first, "new")  # half of the encounter
    now = standing(decisions_path)
    assert progress(queue, now) == (1, 6)
    assert next_item(queue, now) == items[1]
    status = item_status(queue, now).set_index("item")
    assert (
        status.loc["encounter_0001", "decision"] == "1/2 photos"
        and not status.loc["encounter_0001", "reviewed"]
    )
    append_decision(decisions_path, second, "new", new_individual_id(first))
    status = item_status(queue, standing(decisions_path)).set_index("item")
    assert status.loc["encounter_0001", "reviewed"]
    assert status.loc["encounter_0001", "decision"] == f"new {new_individual_id(first)}"
    assert status.loc[items[0], "decision"] == "unsure"
    assert progress(queue, standing(decisions_path)) == (2, 6)


def test_all_reviewed_has_no_next_item(queue, decisions_path):
    for image in queue.photos["image"]:
        append_decision(decisions_path, image, "unsure")
    assert progress(queue, standing(decisions_path)) == (6, 6)
    assert next_item(queue, standing(decisions_path)) is None


def test_undo_targets_the_latest_decided_item_and_only_its_decided_photos(queue, decisions_path):
    items = list(queue.items["item"])
    assert undo_target(queue, standing(decisions_path)) is None
    first, second = queue.photos_of("encounter_0001")["image"]
    append_decision(decisions_path, first, "unsure")
    append_decision(decisions_path, second, "unsure")
    append_decision(decisions_path, items[1], "new")
    append_decision(decisions_path, "not_in_queue.jpg", "new")  # decided against an earlier queue
    assert undo_target(queue, standing(decisions_path)) == (items[1], [items[1]])
    append_decision(decisions_path, items[1], "undo")
    assert undo_target(queue, standing(decisions_path)) == ("encounter_0001", [first, second])
    append_decision(decisions_path, second, "undo")
    assert undo_target(queue, standing(decisions_path)) == ("encounter_0001", [first])


def test_the_export_has_reviewed_identities_and_the_models_answer_for_the_rest(queue, decisions_path):
    items = list(queue.items["item"])
    candidates = queue.candidates
    label = queue.labels_of(items[0])[1]
    append_decision(decisions_path, items[0], "same", label, reviewer="ann")
    append_decision(decisions_path, items[1], "new", reviewer="bo")
    append_decision(decisions_path, items[2], "unsure", reviewer="ann")
    append_decision(decisions_path, items[3], "same", queue.labels_of(items[3])[0], reviewer="ann")
    append_decision(decisions_path, items[3], "undo", reviewer="ann")
    append_decision(decisions_path, "gone.jpg", "same", "w_0000001")  # not in this queue, no reviewer
    table = export_table(queue, standing(decisions_path))
    assert list(table.columns) == EXPORT_COLUMNS
    rows = {row["image"]: row for row in table.to_dict("records")}
    assert len(table) == len(queue.photos) + 1 and set(rows) == set(queue.photos["image"]) | {"gone.jpg"}
    assert (
        list(table["image"])[:-1] == sorted(queue.photos["image"]) and table["image"].iloc[-1] == "gone.jpg"
    )
    assert (rows[items[0]]["individual"], rows[items[0]]["decided_by"]) == (label, "review:ann")
    assert rows[items[0]]["probability"] == 1.0
    assert rows[items[1]]["individual"] == new_individual_id(items[1])
    assert rows[items[1]]["decided_by"] == "review:bo"
    assert rows["gone.jpg"]["decided_by"] == "review:anonymous"

    def top(item):
        first = candidates[(candidates["item"] == item) & (candidates["rank"] == 1)].iloc[0]
        return first["label"], float(first["probability"])

    assert rows[items[2]]["decided_by"] == "model (review unsure)"
    assert (rows[items[2]]["individual"], rows[items[2]]["probability"]) == top(items[2])
    assert rows[items[3]]["decided_by"] == "model"  # its decision was undone
    assert (rows[items[3]]["individual"], rows[items[3]]["probability"]) == top(items[3])
    assert rows[items[4]]["individual"] == "new_whale"  # the model's top answer there
    for image in queue.photos_of("encounter_0001")["image"]:
        assert (rows[image]["individual"], rows[image]["probability"]) == top("encounter_0001")
    assert not any(math.isnan(p) for p in table["probability"])
